"""Script facts and the Amharic normalizer: vectors per homophone series and order, labialized
spellings, punctuation, code-switching, and idempotence / never-raise properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.amharic.normalize import normalize_amharic
from utils.amharic.script import is_ethiopic, script_ratio

ORDERS = range(7)  # the seven vowel orders of a series, offsets 0..6 in its row


def _series(base: int) -> list[str]:
    return [chr(base + k) for k in ORDERS]


def test_every_ethiopic_block_is_ethiopic_and_neighbours_are_not():
    for low, high in (
        (0x1200, 0x139F),  # Ethiopic and its Supplement are adjacent
        (0x2D80, 0x2DDF),
        (0xAB00, 0xAB2F),
        (0x1E7E0, 0x1E7FF),
    ):
        assert is_ethiopic(chr(low)) and is_ethiopic(chr(high))
        assert not is_ethiopic(chr(low - 1)) and not is_ethiopic(chr(high + 1))
    assert is_ethiopic("\u137f") and is_ethiopic("\u1380")
    assert is_ethiopic("\U0001e7e0")  # Extended-B
    assert not is_ethiopic("a") and not is_ethiopic("") and not is_ethiopic("ሀሀ")


def test_script_ratio_counts_non_space_characters():
    shares = script_ratio("ሰላም hi 12 ።!")
    assert shares == pytest.approx(
        {"ethiopic": 4 / 9, "latin": 2 / 9, "digits": 2 / 9, "other": 1 / 9}
    )
    assert script_ratio("   ") == {"ethiopic": 0.0, "latin": 0.0, "digits": 0.0, "other": 0.0}
    assert script_ratio("፲፪")["ethiopic"] == 1.0  # Ethiopic numerals are Ethiopic script


@pytest.mark.parametrize(
    ("series", "onto"),
    [
        (0x1210, 0x1200),
        (0x1280, 0x1200),
        (0x12B8, 0x1200),
        (0x1220, 0x1230),
        (0x12D0, 0x12A0),
        (0x1340, 0x1338),
    ],
    ids=["ሐ->ሀ", "ኀ->ሀ", "ኸ->ሀ", "ሠ->ሰ", "ዐ->አ", "ፀ->ጸ"],
)
def test_homophone_series_fold_order_by_order(series, onto):
    expected = _series(onto)
    if onto in (0x1200, 0x12A0):  # the 4th order of the laryngeals sounds as the 1st
        expected[3] = expected[0]
    assert [normalize_amharic(ch) for ch in _series(series)] == expected
    assert [normalize_amharic(ch, homophones=False) for ch in _series(series)] == _series(series)


def test_fourth_order_laryngeals_and_the_example_words():
    assert {normalize_amharic(ch) for ch in "ሃሓኃኻ"} == {"ሀ"}
    assert {normalize_amharic(ch) for ch in "ዓኣ"} == {"አ"}
    assert normalize_amharic("ዓለም") == normalize_amharic("አለም") == "አለም"
    assert normalize_amharic("ፀሐይ") == normalize_amharic("ጸሀይ") == "ጸሀይ"
    assert normalize_amharic("ሠላም") == "ሰላም"
    assert normalize_amharic("ሰ", homophones=True) == "ሰ"  # the targets stay
    assert normalize_amharic("ሧ") == "ሷ" and normalize_amharic("ሗ") == "ኋ"


def test_labialized_spellings_become_single_letters():
    pairs = {
        "ሉዋ": "ሏ",
        "ሙዋ": "ሟ",
        "ሩዋ": "ሯ",
        "ሱዋ": "ሷ",
        "ቡዋ": "ቧ",
        "ቱዋ": "ቷ",
        "ኑዋ": "ኗ",
        "ዙዋ": "ዟ",
        "ዱዋ": "ዷ",
        "ጡዋ": "ጧ",
        "ፉዋ": "ፏ",
        "ቁዋ": "ቋ",
        "ኩዋ": "ኳ",
        "ጉዋ": "ጓ",
        "ሁዋ": "ኋ",
        "ሑዋ": "ኋ",
    }
    for spelled, letter in pairs.items():
        assert normalize_amharic(spelled) == letter, spelled
        assert normalize_amharic(f"አ{spelled}ል") == f"አ{letter}ል"
    assert normalize_amharic("ሉዋ", labialized=False) == "ሉዋ"
    assert normalize_amharic("ቊ") == "ቁ" and normalize_amharic("ኵ") == "ኩ"
    assert normalize_amharic("ቍጥር") == "ቁጥር"
    assert normalize_amharic("ኡዋ") == "ኡዋ"  # ኧ is a vowel letter, not a labialized glottal


def test_punctuation_variants():
    assert normalize_amharic("ሰላም፡፡") == normalize_amharic("ሰላም::") == "ሰላም።"
    assert normalize_amharic("ሰላም፡ዓለም") == "ሰላም አለም"  # the old word separator
    assert normalize_amharic("ሰዓቱ 3፡30 ነው") == "ሰአቱ 3:30 ነው"
    text = "ሰላም፣ ዓለም፤ እንዴት ነህ፧ «ደህና» 3:30, 2.5 1,000።"
    assert normalize_amharic(text, punctuation="remove") == "ሰላም አለም እንዴት ነህ ደህና 3:30 2.5 1000"
    assert normalize_amharic(text, punctuation="ascii") == (
        "ሰላም, አለም; እንዴት ነህ? «ደህና» 3:30, 2.5 1,000."
    )
    assert normalize_amharic("ሀ፠ለ፨መ", punctuation="ascii") == "ሀ ለ መ"
    assert normalize_amharic(":፥", punctuation="ascii") == "."  # stays so on a second pass


def test_combining_marks_and_whitespace():
    assert normalize_amharic("ሰ\u135fላም \u135d") == "ሰላም"
    assert normalize_amharic("  ሰላም \t\n ዓለም  ") == "ሰላም አለም"
    assert normalize_amharic("ሉ\u135eዋ") == "ሏ"  # a mark between the pair does not hide it


def test_code_switching_passes_through():
    text = "ዛሬ Zoom meeting አለን at 3PM, room B-12 ደግሞ iPhone 15"
    assert normalize_amharic(text) == text
    assert normalize_amharic("Hello World 2024") == "Hello World 2024"


def test_option_values_are_checked():
    with pytest.raises(ValueError, match="punctuation"):
        normalize_amharic("ሀ", punctuation="strip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="numerals"):
        normalize_amharic("ሀ", numerals="roman")  # type: ignore[arg-type]


ETHIOPIC_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x1200, max_codepoint=0x139F),
        st.sampled_from(" ::፡፡,.0123456789abcXYZ\u135d\u135fዋሉቁ\t"),
    ),
    max_size=40,
)
OPTIONS = st.fixed_dictionaries(
    {
        "homophones": st.booleans(),
        "labialized": st.booleans(),
        "punctuation": st.sampled_from(["keep", "remove", "ascii"]),
        "numerals": st.sampled_from(["keep", "arabic"]),
        "times_dates": st.booleans(),
    }
)
WORDY_TEXT = st.lists(
    st.sampled_from(
        [
            "ሁለት",
            "ሺህ",
            "ሃያ",
            "አራት",
            "መቶ",
            "ሚሊዮን",
            "አስራ",
            "፲፪",
            "፳፻",
            "፼",
            "12",
            "3:30",
            "ቀን",
            "ዓ.ም",
            "፡",
            "::",
            "ሉዋ",
            "ሦስት",
            "ሰዓት",
            "hello",
            ",",
            ".",
        ]
    ),
    max_size=12,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(text=ETHIOPIC_TEXT, options=OPTIONS)
def test_normalization_is_idempotent(text, options):
    once = normalize_amharic(text, **options)
    assert normalize_amharic(once, **options) == once


@settings(max_examples=300, deadline=None)
@given(text=WORDY_TEXT, options=OPTIONS)
def test_normalization_with_numbers_is_idempotent(text, options):
    once = normalize_amharic(text, **options)
    assert normalize_amharic(once, **options) == once


def test_times_and_dates_written_differently_compare_equal():
    def scoring(text: str) -> str:
        return normalize_amharic(text, punctuation="remove", numerals="arabic", times_dates=True)

    assert scoring("ከጠዋቱ 3:30 ላይ") == scoring("ከጠዋቱ ሦስት ሰዓት ተኩል ላይ") == scoring("ከጧቱ 3፡30 ላይ")
    assert scoring("መስከረም 12 ቀን 2017 ዓ.ም") == scoring("12/01/2017") == scoring("መስከረም ፲፪, ፳፻፲፯")
    assert "ሀ" in scoring("ሐምሌ 5 2016 ዓ.ም") and "ሐ" not in scoring("ሐምሌ 5 2016 ዓ.ም")


def test_numerals_and_number_words_compare_equal_as_arabic_digits():
    forms = ["በ 2024 ዓ.ም", "በ ፳፻፳፬ ዓ.ም", "በ ሁለት ሺህ ሃያ አራት ዓ.ም", "በ ሁለት ሺሕ ሀያ አራት ዓ.ም"]
    normalized = {normalize_amharic(f, numerals="arabic", punctuation="remove") for f in forms}
    assert normalized == {"በ 2024 አ ም"}
    assert normalize_amharic("፲፪ ሰዎች", numerals="arabic") == "12 ሰዎች"
    assert normalize_amharic("፲፪ ሰዎች") == "፲፪ ሰዎች"  # numerals="keep" is the default


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60), options=OPTIONS)
def test_normalization_never_raises_on_any_text(text, options):
    assert isinstance(normalize_amharic(text, **options), str)


def test_contract_names_are_importable_from_amharic_processing():
    from utils import amharic_processing as am

    contract = [
        "is_ethiopic",
        "script_ratio",
        "normalize_amharic",
        "ethiopic_to_int",
        "int_to_ethiopic",
        "ethiopic_numerals_to_arabic",
        "number_to_amharic_words",
        "amharic_words_to_number",
        "to_gregorian",
        "to_ethiopian",
        "transliterate",
        "decompose",
    ]
    assert all(callable(getattr(am, name)) for name in contract)
    assert am.ethiopic_to_int("፲፱፻፹፭") == 1985 and am.int_to_ethiopic(101) == "፻፩"
    assert am.amharic_words_to_number("ሁለት ሺህ ሃያ አራት") == 2024
    assert am.transliterate(am.transliterate("ዓለም"), to="ethiopic") == "ዓለም"
