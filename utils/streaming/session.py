"""One live stream as the WebSocket and the Live tab drive it: a JSON config, then raw frames;
events out as JSON-ready dicts. Engine code: no web framework here."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from utils.audio import SAMPLE_RATE
from utils.streaming.audio_input import (
    ENCODINGS,
    Encoding,
    StreamFormatError,
    StreamResampler,
    decode_frame,
)
from utils.streaming.transcriber import StreamEvent, StreamingTranscriber, StreamOptions
from utils.streaming.turns import EngineTurns
from utils.transcription.engine import load_engine

MAX_FRAME_BYTES = 1 << 20  # one frame: 1 MiB (about 33 s of 16 kHz pcm16)
# A stream that fell behind decodes at most this much queued audio in one update (the buffer
# must stay well inside Whisper's 30 s window).
CATCH_UP_SECONDS = 4.0
ARRIVALS_KEPT = 60.0  # seconds of frame arrival times kept for the latency figure
CONFIG_KEYS = {"type", "language", "task", "model", "sample_rate", "encoding", "partials"}


@dataclass(frozen=True)
class StreamConfig:
    """What a client declares before sending audio."""

    model: str | None = None  # registry name or path; None: the default model
    language: str | None = None
    task: str = "transcribe"
    sample_rate: int = 16_000
    encoding: Encoding = "pcm16"
    partials: bool = True

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> StreamConfig:
        """The config from the client's first JSON message; StreamFormatError names the problem."""
        unknown = set(message) - CONFIG_KEYS
        if unknown:
            raise StreamFormatError(f"unknown config keys: {', '.join(sorted(unknown))}")
        values = {k: v for k, v in message.items() if k != "type"}
        if values.get("encoding", "pcm16") not in ENCODINGS:
            raise StreamFormatError(f"encoding must be one of {', '.join(ENCODINGS)}")
        if values.get("task", "transcribe") not in ("transcribe", "translate"):
            raise StreamFormatError("task must be 'transcribe' or 'translate'")
        try:
            return cls(**values)
        except TypeError as exc:
            raise StreamFormatError(f"bad config: {exc}") from exc


def event_dict(event: StreamEvent) -> dict[str, Any]:
    """The wire form of an event (see docs/API.md)."""
    if event.kind == "vad":
        return {"type": "vad", "speech": bool(event.speech),
                "time": event.start if event.speech else event.end}  # fmt: skip
    words = [dataclasses.asdict(w) for w in event.words]
    body = {"type": event.kind, "text": event.text, "words": words}
    if event.kind == "final":
        body |= {"seq": event.seq, "start": event.start, "end": event.end}
    return body


class ServerBusyError(RuntimeError):
    """The session limit is reached; the message says so (never a silent stall)."""


class StreamSession:
    """Decodes one stream's frames in order on a shared engine, taking `turns` with the other
    sessions on that engine. Text events carry `latency`: seconds from the arrival of the audio
    holding their last word to the event (for a final at the end of speech this includes the
    VAD's end-of-speech wait)."""

    def __init__(
        self,
        config: StreamConfig,
        engine: Any,
        turns: EngineTurns,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.resampler = StreamResampler(config.sample_rate)
        options = StreamOptions(language=config.language, task=config.task,  # type: ignore[arg-type]
                                partials=config.partials)  # fmt: skip
        self.transcriber = StreamingTranscriber(engine, options, turns)
        self._clock = clock
        self._arrivals: deque[tuple[float, float]] = deque()  # (stream seconds, clock) per frame

    @property
    def bytes_per_second(self) -> int:
        return self.config.sample_rate * (2 if self.config.encoding == "pcm16" else 4)

    def feed_frames(self, frames: list[tuple[bytes, float]]) -> list[dict[str, Any]]:
        """Frames that arrived (clock seconds) while the last update ran, decoded together: a
        stream that fell behind catches up with one update instead of one per frame (callers
        keep a batch under CATCH_UP_SECONDS)."""
        pieces = []
        for frame, arrived in frames:
            if len(frame) > MAX_FRAME_BYTES:
                raise StreamFormatError(f"frame of {len(frame)} bytes; at most {MAX_FRAME_BYTES}")
            pieces.append(self.resampler.push(decode_frame(frame, self.config.encoding)))
            self._arrived(sum(p.size for p in pieces), arrived)
        return self._decode(np.concatenate(pieces) if pieces else np.zeros(0, np.float32))

    def feed_samples(self, chunks: list[tuple[np.ndarray, float]]) -> list[dict[str, Any]]:
        """16 kHz float32 chunks (n,) with their arrival times, decoded together."""
        total = 0
        for samples, arrived in chunks:
            total += samples.size
            self._arrived(total, arrived)
        return self._decode(np.concatenate([c for c, _ in chunks]) if chunks else np.zeros(0))

    def finish(self) -> list[dict[str, Any]]:
        tail = self.resampler.flush()
        self._arrived(tail.size, self._clock())
        events = self.transcriber.feed(tail) + self.transcriber.finish()
        return self._with_latency(events)

    @property
    def speech(self) -> bool:
        return self.transcriber.speaking

    def _decode(self, samples: np.ndarray) -> list[dict[str, Any]]:
        return self._with_latency(self.transcriber.feed(samples))

    def _arrived(self, samples_ahead: int, arrived: float) -> None:
        """Audio up to `samples_ahead` past what the transcriber holds arrived at `arrived`."""
        position = self.transcriber.now + samples_ahead / SAMPLE_RATE
        self._arrivals.append((position, arrived))
        while self._arrivals and self._arrivals[0][0] < position - ARRIVALS_KEPT:
            self._arrivals.popleft()

    def _arrival(self, stream_time: float) -> float:
        """When the audio at `stream_time` arrived (clock seconds)."""
        for received, at in self._arrivals:
            if received >= stream_time:
                return at
        return self._clock()

    def _with_latency(self, events: list[StreamEvent]) -> list[dict[str, Any]]:
        now, out = self._clock(), []
        for event in events:
            body = event_dict(event)
            if event.words:
                body["latency"] = round(now - self._arrival(event.words[-1].end), 3)
            out.append(body)
        return out


class StreamHub:
    """The live sessions of one server: a limit on their number, and one `EngineTurns` per
    loaded engine (sessions share the model, which runs as many decodes at once as it has
    workers; finals go first)."""

    def __init__(self, max_sessions: int = 8) -> None:
        self.max_sessions = max_sessions
        self._guard = threading.Lock()
        self._turns: dict[int, EngineTurns] = {}
        self.active = 0

    def open(self, config: StreamConfig) -> StreamSession:
        """A session for `config`; ServerBusyError past the limit, LookupError for a model."""
        with self._guard:
            if self.active >= self.max_sessions:
                raise ServerBusyError(
                    f"the server is busy: {self.active} live sessions of {self.max_sessions}; "
                    "try again later"
                )
            self.active += 1
        try:
            engine = load_engine(config.model)
            with self._guard:
                slots = getattr(engine, "parallel_decodes", 1)
                turns = self._turns.setdefault(id(engine), EngineTurns(slots))
            return StreamSession(config, engine, turns)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        with self._guard:
            self.active = max(0, self.active - 1)
