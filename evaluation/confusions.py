"""Confusion counts between aligned reference and hypothesis labels, ready for a heat map."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluation.alignment import AlignOp

GAP = "∅"  # the label standing for "nothing": a deletion's hypothesis, an insertion's reference


@dataclass(frozen=True)
class ConfusionRow:
    """`count` times the reference label `ref` was aligned to the hypothesis label `hyp`."""

    ref: str
    hyp: str
    count: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ref": self.ref, "hyp": self.hyp, "count": self.count}


def _row_order(row: ConfusionRow) -> tuple[int, str, str]:
    return (-row.count, row.ref, row.hyp)


@dataclass(frozen=True, eq=False)
class Confusions:
    """A square count matrix over `labels`: counts[i, j] = how often reference label i was
    aligned to hypothesis label j. The diagonal holds matches; the `GAP` row holds insertions
    and the `GAP` column deletions. Labels are sorted, with `GAP` last when present."""

    labels: tuple[str, ...]
    counts: np.ndarray  # int64, shape (len(labels), len(labels)), read-only

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Confusions:
        """Count (ref label, hyp label) pairs."""
        tally = Counter(pairs)
        seen = {label for pair in tally for label in pair}
        labels = tuple(sorted(seen - {GAP})) + ((GAP,) if GAP in seen else ())
        position = {label: i for i, label in enumerate(labels)}
        counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
        for (ref, hyp), count in tally.items():
            counts[position[ref], position[hyp]] = count
        counts.setflags(write=False)
        return cls(labels, counts)

    def count(self, ref: str, hyp: str) -> int:
        """How often `ref` was aligned to `hyp` (0 for labels never seen)."""
        if ref not in self.labels or hyp not in self.labels:
            return 0
        return int(self.counts[self.labels.index(ref), self.labels.index(hyp)])

    def rows(self, *, matches: bool = False) -> tuple[ConfusionRow, ...]:
        """Non-zero cells as rows, most frequent first (ties by ref, then hyp label);
        diagonal (matching) cells only when `matches` is True."""
        cells = zip(*np.nonzero(self.counts), strict=True)
        rows = [
            ConfusionRow(self.labels[i], self.labels[j], int(self.counts[i, j]))
            for i, j in cells
            if matches or i != j
        ]
        return tuple(sorted(rows, key=_row_order))

    def top(self, n: int) -> tuple[ConfusionRow, ...]:
        """The `n` most frequent confusions (off-diagonal cells, gaps included)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return self.rows()[:n]

    def to_dict(self, *, top: int | None = None) -> dict[str, Any]:
        """JSON-ready form: the full matrix, or only the `top` confusions when given."""
        if top is not None:
            return {"top": [row.to_dict() for row in self.top(top)]}
        return {"labels": list(self.labels), "counts": self.counts.tolist()}


def op_pairs(ops: Iterable[AlignOp]) -> list[tuple[str, str]]:
    """(ref, hyp) label pairs of alignment ops, with `GAP` for the missing side."""
    return [(GAP if op.ref is None else op.ref, GAP if op.hyp is None else op.hyp) for op in ops]
