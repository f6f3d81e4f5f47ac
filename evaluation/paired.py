"""Paired bootstrap comparison of two systems on the same utterances (Koehn 2004).

Both systems are scored on the same resampled utterance sets. `delta` = rate(B) - rate(A), so a
negative delta means system B makes fewer errors. The p-value is Koehn's: the share of resamples
in which the observed winner does not win (the resampled delta is zero or has the opposite sign),
with add-one smoothing, p = (k + 1) / (samples + 1), so it is never 0 and its resolution is
1 / (samples + 1). When the observed delta is exactly 0 there is no winner and p = 1.
Utterances with an empty normalized reference are left out, as in `score`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluation.bootstrap import (
    Interval,
    check_bootstrap_args,
    percentile_interval,
    resampled_sums,
)
from evaluation.scoring import (
    Metric,
    check_inputs,
    error_table,
    scored_utterances,
    utterance_scores,
)


@dataclass(frozen=True)
class PairedComparison:
    """System A vs system B on one metric; rates are fractions."""

    metric: Metric
    a: float  # corpus rate of system A
    b: float  # corpus rate of system B
    delta: float  # b - a (negative: B is better)
    delta_ci: Interval
    p_value: float
    samples: int
    n: int  # utterances compared (empty references excluded)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "metric": self.metric,
            "a": self.a,
            "b": self.b,
            "delta": self.delta,
            "delta_ci": self.delta_ci.to_list(),
            "confidence": self.delta_ci.confidence,
            "p_value": self.p_value,
            "samples": self.samples,
            "n": self.n,
        }


def koehn_p_value(observed: float, resampled: np.ndarray) -> float:
    """Share (smoothed) of resampled deltas that do not share the observed delta's sign."""
    if observed == 0.0:
        return 1.0
    losses = int(np.count_nonzero(np.sign(resampled) != np.sign(observed)))
    return (losses + 1) / (resampled.size + 1)


def _paired_table(
    references: Sequence[str],
    hyp_a: Sequence[str],
    hyp_b: Sequence[str],
    language: str,
    metric: Metric,
    normalizer: str,
) -> np.ndarray:
    # Columns: errors of A, errors of B, reference length; empty references dropped.
    a = scored_utterances(utterance_scores(references, hyp_a, language, normalizer=normalizer))
    b = scored_utterances(utterance_scores(references, hyp_b, language, normalizer=normalizer))
    table_a, table_b = error_table(a, metric), error_table(b, metric)
    return np.column_stack([table_a[:, 0], table_b[:, 0], table_a[:, 1]])


def paired_bootstrap(
    references: Sequence[str],
    hyp_a: Sequence[str],
    hyp_b: Sequence[str],
    language: str,
    *,
    metric: Metric = "wer",
    normalizer: str = "auto",
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Compare systems A and B by paired bootstrap (see the module docstring).

    Raises ValueError for different lengths, no utterances, only empty references, a metric
    other than "wer"/"cer", or samples < 1.
    """
    check_inputs(references, hyp_a, hyp_b)
    check_bootstrap_args(confidence, samples)
    if samples < 1:
        raise ValueError(f"paired bootstrap needs at least 1 sample, got {samples}")
    table = _paired_table(references, hyp_a, hyp_b, language, metric, normalizer)
    errors_a, errors_b, length = (int(x) for x in table.sum(axis=0))
    sums = resampled_sums(table, samples=samples, seed=seed)
    deltas = (sums[:, 1] - sums[:, 0]) / sums[:, 2]
    delta = (errors_b - errors_a) / length
    return PairedComparison(
        metric=metric,
        a=errors_a / length,
        b=errors_b / length,
        delta=delta,
        delta_ci=percentile_interval(deltas, confidence),
        p_value=koehn_p_value(delta, deltas),
        samples=samples,
        n=int(table.shape[0]),
    )
