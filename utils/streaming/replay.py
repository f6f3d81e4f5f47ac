"""Replaying audio as a live stream, for tests and benchmarks: the same input and chunking give
the same events, whether paced in real time or run as fast as possible."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from utils.audio import SAMPLE_RATE
from utils.streaming.transcriber import StreamEvent, StreamingTranscriber


@dataclass(frozen=True)
class TimedEvent:
    event: StreamEvent
    stream_time: float  # seconds of audio sent when the event came
    wall_time: float  # seconds since the replay started


def replay(
    transcriber: StreamingTranscriber,
    samples: np.ndarray,
    chunk_seconds: float = 0.25,
    realtime: bool = False,
) -> Iterator[TimedEvent]:
    """Feed 16 kHz `samples` in chunks (sleeping to real time when `realtime`), then finish."""
    chunk = max(1, round(chunk_seconds * SAMPLE_RATE))
    started = time.perf_counter()
    for first in range(0, samples.size, chunk):
        if realtime:
            time.sleep(max(0.0, first / SAMPLE_RATE - (time.perf_counter() - started)))
        for event in transcriber.feed(samples[first : first + chunk]):
            yield TimedEvent(event, transcriber.now, time.perf_counter() - started)
    for event in transcriber.finish():
        yield TimedEvent(event, transcriber.now, time.perf_counter() - started)


def final_text(events: list[TimedEvent]) -> str:
    return " ".join(e.event.text for e in events if e.event.kind == "final").strip()
