"""Silero VAD engine (utils/vad.py): offline segmentation, streaming events, options."""

from __future__ import annotations

import dataclasses
import itertools
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from utils.audio import SAMPLE_RATE, load_audio
from utils.vad import (
    WINDOW_SAMPLES,
    SpeechSpan,
    StreamingVad,
    VadEvent,
    VadOptions,
    detect_speech,
    get_session,
    spans_from_probabilities,
    speech_probabilities,
)

SOUNDS = Path("/usr/share/asterisk/sounds/en")  # real 8 kHz speech, installed by the setup


def clip(name: str) -> np.ndarray:
    """A real recording at 16 kHz, trimmed to its voiced part (10 ms frames above 5% peak RMS)."""
    assert SOUNDS.is_dir(), f"{SOUNDS} is missing: install asterisk-core-sounds-en-wav"
    audio = load_audio(SOUNDS / f"{name}.wav")
    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
    rms = np.sqrt((frames**2).mean(axis=1))
    active = np.nonzero(rms > 0.05 * rms.max())[0]
    return audio[active[0] * 160 : (active[-1] + 1) * 160]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)


@pytest.fixture(scope="module")
def two_utterances() -> tuple[np.ndarray, list[tuple[float, float]]]:
    """1 s silence + speech + 2.5 s silence + speech + 3 s silence, with the true speech bounds."""
    a, b = clip("agent-pass"), clip("vm-intro")
    audio = np.concatenate([silence(1.0), a, silence(2.5), b, silence(3.0)])
    a_end = 1.0 + len(a) / SAMPLE_RATE
    b_start = a_end + 2.5
    return audio, [(1.0, a_end), (b_start, b_start + len(b) / SAMPLE_RATE)]


@pytest.fixture(scope="module")
def long_speech() -> np.ndarray:
    """About 31 s of speech with 0.5 s pauses, too short to end a span with the defaults."""
    names = ["vm-leavemsg", "conf-now-unmuted", "agent-pass", "vm-theperson", "vm-intro"]
    parts = [part for name in names * 2 for part in (clip(name), silence(0.5))]
    return np.concatenate(parts[:-1])


def stream(vad: StreamingVad, audio: np.ndarray, seed: int) -> list[VadEvent]:
    """Feed `audio` in random chunk sizes (0 to 4000 samples); check `is_speech` as it goes."""
    rng, events, i = np.random.default_rng(seed), [], 0
    while i < len(audio):
        size = int(rng.integers(0, 4000))
        events += vad.feed(audio[i : i + size])
        i += size
        assert vad.is_speech == bool(events and events[-1].kind == "start")
    return events + vad.flush()


