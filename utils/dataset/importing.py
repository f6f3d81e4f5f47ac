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
from dataclasses import asdict, dataclass, field
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


@dataclass(frozen=True)
class _Decoded:
    item: SourceItem
    samples: np.ndarray | None = None
    fixes: tuple[str, ...] = ()
    error: str = ""
    quality: dict | None = None


def _cut(samples: np.ndarray, item: SourceItem) -> np.ndarray:
    if item.start is None and item.end is None:
        return samples
    start = int((item.start or 0.0) * SAMPLE_RATE)
    end = samples.size if item.end is None else int(item.end * SAMPLE_RATE)
    return samples[start:end]


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
    if seconds > options.max_seconds:
        return _Decoded(item, error=f"audio is {seconds:.1f} s, over {options.max_seconds:g} s")
    if seconds < options.min_seconds:
        return _Decoded(item, error=f"audio is {seconds:.3f} s, under {options.min_seconds:g} s")
    fixes = []
    if decoded.info.sample_rate != SAMPLE_RATE:
        fixes.append(f"resampled from {decoded.info.sample_rate} Hz to {SAMPLE_RATE} Hz")
    if decoded.info.channels != 1:
        fixes.append(f"mixed down from {decoded.info.channels} channels to mono")
    quality = None
    if options.measure_quality:
        from utils.audio_quality import measure

        quality = measure(samples, item.text).to_dict()
    return _Decoded(item, samples, tuple(fixes), quality=quality)


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
    texts = TextChecker(options.language)
    with ManifestWriter(out / MANIFEST_NAME) as manifest:
        for done, result in enumerate(_decoded_in_order(items, options), 1):
            utterance = _accept(result, out, texts, seen, report)
            if utterance is not None:
                manifest.write(utterance)
            if progress:
                progress(done)
    (out / REPORT_NAME).write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    return report


def _accept(
    result: _Decoded | Problem, out: Path, texts: TextChecker, seen: set, report: ImportReport
) -> Utterance | None:
    """The manifest line for a decoded item, or None with the reason added to the report."""
    if isinstance(result, Problem):
        report.rejected.append(result)
        return None
    item = result.item
    reason = result.error or texts.rejection(item.text) or _duplicate(item.id, seen)
    if reason:
        report.rejected.append(Problem(item.where, reason, item.id))
        return None
    seen.add(item.id)
    for warning in texts.warnings(item.text):
        report.warnings.append(Problem(item.where, warning, item.id))
    for fix in result.fixes:
        report.fixed.append(Problem(item.where, fix, item.id))
    audio = f"audio/{_safe_name(item.id)}.wav"
    _write_wav(out / audio, result.samples)
    report.kept += 1
    return Utterance(
        id=item.id,
        audio=audio,
        duration=round(result.samples.size / SAMPLE_RATE, 4),
        sample_rate=SAMPLE_RATE,
        text=item.text,
        normalized_text=texts.normalize(item.text),
        language=item.language or texts.language,
        speaker=item.speaker,
        split=item.split,
        translation=item.translation,
        quality=result.quality or {},
        source=item.where,
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
