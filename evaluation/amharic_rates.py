"""Amharic figures: syllable, consonant and vowel error rates and confusion counts.

Definitions (all rates are fractions of the reference syllables of the scored utterances):

* Texts are normalized with the Amharic normalizer (punctuation removed, numerals as Arabic
  digits) and reduced to their *syllable sequence*: the Ge'ez syllables that
  `utils.amharic.syllables.decompose` accepts, in order. Spaces, digits, Latin letters and
  anything else `decompose` rejects are dropped, so word-boundary errors do not count here.
* The syllable sequences are aligned by plain Levenshtein distance (jiwer); the syllable error
  rate (SER) is (S + D + I) / reference syllables on that alignment.
* On the same alignment, each substitution of syllable r by h is split with `decompose`: a
  consonant error when their consonants differ, a vowel error when their vowel orders differ
  (ሀ→ሁ: vowel only; ሀ→ለ: consonant only; ሀ→ሉ: both). A deleted or inserted syllable is one
  consonant error and one vowel error. Consonant (vowel) error rate = consonant (vowel) errors
  / reference syllables. The alignment does not favour consonant or vowel matches among
  equal-cost alternatives, so these counts follow jiwer's tie-breaking. Consonant and order
  are `decompose`'s: e.g. ሏ is ('ለ', 8), so ላ→ሏ is a vowel error; ኳ is ('ኰ', 4), so ካ→ኳ is
  a consonant error (the labialized series counts as a consonant of its own).
* Utterances with no reference syllables are left out of the rates and confusions; they are
  counted in `empty_references`, with their inserted syllables in `empty_reference_insertions`.
* `characters` counts aligned syllable pairs, `consonants` the consonant pairs of the same
  alignment (the consonant "phoneme confusion matrix"); both include matches and gaps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from evaluation.alignment import AlignOp, EditCounts, TokenAlignment, align_tokens, sum_counts
from evaluation.confusions import GAP, Confusions, op_pairs
from evaluation.normalizers import get_normalizer, normalize_all
from evaluation.scoring import check_inputs

Decompose = Callable[[str], tuple[str, int]]
SyllableTable = dict[str, tuple[str, int]]  # syllable -> (consonant, vowel order)


@dataclass(frozen=True)
class PhoneErrors:
    """Consonant and vowel errors (counts of syllable positions)."""

    consonant: int = 0
    vowel: int = 0

    def __add__(self, other: PhoneErrors) -> PhoneErrors:
        return PhoneErrors(self.consonant + other.consonant, self.vowel + other.vowel)


@dataclass(frozen=True)
class AmharicRates:
    """Syllable, consonant and vowel error rates (fractions) with confusion counts."""

    syllable_error_rate: float
    consonant_error_rate: float
    vowel_error_rate: float
    syllables: int  # reference syllables over the scored utterances
    syllable_edits: EditCounts
    consonant_errors: int
    vowel_errors: int
    n: int  # all utterances
    scored: int  # utterances with at least one reference syllable
    empty_references: int
    empty_reference_insertions: int  # hypothesis syllables on the empty references
    characters: Confusions
    consonants: Confusions

    def to_dict(self, *, top: int = 20) -> dict[str, Any]:
        """JSON-ready form with the `top` syllable and consonant confusions."""
        return {
            "syllable_error_rate": self.syllable_error_rate,
            "consonant_error_rate": self.consonant_error_rate,
            "vowel_error_rate": self.vowel_error_rate,
            "syllables": self.syllables,
            "syllable_edits": self.syllable_edits.to_dict(),
            "consonant_errors": self.consonant_errors,
            "vowel_errors": self.vowel_errors,
            "n": self.n,
            "scored": self.scored,
            "empty_references": self.empty_references,
            "empty_reference_insertions": self.empty_reference_insertions,
            "top_syllable_confusions": [row.to_dict() for row in self.characters.top(top)],
            "top_consonant_confusions": [row.to_dict() for row in self.consonants.top(top)],
        }


def _load_decompose() -> Decompose:
    # Imported lazily: the syllable module is only needed for Amharic figures.
    from utils.amharic.syllables import decompose

    return decompose


def syllable_table(texts: Iterable[str], decompose: Decompose) -> SyllableTable:
    """Each distinct character of `texts` that `decompose` accepts -> (consonant, order)."""
    table: SyllableTable = {}
    for ch in set("".join(texts)):
        try:
            table[ch] = decompose(ch)
        except ValueError:
            continue  # not a syllable: dropped from the syllable sequence
    return table


def phone_errors(op: AlignOp, table: SyllableTable) -> PhoneErrors:
    """Consonant and vowel errors of one aligned syllable position (see the module docstring)."""
    if op.kind == "equal":
        return PhoneErrors()
    if op.ref is None or op.hyp is None:
        return PhoneErrors(1, 1)  # a deletion or insertion loses (or adds) both
    ref, hyp = table[op.ref], table[op.hyp]
    return PhoneErrors(int(ref[0] != hyp[0]), int(ref[1] != hyp[1]))


def sum_phone_errors(ops: Iterable[AlignOp], table: SyllableTable) -> PhoneErrors:
    """Total consonant and vowel errors of aligned syllable positions."""
    total = PhoneErrors()
    for op in ops:
        total = total + phone_errors(op, table)
    return total


def _consonant_pair(pair: tuple[str, str], table: SyllableTable) -> tuple[str, str]:
    ref, hyp = pair
    return (
        GAP if ref == GAP else table[ref][0],
        GAP if hyp == GAP else table[hyp][0],
    )


def syllable_alignments(
    references: Sequence[str], hypotheses: Sequence[str], table: SyllableTable
) -> tuple[TokenAlignment, ...]:
    """Alignments of the syllable sequences of already-normalized texts."""
    refs = [[ch for ch in text if ch in table] for text in references]
    hyps = [[ch for ch in text if ch in table] for text in hypotheses]
    return align_tokens(refs, hyps)


def _rates(alignments: Sequence[TokenAlignment], table: SyllableTable) -> AmharicRates:
    scored = [a for a in alignments if a.counts.reference_length > 0]
    if not scored:
        raise ValueError(
            f"none of the {len(alignments)} references has a Ge'ez syllable after "
            "normalization, so the syllable error rates are undefined"
        )
    edits = sum_counts([a.counts for a in scored])
    phones = sum_phone_errors([op for a in scored for op in a.ops], table)
    pairs = [pair for a in scored for pair in op_pairs(a.ops)]
    total = edits.reference_length
    empty = [a for a in alignments if a.counts.reference_length == 0]
    return AmharicRates(
        syllable_error_rate=edits.errors / total,
        consonant_error_rate=phones.consonant / total,
        vowel_error_rate=phones.vowel / total,
        syllables=total,
        syllable_edits=edits,
        consonant_errors=phones.consonant,
        vowel_errors=phones.vowel,
        n=len(alignments),
        scored=len(scored),
        empty_references=len(empty),
        empty_reference_insertions=sum(a.counts.insertions for a in empty),
        characters=Confusions.from_pairs(pairs),
        consonants=Confusions.from_pairs(_consonant_pair(p, table) for p in pairs),
    )


def amharic_rates(
    references: Sequence[str],
    hypotheses: Sequence[str],
    *,
    homophones: bool = True,
    labialized: bool = True,
    decompose: Decompose | None = None,
) -> AmharicRates:
    """Syllable/consonant/vowel error rates and confusions (see the module docstring).

    `homophones`/`labialized` are passed to the Amharic normalizer; `decompose` defaults to
    `utils.amharic.syllables.decompose`. Raises ValueError for different lengths, no
    utterances, or no reference syllables at all.
    """
    check_inputs(references, hypotheses)
    normalize = get_normalizer("amharic", "am", homophones=homophones, labialized=labialized)
    refs, hyps = normalize_all(references, normalize), normalize_all(hypotheses, normalize)
    table = syllable_table((*refs, *hyps), decompose or _load_decompose())
    return _rates(syllable_alignments(refs, hyps, table), table)
