"""Turning importer items into a dataset: decode, check, resample, write audio and manifest.

Importers (`utils.dataset.formats`) yield `SourceItem`s, or `Problem`s for lines they could
not read. `build_dataset` checks each item, writes 16 kHz mono 16-bit WAV under `audio/` and
one manifest line per kept item, and ends with an `ImportReport` of what was kept, fixed and
rejected and why. A rejected item never aborts the import. Items are decoded on a thread pool
(decoding, resampling and VAD release the GIL) with a bounded number in flight, so memory
does not grow with the dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from utils.audio import CHUNK_LENGTH, SAMPLE_RATE, AudioDecodeError, decode_audio
from utils.dataset.manifest import MANIFEST_NAME, ManifestWriter, Translation, Utterance
from utils.dataset.text_checks import TextChecker

REPORT_NAME = "import_report.json"
Progress = Callable[[int], None]  # items handled so far


@dataclass(frozen=True)
class SourceItem:
    """One utterance as an importer found it; `audio` is a path (or encoded bytes)."""

    id: str
    audio: str | bytes
    text: str
    where: str  # file and line it came from, for messages
    speaker: str = ""
    split: str = ""
    language: str = ""
    start: float | None = None  # seconds within the audio file
    end: float | None = None
    translation: Translation | None = None


@dataclass(frozen=True)
class Problem:
    """Why an item was rejected or warned about, naming where it came from."""

    where: str
    reason: str
    id: str = ""

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}" + (f" (id {self.id})" if self.id else "")


@dataclass
class ImportReport:
    kept: int = 0
    fixed: list[Problem] = field(default_factory=list)  # kept after a fix (e.g. resampled)
    rejected: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # kept as is, worth a look

    def to_dict(self) -> dict:
        return {
            "kept": self.kept,
            "fixed": [asdict(p) for p in self.fixed],
            "rejected": [asdict(p) for p in self.rejected],
            "warnings": [asdict(p) for p in self.warnings],
        }

    def summary(self) -> str:
        return (
            f"kept {self.kept} ({len(self.fixed)} after a fix, {len(self.warnings)} with a "
            f"warning), rejected {len(self.rejected)}"
        )


@dataclass(frozen=True)
class ImportOptions:
    language: str = "am"
    max_seconds: float = float(CHUNK_LENGTH)  # longer audio does not fit one encoder window
    min_seconds: float = 0.1
    workers: int = 0  # 0: one per CPU
    measure_quality: bool = True
    segment_long: bool = True  # cut longer recordings at pauses instead of rejecting them
    model: str = "whisper-base"  # aligns transcripts of long recordings with its timestamps


@dataclass(frozen=True)
class _Part:
    """What becomes one utterance: all of an item, or one piece of a long recording."""

    id: str
    samples: np.ndarray
    text: str
    where: str
    quality: dict | None = None


@dataclass(frozen=True)
class _Decoded:
    item: SourceItem
    parts: tuple[_Part, ...] = ()
    fixes: tuple[str, ...] = ()
    error: str = ""


def _cut(samples: np.ndarray, item: SourceItem) -> np.ndarray:
    if item.start is None and item.end is None:
        return samples
    start = int((item.start or 0.0) * SAMPLE_RATE)
    end = samples.size if item.end is None else int(item.end * SAMPLE_RATE)
    return samples[start:end]


def _measured(part: _Part, options: ImportOptions) -> _Part:
    if not options.measure_quality:
        return part
    from utils.audio_quality import measure

    return replace(part, quality=measure(part.samples, part.text).to_dict())


def _pieces(samples: np.ndarray, item: SourceItem, options: ImportOptions) -> list[_Part]:
    """A long recording cut into utterances at pauses, its transcript shared among them."""
    from utils.dataset.segmenting import SegmentOptions, segment_recording
    from utils.transcription.engine import load_engine

    engine = load_engine(options.model)
    language = item.language or options.language
    segment = SegmentOptions(max_seconds=min(25.0, options.max_seconds))
    pieces = segment_recording(samples, item.text, engine, language, segment)
    return [
        _Part(
            f"{item.id}-{k:03d}",
            samples[int(p.start * SAMPLE_RATE) : int(p.end * SAMPLE_RATE)],
            p.text,
            f"{item.where} @ {p.start:.2f}-{p.end:.2f} s",
        )
        for k, p in enumerate(pieces, 1)
    ]


def _decode(item: SourceItem, options: ImportOptions) -> _Decoded:
    """Decode, cut and check one item's audio (runs on a worker thread)."""
    try:
        decoded = decode_audio(item.audio)
    except AudioDecodeError as exc:
        return _Decoded(item, error=str(exc).split(": ", 1)[-1])
    samples = _cut(decoded.samples, item)
    seconds = samples.size / SAMPLE_RATE
    if samples.size == 0 or not np.any(samples):
        return _Decoded(item, error="the audio is empty or all zeros")
    if seconds < options.min_seconds:
        return _Decoded(item, error=f"audio is {seconds:.3f} s, under {options.min_seconds:g} s")
    parts = [_Part(item.id, samples, item.text, item.where)]
    if seconds > options.max_seconds:
        too_long = f"audio is {seconds:.1f} s, over {options.max_seconds:g} s"
        if not options.segment_long or not item.text.strip():
            return _Decoded(item, error=too_long)
        parts = _pieces(samples, item, options)
        if not parts:
            return _Decoded(item, error=f"{too_long}, and no speech was found to cut it at")
    fixes = []
    if decoded.info.sample_rate != SAMPLE_RATE:
        fixes.append(f"resampled from {decoded.info.sample_rate} Hz to {SAMPLE_RATE} Hz")
    if decoded.info.channels != 1:
        fixes.append(f"mixed down from {decoded.info.channels} channels to mono")
    if len(parts) > 1 or parts[0].id != item.id:
        fixes.append(f"{seconds:.1f} s recording cut into {len(parts)} utterances at pauses")
    return _Decoded(item, tuple(_measured(p, options) for p in parts), tuple(fixes))


