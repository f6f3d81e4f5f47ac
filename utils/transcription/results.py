"""Typed transcription results, the same from every engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from utils.audio import AudioInfo


@dataclass(frozen=True)
class Word:
    start: float  # seconds from the start of the audio
    end: float
    word: str  # with its leading space, as the tokenizer spells it
    probability: float  # in [0, 1]


@dataclass(frozen=True)
class Segment:
    start: float  # seconds
    end: float
    text: str
    avg_logprob: float  # mean natural-log probability per token
    no_speech_prob: float
    compression_ratio: float = 0.0
    temperature: float = 0.0
    words: tuple[Word, ...] = ()
    tokens: tuple[int, ...] = ()
    window_start: float = 0.0  # seconds: start of the decoder window this segment came from

    def shifted(self, seconds: float) -> Segment:
        """This segment with its times (and its words') moved `seconds` later: block-relative
        times made absolute from the file start."""
        words = tuple(
            Word(w.start + seconds, w.end + seconds, w.word, w.probability) for w in self.words
        )
        return replace(
            self,
            start=self.start + seconds,
            end=self.end + seconds,
            window_start=self.window_start + seconds,
            words=words,
        )


@dataclass(frozen=True)
class Timings:
    load: float = 0.0  # seconds the engine took to load (once per process; it is cached)
    decode: float = 0.0  # seconds spent decoding, audio decoding included

    def rtf(self, duration: float) -> float:
        """Real-time factor: decode seconds per audio second."""
        return self.decode / duration if duration > 0 else 0.0


@dataclass(frozen=True)
class TranscriptionResult:
    text: str
    segments: tuple[Segment, ...]
    language: str
    language_probability: float
    duration: float  # seconds of audio
    timings: Timings = field(default_factory=Timings)
    audio_info: AudioInfo | None = None
    source: str = ""  # file name or a description of the input

    @classmethod
    def from_segments(
        cls,
        segments: Sequence[Segment],
        language: str | None,
        language_probability: float,
        duration: float,
        timings: Timings,
        audio_info: AudioInfo | None,
        source: str,
    ) -> TranscriptionResult:
        """The result whose text is its segments' texts joined (each carries its own spacing)."""
        return cls(
            text="".join(segment.text for segment in segments).strip(),
            segments=tuple(segments),
            language=language or "",
            language_probability=float(language_probability),
            duration=duration,
            timings=timings,
            audio_info=audio_info,
            source=source,
        )

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(word for segment in self.segments for word in segment.words)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: text, language, duration, segments with their words."""
        return {
            "text": self.text,
            "language": self.language,
            "language_probability": self.language_probability,
            "duration": self.duration,
            "source": self.source,
            "timings": asdict(self.timings),
            "segments": [
                {
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "avg_logprob": s.avg_logprob,
                    "no_speech_prob": s.no_speech_prob,
                    "compression_ratio": s.compression_ratio,
                    "temperature": s.temperature,
                    "words": [asdict(w) for w in s.words],
                }
                for s in self.segments
            ],
        }
