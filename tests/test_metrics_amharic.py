"""Amharic scoring: syllable/consonant/vowel error rates and confusion counts, hand-worked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaluation.alignment import AlignOp
from evaluation.confusions import GAP, ConfusionRow

pytest.importorskip("utils.amharic.normalize")
pytest.importorskip("utils.amharic.syllables")

from evaluation.amharic_rates import PhoneErrors, amharic_rates, phone_errors, syllable_table
from evaluation.metrics import score
from utils.amharic.syllables import decompose

# ለማ→ሉማ: ለ→ሉ vowel only. በላ ከበደ→ለላ ከቡደ: በ→ለ consonant only, በ→ቡ vowel only.
# ሰላም→ሰም: ላ deleted (one consonant and one vowel error). 10 reference syllables.
REFS = ["ለማ", "በላ ከበደ", "ሰላም"]
HYPS = ["ሉማ", "ለላ ከቡደ", "ሰም"]


@pytest.mark.parametrize(
    ("ref", "hyp", "expected"),
    [
        ("ሀ", "ሁ", PhoneErrors(consonant=0, vowel=1)),
        ("ሀ", "ለ", PhoneErrors(consonant=1, vowel=0)),
        ("ሀ", "ሉ", PhoneErrors(consonant=1, vowel=1)),
        ("ሀ", "ሀ", PhoneErrors(consonant=0, vowel=0)),
    ],
)
def test_phone_errors_of_one_substitution(ref: str, hyp: str, expected: PhoneErrors) -> None:
    table = syllable_table([ref + hyp], decompose)
    kind = "equal" if ref == hyp else "substitute"
    assert phone_errors(AlignOp(kind, ref, hyp), table) == expected


def test_deletions_and_insertions_count_for_both() -> None:
    table = syllable_table(["ሀ"], decompose)
    assert phone_errors(AlignOp("delete", "ሀ", None), table) == PhoneErrors(1, 1)
    assert phone_errors(AlignOp("insert", None, "ሀ"), table) == PhoneErrors(1, 1)


def test_syllable_table_skips_non_syllables() -> None:
    assert set(syllable_table(["ለ a 1 ፩።"], decompose)) == {"ለ"}


def test_hand_worked_rates() -> None:
    rates = amharic_rates(REFS, HYPS)
    assert rates.syllables == 10
    assert (rates.syllable_edits.substitutions, rates.syllable_edits.deletions) == (3, 1)
    assert rates.syllable_edits.insertions == 0
    assert rates.syllable_error_rate == pytest.approx(0.4)
    assert (rates.consonant_errors, rates.vowel_errors) == (2, 3)
    assert rates.consonant_error_rate == pytest.approx(0.2)
    assert rates.vowel_error_rate == pytest.approx(0.3)
    assert (rates.n, rates.scored, rates.empty_references) == (3, 3, 0)


def test_insertion_counts_for_consonant_and_vowel() -> None:
    rates = amharic_rates(["ቤት"], ["ቤትም"])
    assert rates.syllable_edits.insertions == 1
    assert (rates.consonant_errors, rates.vowel_errors) == (1, 1)
    assert rates.syllable_error_rate == pytest.approx(0.5)


def test_syllable_confusions() -> None:
    chars = amharic_rates(REFS, HYPS).characters
    assert chars.top(4) == (
        ConfusionRow("ለ", "ሉ", 1),
        ConfusionRow("ላ", GAP, 1),
        ConfusionRow("በ", "ለ", 1),
        ConfusionRow("በ", "ቡ", 1),
    )
    assert chars.count("ላ", "ላ") == 1 and chars.count("ማ", "ማ") == 1
    assert chars.labels[-1] == GAP
    assert int(chars.counts.sum()) == 10  # every reference syllable aligned once, no insertions


def test_consonant_confusion_matrix() -> None:
    consonants = amharic_rates(REFS, HYPS).consonants
    assert consonants.rows() == (ConfusionRow("ለ", GAP, 1), ConfusionRow("በ", "ለ", 1))
    assert consonants.count("ለ", "ለ") == 2  # ለ→ሉ and ላ=ላ keep the consonant
    assert consonants.count("በ", "በ") == 1  # በ→ቡ
    assert consonants.counts.dtype == np.int64
    assert consonants.counts.shape == (len(consonants.labels),) * 2


def test_homophone_folding_is_selectable() -> None:
    assert amharic_rates(["ሐበሻ"], ["ሀበሻ"]).syllable_error_rate == 0.0
    strict = amharic_rates(["ሐበሻ"], ["ሀበሻ"], homophones=False)
    assert strict.syllable_error_rate == pytest.approx(1 / 3)
    assert (strict.consonant_errors, strict.vowel_errors) == (1, 0)


def test_references_without_syllables_are_reported() -> None:
    rates = amharic_rates(["ለማ", "hello", "123"], ["ለማ", "ሰላ", "123"])
    assert (rates.n, rates.scored, rates.empty_references) == (3, 1, 2)
    assert rates.empty_reference_insertions == 2
    assert rates.syllable_error_rate == 0.0
    with pytest.raises(ValueError, match="none of the 2 references has a Ge'ez syllable"):
        amharic_rates(["abc", ""], ["ለማ", ""])
    with pytest.raises(ValueError, match=r"1 references.*2 hypotheses"):
        amharic_rates(["ለማ"], ["ለማ", "ለ"])


def test_to_dict_is_json_ready() -> None:
    data = json.loads(json.dumps(amharic_rates(REFS, HYPS).to_dict(top=2), ensure_ascii=False))
    assert data["syllables"] == 10
    assert data["top_consonant_confusions"][0] == {"ref": "ለ", "hyp": GAP, "count": 1}


def test_score_uses_the_amharic_normalizer_for_am() -> None:
    # ዓ and አ are homophones, the Ethiopic full stop is punctuation, ፲፪ is 12
    scores = score(["ሰላም ዓለም።", "፲፪ ሰው"], ["ሰላም አለም", "12 ሰው"], "am", bootstrap=10)
    assert scores.normalizer == "amharic"
    assert scores.wer == 0.0 and scores.cer == 0.0
    assert scores.utterances[0].reference_normalized == "ሰላም አለም"
    plain = score(["ሰላም ዓለም።"], ["ሰላም አለም"], "am", normalizer="none", bootstrap=0)
    assert plain.wer == 0.5