def _decoded_in_order(
    items: Iterable[SourceItem | Problem], options: ImportOptions
) -> Iterator[_Decoded | Problem]:
    """Items decoded on a pool, yielded in input order with a bounded number in flight."""
    workers = options.workers or os.cpu_count() or 1
    pending: deque[Future | Problem] = deque()
    with ThreadPoolExecutor(workers) as pool:
        for item in items:
            pending.append(
                item if isinstance(item, Problem) else pool.submit(_decode, item, options)
            )
            while len(pending) > 4 * workers:
                head = pending.popleft()
                yield head if isinstance(head, Problem) else head.result()
        while pending:
            head = pending.popleft()
            yield head if isinstance(head, Problem) else head.result()


def _write_wav(path: Path, samples: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16")


def build_dataset(
    items: Iterable[SourceItem | Problem],
    out_dir: str | os.PathLike,
    options: ImportOptions = ImportOptions(),
    progress: Progress | None = None,
) -> ImportReport:
    """Write the dataset at `out_dir` (manifest, audio, report); returns the report."""
    out = Path(out_dir)
    report, seen = ImportReport(), set()
    texts = TextChecker(options.language, options.model)
    with ManifestWriter(out / MANIFEST_NAME) as manifest:
        for done, result in enumerate(_decoded_in_order(items, options), 1):
            for utterance in _accept(result, out, texts, seen, report):
                manifest.write(utterance)
            if progress:
                progress(done)
    (out / REPORT_NAME).write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    return report


def _accept(
    result: _Decoded | Problem, out: Path, texts: TextChecker, seen: set, report: ImportReport
) -> list[Utterance]:
    """The manifest lines for a decoded item; reasons for what is not kept go to the report."""
    if isinstance(result, Problem):
        report.rejected.append(result)
        return []
    item = result.item
    reason = result.error or _duplicate(item.id, seen)
    if reason:
        report.rejected.append(Problem(item.where, reason, item.id))
        return []
    seen.add(item.id)
    for fix in result.fixes:
        report.fixed.append(Problem(item.where, fix, item.id))
    kept = []
    for part in result.parts:
        reason = texts.rejection(part.text)
        if reason:
            report.rejected.append(Problem(part.where, reason, part.id))
            continue
        report.warnings += [Problem(part.where, w, part.id) for w in texts.warnings(part.text)]
        kept.append(_write_part(part, item, out, texts))
    report.kept += len(kept)
    return kept


def _write_part(part: _Part, item: SourceItem, out: Path, texts: TextChecker) -> Utterance:
    audio = f"audio/{_safe_name(part.id)}.wav"
    _write_wav(out / audio, part.samples)
    return Utterance(
        id=part.id,
        audio=audio,
        duration=round(part.samples.size / SAMPLE_RATE, 4),
        sample_rate=SAMPLE_RATE,
        text=part.text,
        normalized_text=texts.normalize(part.text),
        language=item.language or texts.language,
        speaker=item.speaker,
        split=item.split,
        translation=item.translation if part.id == item.id else None,  # not split with pieces
        quality=part.quality or {},
        source=part.where,
    )


def _duplicate(utterance_id: str, seen: set) -> str:
    if not utterance_id.strip():
        return "empty id"
    return f"duplicate id {utterance_id!r}" if utterance_id in seen else ""


def _safe_name(utterance_id: str) -> str:
    """A file name for an id: odd characters replaced, plus a hash of the id when any was, so
    that two ids never share a file."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in utterance_id)[:100]
    if safe == utterance_id and not safe.startswith("."):
        return safe
    return f"{safe}-{hashlib.sha1(utterance_id.encode()).hexdigest()[:10]}"
