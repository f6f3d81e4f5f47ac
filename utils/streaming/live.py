"""A live stream for a UI: microphone chunks are pushed from the UI's request thread, decoded in
order on a worker thread, and the transcript so far is read as a snapshot at any time.

Why a worker: a UI's chunk handler must return at once. Gradio keeps only the newest pending
chunk of a streaming event, so a handler that waited for a decode would lose audio. Pushing is
cheap; how far decoding lags behind is reported (`behind`) instead of hidden.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from utils.audio import SAMPLE_RATE
from utils.streaming.audio_input import StreamFormatError, StreamResampler
from utils.streaming.session import CATCH_UP_SECONDS, ServerBusyError, StreamConfig, StreamHub

FINALS_SHOWN = 300  # finals kept for display: a two-hour stream keeps a bounded transcript
_END = None  # queue sentinel: the stream ended
CATCH_UP_SAMPLES = int(CATCH_UP_SECONDS * SAMPLE_RATE)


@dataclass(frozen=True)
class LiveSnapshot:
    """The transcript so far. `finals` hold final events (dicts as on the WebSocket), newest
    last; `partial` the current unstable tail; `latency` the last text event's latency and
    `behind` the audio received but not decoded yet, both in seconds."""

    finals: tuple[dict[str, Any], ...] = ()
    partial: dict[str, Any] | None = None
    speech: bool = False
    latency: float | None = None
    behind: float = 0.0
    error: str | None = None
    finished: bool = False


def to_mono_float(samples: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) int16/int32/float samples -> (n,) float32 in [-1, 1]."""
    samples = np.asarray(samples)
    if samples.dtype.kind in "iu":
        scale = float(np.iinfo(samples.dtype).max) + 1.0
        samples = samples.astype(np.float32) / scale
    samples = samples.astype(np.float32, copy=False)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.ndim != 1:
        raise StreamFormatError(f"audio of shape {samples.shape}; expected (n,) or (n, channels)")
    return np.clip(np.nan_to_num(samples), -1.0, 1.0)


class LiveStream:
    """One recording's stream through `hub` (which holds its session slot until it ends)."""

    def __init__(self, hub: StreamHub, config: StreamConfig) -> None:
        self._hub, self._config = hub, config
        self._queue: queue.Queue[tuple[np.ndarray, float] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._finals: deque[dict[str, Any]] = deque(maxlen=FINALS_SHOWN)
        self._partial: dict[str, Any] | None = None
        self._speech = False
        self._latency: float | None = None
        self._error: str | None = None
        self._queued = 0  # samples pushed, not yet decoded
        self._resampler: StreamResampler | None = None
        self.stopped = False  # the recording ended (a new one needs a new stream)
        self._worker = threading.Thread(target=self._run, name="live-stream", daemon=True)
        self._worker.start()

    # -- the UI's side ---------------------------------------------------------------------------
    def push(self, sample_rate: int, samples: np.ndarray) -> None:
        """Queue a microphone chunk: (n,) or (n, channels), integer or float, at `sample_rate`
        (the first chunk's rate holds for the stream). Dropped once the stream failed."""
        if self.stopped or not self._worker.is_alive():
            return
        if self._resampler is None:
            self._resampler = StreamResampler(sample_rate)
        elif sample_rate != self._resampler.sample_rate:
            raise StreamFormatError(
                f"sample rate changed from {self._resampler.sample_rate} to {sample_rate} Hz"
            )
        self._put(self._resampler.push(to_mono_float(samples)))

    def stop(self, timeout: float | None = 60.0) -> LiveSnapshot:
        """End the stream: the last finals are decoded (waiting up to `timeout` seconds)."""
        if self.stopped:
            return self.snapshot()
        self.stopped = True
        if self._resampler is not None:
            self._put(self._resampler.flush())
        self._queue.put(_END)
        self._worker.join(timeout)
        return self.snapshot()

    def close(self) -> None:
        """End without waiting (the session went away); the slot is freed when the worker ends."""
        if not self.stopped:
            self.stopped = True
            self._queue.put(_END)

    def snapshot(self) -> LiveSnapshot:
        with self._lock:
            return LiveSnapshot(
                tuple(self._finals), self._partial, self._speech, self._latency,
                self._queued / SAMPLE_RATE, self._error, not self._worker.is_alive(),
            )  # fmt: skip

    def _put(self, audio: np.ndarray) -> None:
        with self._lock:
            self._queued += audio.size
        self._queue.put((audio, time.monotonic()))

    # -- the worker ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            session = self._hub.open(self._config)
        except (ServerBusyError, LookupError, ValueError) as exc:
            self._fail(str(exc))
            return
        try:
            self._decode(session)
        except Exception as exc:  # shown to the user: the worker must not die silently
            self._fail(f"live transcription stopped: {exc}")
        finally:
            self._hub.close()

    def _decode(self, session: Any) -> None:
        while (chunks := self._take()) is not None:
            events = session.feed_samples(chunks)
            with self._lock:
                self._queued -= sum(c.size for c, _ in chunks)
            self._apply(events, session.speech)
        self._apply(session.finish(), False)

    def _take(self) -> list[tuple[np.ndarray, float]] | None:
        """Every chunk queued now (waiting for one): a stream that fell behind catches up in
        one update. None at the end of the stream (chunks before the end come first)."""
        first = self._queue.get()
        if first is _END:
            return None
        chunks = [first]
        while not self._queue.empty() and sum(c.size for c, _ in chunks) < CATCH_UP_SAMPLES:
            item = self._queue.get_nowait()
            if item is _END:
                self._queue.put(_END)  # seen again by the next take, after these chunks
                break
            chunks.append(item)
        return chunks

    def _apply(self, events: list[dict[str, Any]], speech: bool) -> None:
        with self._lock:
            self._speech = speech
            for event in events:
                if event["type"] == "final":
                    self._finals.append(event)
                elif event["type"] == "partial":
                    self._partial = event if event["text"] else None
                if "latency" in event:
                    self._latency = event["latency"]

    def _fail(self, message: str) -> None:
        with self._lock:
            self._error = message
