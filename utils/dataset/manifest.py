"""The canonical dataset manifest: one JSON object per utterance per line (JSONL).

A dataset is a directory under the workspace's `datasets/` holding `manifest.jsonl`, the audio
it names (paths relative to the directory) and `dataset.json` (see `utils.dataset.store`).
Every importer writes this manifest; training, evaluation and export read only it. Reading
streams line by line, so memory does not grow with the dataset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.jsonl"
SPLITS = ("train", "validation", "test")


class ManifestError(ValueError):
    """A manifest line that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Translation:
    text: str
    language: str


@dataclass(frozen=True)
class TimedText:
    """A word or segment with its times in seconds from the utterance start."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Utterance:
    """One manifest line. `audio` is relative to the dataset directory; `start`/`end` (seconds)
    select a part of that file when set. `quality` holds the figures of
    `utils.audio_quality.QualityFigures.to_dict()` once measured."""

    id: str
    audio: str
    duration: float  # seconds (of the selected part when start/end are set)
    sample_rate: int  # Hz of the stored audio file
    text: str
    normalized_text: str = ""
    language: str = ""
    speaker: str = ""
    split: str = ""  # "", "train", "validation" or "test"
    start: float | None = None
    end: float | None = None
    translation: Translation | None = None
    words: tuple[TimedText, ...] = ()
    segments: tuple[TimedText, ...] = ()
    quality: Mapping[str, float | None] = field(default_factory=dict)
    source: str = ""  # where it came from, e.g. "metadata.csv:12"

    def to_json(self) -> str:
        """The manifest line (no newline); empty optional fields are left out."""
        record: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value in (None, "", (), {}) and f.name not in ("id", "audio", "text"):
                continue
            if f.name == "translation":
                value = {"text": value.text, "language": value.language}
            elif f.name in ("words", "segments"):
                value = [[t.start, t.end, t.text] for t in value]
            elif f.name == "quality":
                value = dict(value)
            record[f.name] = value
        return json.dumps(record, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str, where: str = "") -> Utterance:
        """Parse one manifest line; ManifestError (naming `where`) when it is not valid."""
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(record, dict):
            raise ManifestError(f"{where}: a manifest line must be a JSON object")
        return cls.from_record(record, where)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], where: str = "") -> Utterance:
        missing = [k for k in ("id", "audio", "duration", "sample_rate", "text") if k not in record]
        if missing:
            raise ManifestError(f"{where}: missing {', '.join(missing)}")
        unknown = set(record) - {f.name for f in fields(cls)}
        if unknown:
            raise ManifestError(f"{where}: unknown fields {', '.join(sorted(unknown))}")
        try:
            return _typed(cls(**record))
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise ManifestError(f"{where}: {exc}") from exc

    def audio_path(self, root: str | os.PathLike) -> Path:
        return Path(root) / self.audio


def _typed(utt: Utterance) -> Utterance:
    """Fields from JSON made into their types, checked."""
    translation = utt.translation
    if isinstance(translation, Mapping):
        translation = Translation(str(translation["text"]), str(translation["language"]))
    timed = {
        name: tuple(TimedText(float(a), float(b), str(t)) for a, b, t in getattr(utt, name))
        for name in ("words", "segments")
    }
    if not isinstance(utt.text, str) or not isinstance(utt.id, str) or not utt.id:
        raise ValueError("id must be a non-empty string and text a string")
    if utt.split not in ("", *SPLITS):
        raise ValueError(f"split must be one of {', '.join(SPLITS)} or empty, not {utt.split!r}")
    duration, rate = float(utt.duration), int(utt.sample_rate)
    if duration < 0 or rate <= 0:
        raise ValueError(f"duration {duration} and sample_rate {rate} must be positive")
    return replace(
        utt,
        duration=duration,
        sample_rate=rate,
        translation=translation,
        quality=dict(utt.quality or {}),
        start=None if utt.start is None else float(utt.start),
        end=None if utt.end is None else float(utt.end),
        **timed,
    )


def iter_manifest(path: str | os.PathLike) -> Iterator[Utterance]:
    """Utterances of a manifest file, streamed; ManifestError names the file and line of the
    first line that cannot be read (blank lines are skipped)."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield Utterance.from_json(line, f"{path}:{number}")


class ManifestWriter:
    """Writes a manifest line by line to a temporary file that replaces `path` on a clean exit,
    so a failed or interrupted write never leaves a half manifest behind."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._partial = self.path.with_name(f".{self.path.name}.partial")
        self._handle: Any = None
        self.count = 0

    def __enter__(self) -> ManifestWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self._partial, "w", encoding="utf-8")
        return self

    def write(self, utterance: Utterance) -> None:
        self._handle.write(utterance.to_json() + "\n")
        self.count += 1

    def __exit__(self, kind, value, traceback) -> None:
        self._handle.close()
        if kind is None:
            os.replace(self._partial, self.path)
        else:
            self._partial.unlink(missing_ok=True)
