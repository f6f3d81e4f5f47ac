"""The streaming transcriber (issue 7): replayed real speech gives the offline transcript as
append-only finals, the same input gives the same output, silence and noise give no text, and
the buffer stays bounded however long the speech runs."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from evaluation.scoring import score
from optimization.heldout_sets import english_heldout
from utils.audio import SAMPLE_RATE
from utils.streaming.replay import final_text, replay
from utils.streaming.session import CATCH_UP_SECONDS
from utils.streaming.transcriber import StreamingTranscriber, StreamOptions
from utils.streaming.turns import FINAL, PARTIAL, EngineTurns
from utils.transcription.options import DecodeOptions
from utils.transcription.results import Segment, Timings, TranscriptionResult, Word

GAP = np.zeros(SAMPLE_RATE, dtype=np.float32)


@pytest.fixture(scope="module")
def speech():
    """Four real English prompts with a second of silence after each (about 19 s)."""
    heldout = english_heldout(4)
    return np.concatenate([np.concatenate([audio, GAP]) for audio in heldout.audios])


@pytest.fixture(scope="module")
def streamed(engine, speech):
    transcriber = StreamingTranscriber(engine, StreamOptions(language="en"))
    return list(replay(transcriber, speech, chunk_seconds=0.25))


def test_finals_equal_the_offline_transcript_and_only_grow(engine, speech, streamed):
    offline = engine.transcribe(speech, DecodeOptions(language="en")).text
    streamed_text = final_text(streamed)
    assert score([offline], [streamed_text], "en", bootstrap=0).wer <= 0.05, streamed_text
    finals = [e.event for e in streamed if e.event.kind == "final"]
    assert [f.seq for f in finals] == list(range(1, len(finals) + 1))
    starts = [w.start for f in finals for w in f.words]
    assert starts == sorted(starts) and 0 <= starts[0] < starts[-1] <= speech.size / SAMPLE_RATE
    partials = [e.event for e in streamed if e.event.kind == "partial"]
    assert any(p.text for p in partials)  # text showed before it was final
    speaking = [e.event.speech for e in streamed if e.event.kind == "vad"]
    assert speaking == [True, False] * 4


def test_the_same_input_gives_the_same_finals_whatever_the_chunking(engine, speech):
    options = StreamOptions(language="en", partials=False)
    runs = [
        [e.event for e in replay(StreamingTranscriber(engine, options), speech, size)
         if e.event.kind == "final"]
        for size in (0.1, 0.37)
    ]  # fmt: skip
    assert runs[0] == runs[1] and len(runs[0]) == 4  # one final per utterance


def test_silence_and_noise_give_no_text(engine):
    rng = np.random.default_rng(0)
    silence = np.zeros(8 * SAMPLE_RATE, dtype=np.float32)
    noise = (0.01 * rng.standard_normal(8 * SAMPLE_RATE)).astype(np.float32)
    for audio in (silence, noise):
        events = list(replay(StreamingTranscriber(engine), audio, 0.5))
        assert not [e for e in events if e.event.kind == "final"]


class WordPerHalfSecond:
    """A stand-in engine: one word per 0.5 s of buffer, named after that audio, so successive
    hypotheses agree on the same audio; 20 tokens per word (Amharic-like cost)."""

    def transcribe(self, samples: np.ndarray, options: DecodeOptions) -> TranscriptionResult:
        half, seconds = SAMPLE_RATE // 2, samples.size / SAMPLE_RATE
        names = [int(abs(samples[i * half : (i + 1) * half]).sum() * 1e3)
                 for i in range(samples.size // half)]  # fmt: skip
        words = tuple(Word(i * 0.5, i * 0.5 + 0.4, f" w{n}", 0.9) for i, n in enumerate(names))
        text = "".join(w.word for w in words)
        tokens = tuple(range(20 * len(words)))
        segment = Segment(0.0, seconds, text, -0.1, 0.0, words=words, tokens=tokens)
        language = options.language or "en"
        return TranscriptionResult.from_segments([segment], language, 1.0, seconds, Timings(),
                                                 None, "")  # fmt: skip


class NoWords(WordPerHalfSecond):
    """Speech the model hears no words in (music, another language's noise)."""

    def transcribe(self, samples: np.ndarray, options: DecodeOptions) -> TranscriptionResult:
        result = super().transcribe(samples, options)
        return dataclasses.replace(result, text="", segments=())


@pytest.mark.parametrize(
    ("engine_class", "partials"),
    [(WordPerHalfSecond, True), (WordPerHalfSecond, False), (NoWords, True)],
)
def test_the_buffer_stays_under_its_caps_through_long_unbroken_speech(
    speech, engine_class, partials
):
    rng = np.random.default_rng(1)
    talk = np.tile(speech[: 4 * SAMPLE_RATE], 30) + 0.001 * rng.standard_normal(120 * SAMPLE_RATE)
    options = StreamOptions(
        language="en", max_buffer_seconds=10.0, max_buffer_tokens=400, partials=partials
    )
    transcriber = StreamingTranscriber(engine_class(), options)
    longest, finals = 0.0, []
    for first in range(0, talk.size, SAMPLE_RATE // 2):
        events = transcriber.feed(talk[first : first + SAMPLE_RATE // 2].astype(np.float32))
        finals += [e for e in events if e.kind == "final"]
        longest = max(longest, transcriber._buffer.size / SAMPLE_RATE)
    finals += [e for e in transcriber.finish() if e.kind == "final"]
    assert longest <= 10.0 + options.update_seconds
    if engine_class is NoWords:
        assert not finals
        return
    words = [w for f in finals for w in f.words]
    starts = [w.start for w in words]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # nothing final twice
    assert len(words) >= 0.8 * 120 / 0.5  # most of two minutes became final


def test_a_busy_engine_skips_partials_while_finals_wait_for_their_turn(speech):
    turns = EngineTurns()
    options = StreamOptions(language="en", partial_max_gap=30.0)
    transcriber = StreamingTranscriber(WordPerHalfSecond(), options, turns)
    turns.acquire(FINAL, wait=True)  # another session holds the engine
    quarter = SAMPLE_RATE // 4
    events = [e for first in range(0, 3 * SAMPLE_RATE, quarter)
              for e in transcriber.feed(speech[first : first + quarter])]  # fmt: skip
    assert [e.kind for e in events] == ["vad"] and turns.skipped >= 3  # no partials: skipped
    threading.Timer(0.3, turns.release).start()
    finals = [e for e in transcriber.finish() if e.kind == "final"]
    assert finals and turns.granted[FINAL] == 2  # the final waited for its turn, then ran


def test_a_partial_starved_past_its_gap_queues_for_the_engine(speech):
    turns = EngineTurns()
    options = StreamOptions(language="en", partial_max_gap=1.5)
    transcriber = StreamingTranscriber(WordPerHalfSecond(), options, turns)
    turns.acquire(FINAL, wait=True)
    threading.Timer(0.5, turns.release).start()
    quarter = SAMPLE_RATE // 4
    events = [e for first in range(0, 3 * SAMPLE_RATE, quarter)
              for e in transcriber.feed(speech[first : first + quarter])]  # fmt: skip
    assert "partial" in [e.kind for e in events] and turns.granted[PARTIAL] >= 1


class Counting(WordPerHalfSecond):
    decodes = 0

    def transcribe(self, samples: np.ndarray, options: DecodeOptions) -> TranscriptionResult:
        self.decodes += 1
        return super().transcribe(samples, options)


def test_the_final_is_decoded_ahead_in_the_pause_and_not_again(speech):
    engine = Counting()
    transcriber = StreamingTranscriber(engine, StreamOptions(language="en", partials=False))
    chunk, finals = SAMPLE_RATE // 10, 0
    for first in range(0, speech.size, chunk):
        before = engine.decodes
        events = transcriber.feed(speech[first : first + chunk])
        if any(e.kind == "final" for e in events):
            finals += 1
            assert engine.decodes == before  # the end of speech found its decode ready
    assert finals >= 3


LIVE_OPTIONS = StreamOptions(language="en")  # the Live tab's


def test_choppy_speech_keeps_the_buffer_under_its_cap():
    """Half-second bursts of real speech between 0.35 s pauses (too short to end speech, long
    enough for a decode ahead in each), with the Live tab's options, on a stand-in engine (the
    decodes' text does not matter here): the decodes ahead must not starve the updates."""
    heldout, pause = english_heldout(8), np.zeros(int(0.35 * SAMPLE_RATE), np.float32)
    burst = int(0.55 * SAMPLE_RATE)
    bursts = [audio[first : first + burst] for audio in heldout.audios
              for first in range(SAMPLE_RATE // 3, audio.size - 2 * burst, burst)]  # fmt: skip
    talk = np.concatenate(
        [np.zeros(SAMPLE_RATE, np.float32)] + [piece for b in bursts for piece in (b, pause)] * 2
    )
    transcriber = StreamingTranscriber(WordPerHalfSecond(), LIVE_OPTIONS)
    longest, kinds = 0.0, []
    for first in range(0, talk.size, SAMPLE_RATE // 10):
        kinds += [e.kind for e in transcriber.feed(talk[first : first + SAMPLE_RATE // 10])]
        assert transcriber.speaking or first < SAMPLE_RATE * 2  # one utterance throughout
        longest = max(longest, transcriber._buffer.size / SAMPLE_RATE)
    seconds = talk.size / SAMPLE_RATE
    assert seconds > 2 * LIVE_OPTIONS.max_buffer_seconds
    assert longest <= LIVE_OPTIONS.max_buffer_seconds + CATCH_UP_SECONDS, longest
    assert kinds.count("partial") >= seconds / 4 and kinds.count("final") >= seconds / 15, kinds


class Looping(WordPerHalfSecond):
    """Every decode a repetition loop (gzip ratio 5, far over Whisper's 2.4)."""

    def transcribe(self, samples: np.ndarray, options: DecodeOptions) -> TranscriptionResult:
        result = super().transcribe(samples, options)
        looped = tuple(dataclasses.replace(s, compression_ratio=5.0) for s in result.segments)
        return dataclasses.replace(result, segments=looped)


def test_a_decoding_loop_never_becomes_final_text(speech):
    transcriber = StreamingTranscriber(Looping(), StreamOptions(language="en"))
    events = list(replay(transcriber, speech, chunk_seconds=0.25))
    assert not [e for e in events if e.event.kind == "final"]
    assert transcriber._buffer.size <= (StreamOptions().max_buffer_seconds + 1) * SAMPLE_RATE


class FirstSecondOnly(WordPerHalfSecond):
    """Hears only the first second of what it is given, as Whisper leaves an unfinished last
    segment out of a window; records the options of each decode."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, DecodeOptions]] = []

    def transcribe(self, samples: np.ndarray, options: DecodeOptions) -> TranscriptionResult:
        self.calls.append((samples.size / SAMPLE_RATE, options))
        return super().transcribe(samples[:SAMPLE_RATE], options)


def test_a_final_decodes_the_rest_after_the_words_of_its_window(speech):
    engine = FirstSecondOnly()
    transcriber = StreamingTranscriber(engine, StreamOptions(language="en", partials=False))
    finals = [e for e in replay(transcriber, speech[: 4 * SAMPLE_RATE], 0.1)
              if e.event.kind == "final"]  # fmt: skip
    words = [w for f in finals for w in f.event.words]
    assert len(words) == 4  # two from the window, two from the rest after its last word
    rest = engine.calls[-1][1]
    assert rest.initial_prompt and rest.initial_prompt.split()[-1] == words[1].word.strip()
    assert all(o.single_window and o.max_new_tokens <= 17 + 15 * s for s, o in engine.calls)
    assert words[2].start == pytest.approx(words[1].end)  # the rest, in the stream's times


class Slow(WordPerHalfSecond):
    def transcribe(self, samples: np.ndarray, options: DecodeOptions) -> TranscriptionResult:
        threading.Event().wait(0.4)
        return super().transcribe(samples, options)


def test_partials_are_paced_by_the_decode_time(speech):
    """A 0.4 s decode spaces partial updates by at least 0.8 s of audio (not the 0.25 asked)."""
    options = StreamOptions(language="en", update_seconds=0.25)
    stream = speech[: 5 * SAMPLE_RATE]
    paced = list(replay(StreamingTranscriber(Slow(), options), stream, 0.1))
    times = [e.stream_time for e in paced if e.event.kind == "partial" and e.event.text]
    assert len(times) >= 3 and min(np.diff(times)) >= 0.8 - 1e-6, times
