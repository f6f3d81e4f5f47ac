"""Bad and unusual input: a correct result or a clear error, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.speech import music_file, prompt_path, silence, white_noise
from utils.audio import AudioDecodeError, decode_audio
from utils.transcription import DecodeOptions

SPEECH = prompt_path("agent-alreadyon")


def test_empty_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty"):
        decode_audio(empty)


def test_zero_length_audio_gives_an_empty_result(engine, tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    result = engine.transcribe(path)
    assert result.duration == 0 and result.text == "" and result.segments == ()


@pytest.mark.parametrize(
    "payload, name",
    [(b"\x00\x01garbage" * 100, "corrupt.wav"), (b"just some text\n" * 20, "notes.wav")],
)
def test_corrupt_bytes_and_text_files_are_clear_errors(tmp_path, payload, name):
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(AudioDecodeError, match=name):
        decode_audio(path)
    with pytest.raises(AudioDecodeError, match="not readable as audio"):
        decode_audio(payload)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(AudioDecodeError, match="no such file"):
        decode_audio(tmp_path / "nope.wav")


def test_stereo_44k_and_8k_are_resampled(engine, tmp_path):
    speech, rate = sf.read(SPEECH, dtype="float32")
    import soxr

    stereo = np.stack([soxr.resample(speech, rate, 44100)] * 2, axis=1)
    sf.write(tmp_path / "stereo.flac", stereo, 44100)
    decoded = decode_audio(tmp_path / "stereo.flac")
    assert decoded.info.channels == 2 and decoded.info.sample_rate == 44100
    assert decoded.samples.size == pytest.approx(speech.size * 2, rel=0.01)  # 8 kHz -> 16 kHz
    fast = DecodeOptions(language="en", beam_size=1, word_timestamps=False)
    assert "agent" in engine.transcribe(tmp_path / "stereo.flac", fast).text.lower()
    assert "agent" in engine.transcribe(SPEECH, fast).text.lower()


def test_bytes_and_arrays_are_accepted(engine):
    fast = DecodeOptions(language="en", beam_size=1, word_timestamps=False)
    from_bytes = engine.transcribe(SPEECH.read_bytes(), fast)
    from_array = engine.transcribe(decode_audio(SPEECH).samples, fast)
    assert from_bytes.text == from_array.text and "agent" in from_bytes.text.lower()


@pytest.mark.parametrize("kind", ["silence", "white_noise", "music"])
def test_non_speech_yields_no_words_by_default(engine, kind):
    audio = {
        "silence": lambda: silence(20),
        "white_noise": lambda: white_noise(20),
        "music": lambda: decode_audio(music_file()).samples[: 30 * 16000],
    }[kind]()
    result = engine.transcribe(audio)
    assert result.words == () and result.text == "", result.text


@pytest.mark.parametrize("kind", ["silence", "white_noise"])
def test_guards_keep_non_speech_empty_without_vad(engine, kind):
    audio = silence(20) if kind == "silence" else white_noise(20)
    result = engine.transcribe(audio, DecodeOptions(vad_filter=False, language="en"))
    assert result.words == () and result.text == "", result.text


def test_guards_keep_real_speech_the_model_doubts():
    """faster-whisper reports no-speech per window: a window of repetitive phone prompts can
    reach 0.64 with a 2.5 compression ratio; confident words keep its segments."""
    from utils.transcription import Segment, Word
    from utils.transcription.guards import drop_hallucinations, spectral_flatness

    speech = decode_audio(SPEECH).samples
    words = tuple(Word(0.1 * i, 0.1 * i + 0.1, " word", 0.95) for i in range(5))
    doubted = Segment(0.0, 2.0, " That agent is already logged on.", -0.16, 0.64, 2.49, words=words)
    kept = drop_hallucinations([doubted], speech, DecodeOptions())
    assert kept == [doubted]
    noise = white_noise(2.0)
    assert drop_hallucinations([doubted], noise, DecodeOptions()) == []  # broadband noise
    assert spectral_flatness(noise) > 0.5 > 0.01 > spectral_flatness(speech)
    unsure = Segment(0.0, 2.0, " You", -0.76, 0.76, 0.3, words=(Word(0.0, 1.0, " You", 0.08),))
    assert drop_hallucinations([unsure], speech, DecodeOptions()) == []
    loop = Segment(0.0, 2.0, " 1,2,3" + ",5" * 60, -0.09, 0.75, 11.7, words=words)
    assert drop_hallucinations([loop], speech, DecodeOptions()) == []
    assert drop_hallucinations([unsure], speech, DecodeOptions(no_speech_threshold=None)) == [
        unsure
    ]