def as_spans(events: list[VadEvent]) -> list[SpeechSpan]:
    kinds = [e.kind for e in events]
    assert kinds == ["start", "end"] * (len(events) // 2), kinds
    return [SpeechSpan(s.time, e.time) for s, e in zip(events[::2], events[1::2], strict=True)]


def test_session_is_shared_and_probabilities_have_one_value_per_window() -> None:
    assert get_session() is get_session()
    assert {i.name for i in get_session().get_inputs()} == {"input", "state", "sr"}
    for n in (0, 1, 511, 512, 513, 5 * SAMPLE_RATE + 7):
        probs = speech_probabilities(np.zeros(n, dtype=np.float32))
        assert probs.shape == (math.ceil(n / WINDOW_SAMPLES),) and probs.dtype == np.float32
    for bad in (np.zeros((2, 1600), dtype=np.float32), np.zeros(1600, dtype=np.int16)):
        with pytest.raises(ValueError, match="1-D float"):
            speech_probabilities(bad)


def test_silence_and_white_noise_hold_no_speech() -> None:
    rng = np.random.default_rng(0)
    for audio in (
        silence(5.0),
        rng.normal(0, 0.1, 5 * SAMPLE_RATE).astype(np.float32),
        rng.uniform(-0.5, 0.5, 5 * SAMPLE_RATE).astype(np.float32),
    ):
        assert detect_speech(audio) == []
        assert speech_probabilities(audio).max() < 0.5
        assert stream(StreamingVad(), audio, seed=1) == []


@pytest.mark.parametrize("name", ["demo-congrats", "vm-leavemsg", "hello-world", "vm-goodbye"])
def test_real_speech_is_found(name: str) -> None:
    audio = load_audio(SOUNDS / f"{name}.wav")
    spans = detect_speech(audio)
    assert spans, f"no speech found in {name}"
    assert 0 <= spans[0].start < spans[-1].end <= len(audio) / SAMPLE_RATE
    voiced = clip(name)
    assert sum(s.end - s.start for s in spans) >= 0.9 * len(voiced) / SAMPLE_RATE
    assert (speech_probabilities(voiced) >= 0.5).mean() > 0.5


def test_two_utterances_are_bracketed_within_half_a_second(two_utterances) -> None:
    audio, truth = two_utterances
    for options in (VadOptions(), VadOptions(speech_pad_ms=0)):
        spans = detect_speech(audio, options)
        assert len(spans) == 2, spans
        for span, (start, end) in zip(spans, truth, strict=True):
            assert start - 0.5 <= span.start <= start + 0.1, (span, start)
            assert end - 0.1 <= span.end <= end + 0.5, (span, end)
    # a 2.5 s pause is longer than the default 2 s minimum silence, a 3 s minimum joins them
    assert len(detect_speech(audio, VadOptions(min_silence_duration_ms=3000))) == 1


def test_long_speech_is_split_at_pauses(long_speech) -> None:
    whole = detect_speech(long_speech)
    assert len(whole) == 1 and whole[0].end - whole[0].start > 30
    probs = speech_probabilities(long_speech)
    for longest in (True, False):
        options = VadOptions(max_speech_duration_s=4, split_at_longest_silence=longest)
        spans = detect_speech(long_speech, options)
        assert len(spans) >= 8, spans
        assert spans[0].start == whole[0].start and spans[-1].end == whole[0].end
        for span in spans:
            assert span.end - span.start <= 4 + 1e-9, span
        cuts = [left.end for left, right in itertools.pairwise(spans) if left.end <= right.start]
        assert len(cuts) == len(spans) - 1
        in_pause = [probs[int(t * SAMPLE_RATE) // WINDOW_SAMPLES] < 0.5 for t in cuts]
        # longest: every 4 s stretch here holds a pause, so every cut lands in one; last
        # silence: a stretch whose last pause is too early is cut hard, in speech
        assert all(in_pause) if longest else sum(in_pause) >= 2 / 3 * len(cuts), (cuts, in_pause)


def test_segmentation_matches_silero_reference(long_speech, two_utterances) -> None:
    torch = pytest.importorskip("torch")
    import silero_vad

    audio = np.concatenate([two_utterances[0], long_speech[: -SAMPLE_RATE // 3]])
    probs = speech_probabilities(audio)
    model = silero_vad.load_silero_vad(onnx=True)
    reference = model.audio_forward(torch.from_numpy(audio), SAMPLE_RATE).numpy()[0]
    np.testing.assert_allclose(probs, reference, atol=1e-6)
    for options in (
        VadOptions(),
        VadOptions(min_silence_duration_ms=100, speech_pad_ms=30, min_speech_duration_ms=100),
        VadOptions(max_speech_duration_s=3, min_silence_duration_ms=300, speech_pad_ms=100),
        VadOptions(max_speech_duration_s=2, split_at_longest_silence=False, neg_threshold=0.2),
    ):
        expected = silero_vad.get_speech_timestamps_from_probs(
            [float(p) for p in probs],
            threshold=options.threshold,
            neg_threshold=options.neg_threshold,
            min_speech_duration_ms=options.min_speech_duration_ms,
            max_speech_duration_s=options.max_speech_duration_s,
            min_silence_duration_ms=options.min_silence_duration_ms,
            speech_pad_ms=options.speech_pad_ms,
            use_max_poss_sil_at_max_speech=options.split_at_longest_silence,
            audio_length_samples=len(audio),
        )
        got = spans_from_probabilities(probs, len(audio), options)
        samples = [(round(s.start * SAMPLE_RATE), round(s.end * SAMPLE_RATE)) for s in got]
        assert samples == [(d["start"], d["end"]) for d in expected], options


def test_streaming_in_random_chunks_matches_offline(two_utterances, long_speech) -> None:
    for audio, options in (
        (two_utterances[0], VadOptions()),
        (long_speech, VadOptions(max_speech_duration_s=4)),
        (long_speech, VadOptions(min_silence_duration_ms=200, speech_pad_ms=300)),
    ):
        offline = detect_speech(audio, options)
        for seed in (1, 2):
            spans = as_spans(stream(StreamingVad(options), audio, seed))
            assert len(spans) == len(offline)
            for got, want in zip(spans, offline, strict=True):
                assert abs(got.start - want.start) <= 0.3 and abs(got.end - want.end) <= 0.3
            assert spans == offline  # in fact identical: same windows and state machine


def test_streaming_instances_keep_their_own_state(two_utterances, long_speech) -> None:
    a, b = two_utterances[0], long_speech
    alone_a, alone_b = stream(StreamingVad(), a, seed=3), stream(StreamingVad(), b, seed=4)
    vad_a, vad_b = StreamingVad(), StreamingVad()
    vad_a.feed(b[: 3 * SAMPLE_RATE])  # stale audio and speech state, then forgotten
    vad_a.reset()
    events_a, events_b, i, j = [], [], 0, 0
    while i < len(a) or j < len(b):  # interleaved, in different chunk sizes
        events_a += vad_a.feed(a[i : i + 700])
        events_b += vad_b.feed(b[j : j + 1100])
        i, j = i + 700, j + 1100
    assert events_a + vad_a.flush() == alone_a and events_b + vad_b.flush() == alone_b
    # flush() resets: the same instance gives the same events on a second run
    assert stream(vad_a, a, seed=5) == alone_a


def test_concurrent_calls_share_the_session_safely(two_utterances, long_speech) -> None:
    audios = [two_utterances[0], long_speech] * 3
    expected = [detect_speech(x) for x in audios[:2]] * 3
    barrier = threading.Barrier(len(audios))

    def run(x: np.ndarray) -> list[SpeechSpan]:
        barrier.wait()
        return detect_speech(x)

    with ThreadPoolExecutor(len(audios)) as pool:
        assert list(pool.map(run, audios)) == expected


def test_options_are_frozen_and_validated() -> None:
    options = VadOptions()
    assert (options.threshold, options.neg_threshold, options.min_speech_duration_ms) == (
        0.5,
        None,
        250,
    )
    assert math.isinf(options.max_speech_duration_s)
    assert (options.min_silence_duration_ms, options.speech_pad_ms) == (2000, 400)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.threshold = 0.7  # type: ignore[misc]
    changed = dataclasses.replace(options, threshold=0.7, speech_pad_ms=100)
    assert (changed.threshold, changed.speech_pad_ms, options.threshold) == (0.7, 100, 0.5)
    for bad in ({"threshold": 1.5}, {"neg_threshold": 0.6}, {"speech_pad_ms": -1}):
        with pytest.raises(ValueError):
            VadOptions(**bad)


def test_faster_whisper_accepts_the_parameters() -> None:
    from faster_whisper.vad import VadOptions as FasterWhisperVadOptions

    options = VadOptions(threshold=0.6, max_speech_duration_s=20, min_silence_duration_ms=500)
    params = options.to_faster_whisper()
    converted = FasterWhisperVadOptions(**params)
    assert set(params) == {f.name for f in dataclasses.fields(FasterWhisperVadOptions)}
    assert dataclasses.asdict(converted) == params
    assert FasterWhisperVadOptions(**VadOptions().to_faster_whisper()).min_speech_duration_ms == 250
