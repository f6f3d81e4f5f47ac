"""Block-by-block transcription of long files (short twins of the slow tests)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.speech import speech_prompts
from utils import audio_stream
from utils.audio import SAMPLE_RATE, load_audio
from utils.transcription import DecodeOptions
from utils.transcription.long_form import quietest_cut


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory):
    """About 100 s of real prompts separated by 0.4 s gaps, as 8 kHz int16 (the prompts' rate)."""
    prompts = speech_prompts(40, max_seconds=6.0)
    gap = np.zeros(int(0.4 * SAMPLE_RATE), np.float32)
    pieces, texts = [], []
    for path, text in prompts:
        pieces += [load_audio(path), gap]
        texts.append(text)
        if sum(p.size for p in pieces) > 100 * SAMPLE_RATE:
            break
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, np.concatenate(pieces), SAMPLE_RATE, subtype="PCM_16")
    return path, texts


def test_blocks_cover_the_file_exactly(long_speech):
    path, _ = long_speech
    whole = load_audio(path)
    blocks = [block for block, _ in audio_stream.iter_audio_blocks(path, block_seconds=17)]
    assert len(blocks) == int(np.ceil(whole.size / (17 * SAMPLE_RATE)))
    assert np.allclose(np.concatenate(blocks), whole, atol=1e-4)


def test_streamed_resampling_matches_whole_file(tmp_path, long_speech):
    path, _ = long_speech
    whole = load_audio(path)
    low = tmp_path / "low.wav"
    sf.write(low, whole[::2], 8000, subtype="PCM_16")
    streamed = np.concatenate([b for b, _ in audio_stream.iter_audio_blocks(low, block_seconds=7)])
    assert abs(streamed.size - load_audio(low).size) <= 2
    assert np.max(np.abs(streamed[:1000] - load_audio(low)[:1000])) < 1e-2


def test_quietest_cut_falls_in_a_gap():
    loud = np.ones(10 * SAMPLE_RATE, np.float32) * 0.5
    loud[int(8.0 * SAMPLE_RATE) : int(8.2 * SAMPLE_RATE)] = 0.0
    assert 8.0 <= quietest_cut(loud, search_seconds=5) / SAMPLE_RATE <= 8.2


def test_quietest_cut_falls_mid_pause_not_at_its_first_quiet_frame():
    """Digital silence ties every frame of a pause; the cut goes to the middle of the pause,
    so speech after it does not start on the next block's first frame."""
    loud = np.ones(40 * SAMPLE_RATE, np.float32) * 0.5
    loud[int(31.0 * SAMPLE_RATE) : int(32.0 * SAMPLE_RATE)] = 0.0  # a 1 s pause
    loud[int(35.0 * SAMPLE_RATE) : int(35.3 * SAMPLE_RATE)] = 0.0  # a shorter one
    assert quietest_cut(loud) / SAMPLE_RATE == pytest.approx(31.5, abs=0.03)


def test_long_file_is_transcribed_block_by_block(engine, long_speech, monkeypatch):
    path, texts = long_speech
    options = DecodeOptions(language="en", beam_size=1)
    monkeypatch.setattr(audio_stream, "LONG_AUDIO_SECONDS", 30)
    monkeypatch.setattr(audio_stream, "BLOCK_SECONDS", 35)
    seen = []
    result = engine.transcribe(str(path), options, progress=seen.append)
    assert result.duration == pytest.approx(load_audio(path).size / SAMPLE_RATE, abs=0.01)
    assert seen[-1] == 1.0 and len(seen) >= 3  # one report per block at least
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and starts[-1] > 70
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    normalize = EnglishTextNormalizer()
    wer = jiwer.wer(normalize(" ".join(texts)), normalize(result.text))
    assert wer < 0.08, (wer, result.text)


def test_batch_reads_a_long_file_block_by_block_not_whole(engine, long_speech, monkeypatch):
    from tests.speech import prompt_path
    from utils.transcription import batch

    path, _ = long_speech
    short = str(prompt_path("agent-alreadyon"))
    monkeypatch.setattr(audio_stream, "LONG_AUDIO_SECONDS", 30)
    whole_reads: list = []
    read_whole = batch.decode_audio
    monkeypatch.setattr(batch, "decode_audio", lambda s: whole_reads.append(s) or read_whole(s))
    monkeypatch.setattr(engine, "transcribe", lambda source, options: f"alone: {source}")
    options = DecodeOptions(language="en", beam_size=1, word_timestamps=False)
    results = batch.BatchTranscriber(engine).transcribe([str(path), short], options)
    assert results[0] == f"alone: {path}"  # the engine's own (block by block) path
    assert whole_reads == [short] and "already" in results[1].text.lower()
