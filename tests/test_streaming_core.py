"""The streaming engine's pure parts (issue 7): frame decoding, the stateful resampler and the
LocalAgreement commit policy."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from utils.audio import SAMPLE_RATE
from utils.streaming.agreement import LocalAgreement
from utils.streaming.audio_input import StreamFormatError, StreamResampler, decode_frame
from utils.streaming.turns import AHEAD, FINAL, PARTIAL, EngineTurns
from utils.transcription.results import Word


def words(*spec: tuple[str, float]) -> list[Word]:
    """(" word", start) pairs -> words 0.3 s long."""
    return [Word(start, start + 0.3, text, 0.9) for text, start in spec]


def test_pcm16_and_float32_frames_decode_and_bad_ones_are_named():
    pcm = np.array([0, 16384, -32768], dtype="<i2").tobytes()
    assert decode_frame(pcm, "pcm16").tolist() == [0.0, 0.5, -1.0]
    floats = np.array([0.25, -2.0], dtype="<f4").tobytes()
    assert decode_frame(floats, "float32").tolist() == [0.25, -1.0]  # clipped
    with pytest.raises(StreamFormatError, match="whole 2-byte samples; got 3 bytes"):
        decode_frame(b"abc", "pcm16")
    with pytest.raises(StreamFormatError, match="NaN"):
        decode_frame(np.array([np.nan], dtype="<f4").tobytes(), "float32")
    with pytest.raises(StreamFormatError, match="encoding must be"):
        decode_frame(b"", "mulaw")  # type: ignore[arg-type]


def test_resampling_in_odd_chunks_equals_resampling_at_once():
    rate = 44_100
    t = np.arange(rate * 2) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    whole = StreamResampler(rate)
    expected = np.concatenate([whole.push(tone), whole.flush()])
    chunked = StreamResampler(rate)
    pieces, start = [], 0
    for size in [1, 7, 441, 1000, 3, 30_000] * 20:
        pieces.append(chunked.push(tone[start : start + size]))
        start += size
    pieces += [chunked.push(tone[start:]), chunked.flush()]
    got = np.concatenate(pieces)
    assert abs(got.size - 2 * SAMPLE_RATE) <= 2 and got.size == expected.size
    np.testing.assert_allclose(got, expected, atol=1e-5)  # no clicks at chunk edges
    assert StreamResampler(SAMPLE_RATE).push(tone[:10]).tolist() == tone[:10].tolist()
    for bad in (100, 16000.5, 500_000):
        with pytest.raises(StreamFormatError, match="sample_rate"):
            StreamResampler(bad)  # type: ignore[arg-type]


def test_words_become_final_when_two_hypotheses_agree():
    policy = LocalAgreement()
    final, tail = policy.update(words((" Hello", 0.0), (" word", 0.4)))
    assert final == [] and [w.word for w in tail] == [" Hello", " word"]
    final, tail = policy.update(words((" hello,", 0.0), (" world", 0.4), (" again", 0.8)))
    assert [w.word for w in final] == [" hello,"]  # case and punctuation do not matter
    assert [w.word for w in tail] == [" world", " again"]
    final, tail = policy.update(words((" hello", 0.0), (" world", 0.4), (" again", 0.8)))
    assert [w.word for w in final] == [" world", " again"] and tail == []
    assert policy.committed_end == pytest.approx(1.1)


def test_committed_words_are_never_committed_twice():
    policy = LocalAgreement()
    policy.update(words((" one", 0.0), (" two", 0.4)))
    policy.update(words((" one", 0.0), (" two", 0.4)))
    # The buffer was trimmed at 0.7 s; Whisper re-transcribes the overlap " two" at its edge.
    final, tail = policy.update(words((" two", 0.65), (" three", 1.0)))
    assert final == [] and [w.word for w in tail] == [" three"]
    final, _ = policy.update(words((" two", 0.66), (" three", 1.0), (" four", 1.4)))
    assert [w.word for w in final] == [" three"]
    assert [w.word for w in policy.flush()] == [" four"]
    assert policy.flush() == []


def test_a_revised_tail_is_not_committed():
    policy = LocalAgreement()
    policy.update(words((" the", 0.0), (" cat", 0.3)))
    final, tail = policy.update(words((" the", 0.0), (" cap", 0.3), (" sat", 0.6)))
    assert [w.word for w in final] == [" the"]
    final, tail = policy.update(words((" the", 0.0), (" cat", 0.3), (" sat", 0.6)))
    assert final == [] and [w.word for w in tail] == [" cat", " sat"]


def test_finals_go_first_then_finals_ahead_then_partials_each_in_arrival_order():
    turns = EngineTurns()
    order: list[str] = []
    turns.acquire(PARTIAL, wait=False)  # the engine is busy
    assert not turns.acquire(PARTIAL, wait=False)  # an opportunistic partial is skipped
    waiters = []
    queued = [("p1", PARTIAL), ("a1", AHEAD), ("f1", FINAL), ("p2", PARTIAL), ("a2", AHEAD),
              ("f2", FINAL)]  # fmt: skip
    for name, priority in queued:
        thread = threading.Thread(target=_take_turn, args=(turns, priority, name, order))
        thread.start()
        waiters.append(thread)
        while turns.waiting < len(waiters):  # queue them in this order
            time.sleep(0.001)
    turns.release()
    for thread in waiters:
        thread.join(5)
    assert order == ["f1", "f2", "a1", "a2", "p1", "p2"]
    assert turns.skipped == 1 and turns.granted == {FINAL: 2, AHEAD: 2, PARTIAL: 3}
    assert turns.acquire(PARTIAL, wait=False)  # free again


def _take_turn(turns: EngineTurns, priority: int, name: str, order: list[str]) -> None:
    with turns.turn(priority, wait=True):
        order.append(name)


def test_an_engine_with_two_workers_gives_two_turns_at_once():
    turns = EngineTurns(slots=2)
    assert turns.acquire(PARTIAL, wait=False) and turns.acquire(FINAL, wait=True)
    assert not turns.acquire(PARTIAL, wait=False)  # both slots taken
    order: list[str] = []
    waiter = threading.Thread(target=_take_turn, args=(turns, FINAL, "f", order))
    waiter.start()
    time.sleep(0.05)
    assert order == []  # a final waits for a slot
    turns.release()
    waiter.join(5)
    assert order == ["f"]
