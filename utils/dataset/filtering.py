"""Quality filters over a dataset's manifest: preview the counts (streaming, nothing written, for
live counts in a UI), then apply them as a new manifest version (`utils.dataset.versions`).

Choices:

- Bounds are inclusive: `min_x` removes values below it, `max_x` values above it.
- `min_seconds` / `max_seconds` read the manifest's `duration` (always present); the other
  criteria read the figures of `utils.audio_quality` stored in `Utterance.quality`
  (`snr_db`, `clipping_ratio`, `chars_per_second`).
- An utterance lacking a figure that a set criterion needs (never measured, or None: `snr_db`
  is None when the VAD found no speech, `chars_per_second` without text) is KEPT by default, as
  it cannot be judged; such utterances are counted per figure in `unmeasured` so a UI can show
  them. With `remove_unmeasured=True` they are removed with the reason `no <figure>`.
- Reasons are the option names (`min_snr_db`, `max_seconds`...); an utterance failing several
  criteria counts under each of them in `removed_by_reason`.
- Applying writes `versions/filter_removed-vN.jsonl` (N: the version the filter writes), one JSON
  object per removed utterance: id, audio, reasons and the figures that were checked. A filter
  that would remove every utterance, or one with no criterion set, is refused (ValueError) and
  the dataset is left as it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from utils.dataset.manifest import MANIFEST_NAME, Utterance, iter_manifest
from utils.dataset.versions import VERSIONS_DIR, VersionInfo, atomic_lines, new_version

# option name, figure it reads ("duration" is the manifest field), bound kind
_CRITERIA = (
    ("min_snr_db", "snr_db", "min"),
    ("max_clipping_ratio", "clipping_ratio", "max"),
    ("min_seconds", "duration", "min"),
    ("max_seconds", "duration", "max"),
    ("min_chars_per_second", "chars_per_second", "min"),
    ("max_chars_per_second", "chars_per_second", "max"),
)


@dataclass(frozen=True)
class FilterOptions:
    """Quality filter; every bound is off when None. See the module notes for missing figures."""

    min_snr_db: float | None = None
    max_clipping_ratio: float | None = None
    min_seconds: float | None = None
    max_seconds: float | None = None
    min_chars_per_second: float | None = None
    max_chars_per_second: float | None = None
    remove_unmeasured: bool = False

    def active(self) -> dict[str, float]:
        """The bounds that are set, by option name."""
        return {name: float(getattr(self, name)) for name, _, _ in _CRITERIA if self._set(name)}

    def _set(self, name: str) -> bool:
        return getattr(self, name) is not None

    def check(self) -> None:
        """ValueError when a bound is negative or a minimum exceeds its maximum."""
        for name, value in self.active().items():
            if value < 0 and name != "min_snr_db":
                raise ValueError(f"{name} must not be negative, not {value}")
        pairs = (("min_seconds", "max_seconds"), ("min_chars_per_second", "max_chars_per_second"))
        for low, high in pairs:
            if self._set(low) and self._set(high) and getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) is above {high}")


@dataclass(frozen=True)
class FilterPreview:
    """What a filter keeps and removes. `removed_by_reason`: utterances per failed criterion
    (one utterance may count under several); `unmeasured`: utterances lacking a figure a set
    criterion needs, by figure (kept unless `remove_unmeasured`)."""

    total: int
    kept: int
    removed: int
    kept_hours: float
    removed_hours: float
    removed_by_reason: dict[str, int] = field(default_factory=dict)
    unmeasured: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FilterResult:
    """An applied filter: its counts, the version it wrote and the record of what it removed."""

    counts: FilterPreview
    version: VersionInfo
    removed_path: Path


@dataclass(frozen=True)
class Verdict:
    """One utterance judged: failed criteria (empty when kept), missing figures, checked values."""

    reasons: tuple[str, ...]
    missing: tuple[str, ...]
    figures: dict[str, float | None]


def judge(utterance: Utterance, options: FilterOptions) -> Verdict:
    """The verdict of `options` on one utterance."""
    reasons, missing, figures = [], [], {}
    for name, figure, kind in _CRITERIA:
        bound = getattr(options, name)
        if bound is None:
            continue
        value = _figure(utterance, figure)
        figures[figure] = value
        if value is None:
            if figure not in missing:
                missing.append(figure)
                if options.remove_unmeasured:
                    reasons.append(f"no {figure}")
        elif (value < bound) if kind == "min" else (value > bound):
            reasons.append(name)
    return Verdict(tuple(reasons), tuple(missing), figures)


def _figure(utterance: Utterance, figure: str) -> float | None:
    if figure == "duration":
        return utterance.duration
    value = utterance.quality.get(figure)
    return None if value is None else float(value)


class _Tally:
    """Counts of one pass over a manifest (local to that pass)."""

    def __init__(self) -> None:
        self.kept = self.removed = 0
        self.kept_seconds = self.removed_seconds = 0.0
        self.reasons: dict[str, int] = {}
        self.unmeasured: dict[str, int] = {}

    def add(self, utterance: Utterance, verdict: Verdict) -> None:
        for figure in verdict.missing:
            self.unmeasured[figure] = self.unmeasured.get(figure, 0) + 1
        if not verdict.reasons:
            self.kept += 1
            self.kept_seconds += utterance.duration
            return
        self.removed += 1
        self.removed_seconds += utterance.duration
        for reason in verdict.reasons:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def preview(self) -> FilterPreview:
        return FilterPreview(
            total=self.kept + self.removed,
            kept=self.kept,
            removed=self.removed,
            kept_hours=round(self.kept_seconds / 3600, 4),
            removed_hours=round(self.removed_seconds / 3600, 4),
            removed_by_reason=dict(sorted(self.reasons.items())),
            unmeasured=dict(sorted(self.unmeasured.items())),
        )


def preview_filter(root: str | os.PathLike, options: FilterOptions) -> FilterPreview:
    """The counts `apply_filter` would give, streaming over the manifest; nothing is written."""
    options.check()
    tally = _Tally()
    for utterance in iter_manifest(Path(root) / MANIFEST_NAME):
        tally.add(utterance, judge(utterance, options))
    return tally.preview()


def apply_filter(root: str | os.PathLike, options: FilterOptions) -> FilterResult:
    """Write the utterances `options` keeps as a new manifest version, the removed ones (with
    their reasons) to `versions/filter_removed-vN.jsonl`, and a lineage step "filter" with the
    options and counts. ValueError when no criterion is set or nothing would be kept."""
    options.check()
    if not options.active():
        raise ValueError("no filter criterion set")
    root, tally = Path(root), _Tally()
    with new_version(root, "filter") as draft:
        removed_path = root / VERSIONS_DIR / f"filter_removed-v{draft.number}.jsonl"
        with atomic_lines(removed_path) as removed:
            _filter_pass(root, options, draft.write, removed, tally)
            if tally.kept == 0:
                raise ValueError(f"the filter would remove all {tally.removed} utterances")
        counts = tally.preview()
        draft.step.update(
            options={**options.active(), "remove_unmeasured": options.remove_unmeasured},
            **counts.to_dict(),
            removed_record=removed_path.relative_to(root).as_posix(),
        )
    assert draft.info is not None
    return FilterResult(counts, draft.info, removed_path)


def _filter_pass(
    root: Path,
    options: FilterOptions,
    keep: Callable[[Utterance], None],
    removed: IO[str],
    tally: _Tally,
) -> None:
    for utterance in iter_manifest(root / MANIFEST_NAME):
        verdict = judge(utterance, options)
        tally.add(utterance, verdict)
        if not verdict.reasons:
            keep(utterance)
            continue
        record = {
            "id": utterance.id,
            "audio": utterance.audio,
            "reasons": list(verdict.reasons),
            "figures": verdict.figures,
        }
        removed.write(json.dumps(record, ensure_ascii=False) + "\n")
