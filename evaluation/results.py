"""Typed, JSON-ready results of `evaluation.scoring.score`.

Empty references: an utterance whose *normalized* reference has no words (and so no
characters) has no defined error rate. It is left out of the corpus WER/CER, their counts and
their bootstrap, but it is still listed in `Scores.utterances`, and the words/characters the
hypothesis puts there (hallucinations on silence) are totalled in `Scores.empty_references`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evaluation.alignment import AlignOp, EditCounts
from evaluation.bootstrap import Interval


def _rate(counts: EditCounts) -> float | None:
    length = counts.reference_length
    return None if length == 0 else counts.errors / length


@dataclass(frozen=True)
class UtteranceScore:
    """One utterance: raw and normalized texts, word and character edits, word alignment."""

    index: int  # position in the input (0-based)
    reference: str
    hypothesis: str
    reference_normalized: str
    hypothesis_normalized: str
    words: EditCounts
    chars: EditCounts
    alignment: tuple[AlignOp, ...]  # word-level, in reference order

    @property
    def empty_reference(self) -> bool:
        """True when the normalized reference has no words (left out of corpus rates)."""
        return self.words.reference_length == 0

    @property
    def wer(self) -> float | None:
        """Word errors / reference words (a fraction); None for an empty reference."""
        return _rate(self.words)

    @property
    def cer(self) -> float | None:
        """Character errors / reference characters (a fraction); None for an empty reference."""
        return _rate(self.chars)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "index": self.index,
            "reference": self.reference,
            "hypothesis": self.hypothesis,
            "reference_normalized": self.reference_normalized,
            "hypothesis_normalized": self.hypothesis_normalized,
            "empty_reference": self.empty_reference,
            "wer": self.wer,
            "cer": self.cer,
            "words": self.words.to_dict(),
            "chars": self.chars.to_dict(),
            "alignment": [op.to_dict() for op in self.alignment],
        }


@dataclass(frozen=True)
class EmptyReferences:
    """Utterances with an empty normalized reference (excluded from the corpus rates)."""

    count: int
    indices: tuple[int, ...]
    word_insertions: int  # hypothesis words on those utterances
    char_insertions: int  # hypothesis characters on those utterances

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "count": self.count,
            "indices": list(self.indices),
            "word_insertions": self.word_insertions,
            "char_insertions": self.char_insertions,
        }


def _interval_dict(interval: Interval | None) -> list[float] | None:
    return None if interval is None else interval.to_list()


@dataclass(frozen=True)
class Scores:
    """Corpus WER/CER (fractions, not percent) with bootstrap intervals and per-utterance detail.

    Corpus rates are total errors / total reference tokens over the scored utterances (those
    with a non-empty normalized reference), not a mean of per-utterance rates.
    """

    wer: float
    cer: float
    wer_ci: Interval | None  # None when bootstrap was 0
    cer_ci: Interval | None
    n: int  # all utterances, empty references included
    scored: int  # utterances with a non-empty normalized reference
    words: int  # reference words over the scored utterances
    chars: int  # reference characters (spaces included) over the scored utterances
    word_edits: EditCounts
    char_edits: EditCounts
    empty_references: EmptyReferences
    language: str
    normalizer: str  # the concrete normalizer used ("auto" resolved)
    utterances: tuple[UtteranceScore, ...]

    @property
    def substitutions(self) -> int:
        """Word substitutions over the scored utterances."""
        return self.word_edits.substitutions

    @property
    def deletions(self) -> int:
        """Word deletions over the scored utterances."""
        return self.word_edits.deletions

    @property
    def insertions(self) -> int:
        """Word insertions over the scored utterances (see `empty_references` for the rest)."""
        return self.word_edits.insertions

    @property
    def hits(self) -> int:
        """Correct words over the scored utterances."""
        return self.word_edits.hits

    def to_dict(self, *, utterances: bool = False) -> dict[str, Any]:
        """JSON-ready form; per-utterance detail only when `utterances` is True."""
        data: dict[str, Any] = {
            "wer": self.wer,
            "cer": self.cer,
            "wer_ci": _interval_dict(self.wer_ci),
            "cer_ci": _interval_dict(self.cer_ci),
            "confidence": None if self.wer_ci is None else self.wer_ci.confidence,
            "n": self.n,
            "scored": self.scored,
            "words": self.words,
            "chars": self.chars,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "hits": self.hits,
            "char_edits": self.char_edits.to_dict(),
            "empty_references": self.empty_references.to_dict(),
            "language": self.language,
            "normalizer": self.normalizer,
        }
        if utterances:
            data["utterances"] = [u.to_dict() for u in self.utterances]
        return data
