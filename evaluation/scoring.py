"""Corpus WER/CER after language-aware normalization, with utterance-bootstrap intervals.

See `evaluation.results` for how empty references are handled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from evaluation.alignment import align_characters, align_words, sum_counts
from evaluation.bootstrap import Interval, bootstrap_rate_interval, check_bootstrap_args
from evaluation.normalizers import get_normalizer, normalize_all, resolve_normalizer_name
from evaluation.results import EmptyReferences, Scores, UtteranceScore

Metric = Literal["wer", "cer"]


def check_inputs(references: Sequence[str], *hypotheses: Sequence[str]) -> None:
    """Raise TypeError for a bare string, ValueError for no utterances or different lengths."""
    for name, texts in (("references", references), *(("hypotheses", h) for h in hypotheses)):
        if isinstance(texts, str):
            raise TypeError(f"{name} must be a sequence of strings, not one string")
    for hyps in hypotheses:
        if len(hyps) != len(references):
            raise ValueError(
                f"references and hypotheses differ in length: {len(references)} references, "
                f"{len(hyps)} hypotheses"
            )
    if len(references) == 0:
        raise ValueError("no utterances to score: references and hypotheses are empty")


def utterance_scores(
    references: Sequence[str],
    hypotheses: Sequence[str],
    language: str,
    *,
    normalizer: str = "auto",
) -> tuple[UtteranceScore, ...]:
    """Per-utterance normalized texts, word/character edits and word alignments."""
    check_inputs(references, hypotheses)
    normalize = get_normalizer(normalizer, language)
    refs, hyps = normalize_all(references, normalize), normalize_all(hypotheses, normalize)
    words, chars = align_words(refs, hyps), align_characters(refs, hyps)
    return tuple(
        UtteranceScore(
            index=i,
            reference=references[i],
            hypothesis=hypotheses[i],
            reference_normalized=refs[i],
            hypothesis_normalized=hyps[i],
            words=words[i].counts,
            chars=chars[i].counts,
            alignment=words[i].ops,
        )
        for i in range(len(refs))
    )


def scored_utterances(utterances: Sequence[UtteranceScore]) -> tuple[UtteranceScore, ...]:
    """The utterances with a non-empty normalized reference.

    Raises ValueError when there are none: a corpus of empty references has no defined rate.
    """
    scored = tuple(u for u in utterances if not u.empty_reference)
    if not scored:
        raise ValueError(
            f"all {len(utterances)} references are empty after normalization, so WER and CER "
            "are undefined (no reference words to divide by)"
        )
    return scored


def error_table(utterances: Sequence[UtteranceScore], metric: Metric) -> np.ndarray:
    """Shape (utterances, 2) int array: errors and reference length per utterance (words for
    "wer", characters for "cer")."""
    if metric not in ("wer", "cer"):
        raise ValueError(f"metric must be 'wer' or 'cer', got {metric!r}")
    counts = [u.words if metric == "wer" else u.chars for u in utterances]
    return np.array([[c.errors, c.reference_length] for c in counts], dtype=np.int64).reshape(-1, 2)


def _empty_summary(utterances: Sequence[UtteranceScore]) -> EmptyReferences:
    empty = [u for u in utterances if u.empty_reference]
    return EmptyReferences(
        count=len(empty),
        indices=tuple(u.index for u in empty),
        word_insertions=sum(u.words.insertions for u in empty),
        char_insertions=sum(u.chars.insertions for u in empty),
    )


def _interval(
    scored: Sequence[UtteranceScore], metric: Metric, confidence: float, samples: int, seed: int
) -> Interval | None:
    table = error_table(scored, metric)
    return bootstrap_rate_interval(
        table[:, 0], table[:, 1], confidence=confidence, samples=samples, seed=seed
    )


def score(
    references: Sequence[str],
    hypotheses: Sequence[str],
    language: str,
    *,
    normalizer: str = "auto",
    confidence: float = 0.95,
    bootstrap: int = 1000,
    seed: int = 0,
) -> Scores:
    """Corpus WER and CER (fractions) of `hypotheses` against `references`.

    `normalizer`: "auto" (English for "en", Amharic for "am", basic otherwise), "english",
    "amharic", "basic" or "none". Intervals: percentile bootstrap over utterances with
    `bootstrap` resamples (0 = no intervals) at `confidence`, seeded by `seed`.
    Raises ValueError for different lengths, no utterances, or only empty references.
    """
    check_bootstrap_args(confidence, bootstrap)
    utterances = utterance_scores(references, hypotheses, language, normalizer=normalizer)
    scored = scored_utterances(utterances)
    word_edits = sum_counts([u.words for u in scored])
    char_edits = sum_counts([u.chars for u in scored])
    return Scores(
        wer=word_edits.errors / word_edits.reference_length,
        cer=char_edits.errors / char_edits.reference_length,
        wer_ci=_interval(scored, "wer", confidence, bootstrap, seed),
        cer_ci=_interval(scored, "cer", confidence, bootstrap, seed),
        n=len(utterances),
        scored=len(scored),
        words=word_edits.reference_length,
        chars=char_edits.reference_length,
        word_edits=word_edits,
        char_edits=char_edits,
        empty_references=_empty_summary(utterances),
        language=language,
        normalizer=resolve_normalizer_name(normalizer, language),
        utterances=utterances,
    )
