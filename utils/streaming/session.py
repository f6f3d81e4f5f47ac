"""One live stream as the WebSocket and the Live tab drive it: a JSON config, then raw frames;
events out as JSON-ready dicts. Engine code: no web framework here."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

from utils.streaming.audio_input import (
    ENCODINGS,
    Encoding,
    StreamFormatError,
    StreamResampler,
    decode_frame,
)
from utils.streaming.transcriber import StreamEvent, StreamingTranscriber, StreamOptions
from utils.transcription.engine import load_engine

MAX_FRAME_BYTES = 1 << 20  # one frame: 1 MiB (about 33 s of 16 kHz pcm16)
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
    """Decodes one stream's frames in order on a shared engine; `engine_lock` makes the
    sessions sharing that engine take turns on it."""

    def __init__(self, config: StreamConfig, engine: Any, engine_lock: threading.Lock) -> None:
        self.config = config
        self.resampler = StreamResampler(config.sample_rate)
        options = StreamOptions(language=config.language, task=config.task,  # type: ignore[arg-type]
                                partials=config.partials)  # fmt: skip
        self.transcriber = StreamingTranscriber(engine, options)
        self._lock = engine_lock

    def feed(self, frame: bytes) -> list[dict[str, Any]]:
        """One binary frame in, the events it caused out; StreamFormatError for a bad frame."""
        if len(frame) > MAX_FRAME_BYTES:
            raise StreamFormatError(f"frame of {len(frame)} bytes; at most {MAX_FRAME_BYTES}")
        samples = self.resampler.push(decode_frame(frame, self.config.encoding))
        with self._lock:
            return [event_dict(e) for e in self.transcriber.feed(samples)]

    def finish(self) -> list[dict[str, Any]]:
        with self._lock:
            events = self.transcriber.feed(self.resampler.flush())
            events += self.transcriber.finish()
        return [event_dict(e) for e in events]


class StreamHub:
    """The live sessions of one server: a limit on their number, and one lock per loaded
    engine (sessions share the model; it decodes one update at a time)."""

    def __init__(self, max_sessions: int = 8) -> None:
        self.max_sessions = max_sessions
        self._guard = threading.Lock()
        self._engine_locks: dict[int, threading.Lock] = {}
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
                lock = self._engine_locks.setdefault(id(engine), threading.Lock())
            return StreamSession(config, engine, lock)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        with self._guard:
            self.active = max(0, self.active - 1)
