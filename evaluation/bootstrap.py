"""Utterance-level bootstrap: resample utterances with replacement, recompute corpus sums.

Resampling draws `n` utterance indices with replacement from a `numpy.random.Generator` seeded
with `seed`, so results are reproducible for the same data, sample count and seed. Intervals are
percentile intervals (numpy's linear interpolation) of the resampled statistic.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# Bound one resampling block to about this many drawn indices (8 bytes each) to cap memory.
_BLOCK_INDICES = 1_000_000


@dataclass(frozen=True)
class Interval:
    """A two-sided interval (`low` <= `high`) at `confidence` (0..1); unpacks as (low, high)."""

    low: float
    high: float
    confidence: float

    def __iter__(self) -> Iterator[float]:
        yield self.low
        yield self.high

    @property
    def width(self) -> float:
        """high - low (same unit as the statistic)."""
        return self.high - self.low

    def contains(self, value: float) -> bool:
        """True when low <= value <= high."""
        return self.low <= value <= self.high

    def to_list(self) -> list[float]:
        """[low, high], JSON-ready."""
        return [self.low, self.high]


def check_bootstrap_args(confidence: float, samples: int) -> None:
    """Raise ValueError unless 0 < confidence < 1 and samples >= 0 (0 = no bootstrap)."""
    if not (0.0 < confidence < 1.0) or math.isnan(confidence):
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    if samples < 0:
        raise ValueError(f"the number of bootstrap samples must be >= 0, got {samples}")


def _index_blocks(n: int, samples: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    rows = max(1, _BLOCK_INDICES // max(n, 1))
    done = 0
    while done < samples:
        size = min(rows, samples - done)
        yield rng.integers(0, n, size=(size, n))
        done += size


def resampled_sums(columns: np.ndarray, *, samples: int, seed: int) -> np.ndarray:
    """Column sums of `samples` bootstrap resamples of the rows of `columns`.

    `columns` has shape (utterances, k) (e.g. errors and reference lengths per utterance); the
    result has shape (samples, k): row b is the sum over the utterances drawn in resample b.
    """
    table = np.asarray(columns)
    if table.ndim != 2 or table.shape[0] == 0:
        raise ValueError(f"need a non-empty 2-D table of per-utterance values, got {table.shape}")
    rng = np.random.default_rng(seed)
    blocks = [table[idx].sum(axis=1) for idx in _index_blocks(table.shape[0], samples, rng)]
    if not blocks:
        return np.zeros((0, table.shape[1]), dtype=table.dtype)
    return np.concatenate(blocks, axis=0)


def percentile_interval(values: np.ndarray, confidence: float) -> Interval:
    """The central `confidence` percentile interval of `values` (a 1-D array, non-empty)."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(np.asarray(values, dtype=float), [tail, 100.0 - tail])
    return Interval(float(low), float(high), confidence)


def bootstrap_rate_interval(
    errors: np.ndarray, lengths: np.ndarray, *, confidence: float, samples: int, seed: int
) -> Interval | None:
    """Percentile interval of the corpus rate sum(errors) / sum(lengths) under resampling.

    `errors` and `lengths` are per-utterance counts (every length > 0, so no resample divides
    by zero). None when `samples` is 0.
    """
    if samples == 0:
        return None
    sums = resampled_sums(np.column_stack([errors, lengths]), samples=samples, seed=seed)
    return percentile_interval(sums[:, 0] / sums[:, 1], confidence)
