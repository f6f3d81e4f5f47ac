"""Ethiopic numerals and Amharic number words: reference vectors both ways, round trips,
rejection of malformed input, and the running-text converters (which never raise)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.amharic.number_words import (
    amharic_number_words_to_digits,
    amharic_words_to_number,
    number_to_amharic_words,
)
from utils.amharic.numerals import (
    NUMERAL_LETTERS,
    ethiopic_numerals_to_arabic,
    ethiopic_to_int,
    int_to_ethiopic,
    is_ethiopic_numeral,
)

FAST = settings(max_examples=300, deadline=None)

# Worked out by hand from CLDR's rbnf rule set "ethiopic" (ICU root.txt NumberingSystemRules):
#   100: ፻[>>]   200: <<፻[>>]   10000: ፼[>>]   20000: <<፼[>>]
#   100000000: ፼>%%ethiopic-p1>   200000000: <<፼>%%ethiopic-p1>
#   %%ethiopic-p1:  0: ፼;  1: ፼=%%ethiopic-p=;  10000: <%ethiopic<፼[>%ethiopic>]
ETHIOPIC_VECTORS: list[tuple[int, str]] = [
    (1, "፩"),
    (5, "፭"),
    (9, "፱"),
    (10, "፲"),
    (11, "፲፩"),
    (12, "፲፪"),  # not 102: a tens letter, then a units letter
    (19, "፲፱"),
    (20, "፳"),
    (50, "፶"),
    (55, "፶፭"),
    (99, "፺፱"),
    (100, "፻"),  # 100: ፻[>>], no leading ፩
    (101, "፻፩"),
    (110, "፻፲"),
    (111, "፻፲፩"),
    (123, "፻፳፫"),
    (200, "፪፻"),  # 200: <<፻[>>]
    (300, "፫፻"),
    (500, "፭፻"),
    (999, "፱፻፺፱"),
    (1000, "፲፻"),  # 10 hundreds
    (1100, "፲፩፻"),
    (1985, "፲፱፻፹፭"),
    (2016, "፳፻፲፮"),
    (2024, "፳፻፳፬"),
    (9999, "፺፱፻፺፱"),
    (10000, "፼"),  # 10000: ፼[>>], no leading ፩
    (10001, "፼፩"),
    (10010, "፼፲"),
    (10100, "፼፻"),
    (11000, "፼፲፻"),
    (12345, "፼፳፫፻፵፭"),
    (20000, "፪፼"),  # 20000: <<፼[>>]
    (20002, "፪፼፪"),
    (99999, "፱፼፺፱፻፺፱"),
    (100000, "፲፼"),
    (100001, "፲፼፩"),
    (123456, "፲፪፼፴፬፻፶፮"),
    (1000000, "፻፼"),
    (1000001, "፻፼፩"),
    (1010000, "፻፩፼"),
    (1234567, "፻፳፫፼፵፭፻፷፯"),
    (10**7, "፲፻፼"),
    (10**8, "፼፼"),  # ፼ then p1(0) = ፼
    (10**8 + 1, "፼፼፩"),  # ፼ then p1(1) = ፼ + ፩
    (100010000, "፼፩፼"),  # p1(10000) = <%ethiopic< ፼: the middle 1 is written
    (100010001, "፼፩፼፩"),
    (101000000, "፼፻፼"),
    (110000000, "፼፲፻፼"),
    (123456789, "፼፳፫፻፵፭፼፷፯፻፹፱"),
    (200000000, "፪፼፼"),
    (987654321, "፱፼፹፯፻፷፭፼፵፫፻፳፩"),
    (10**9, "፲፼፼"),
    (10**10, "፻፼፼"),
    (10**11, "፲፻፼፼"),
    (10**12 - 1, "፺፱፻፺፱፼፺፱፻፺፱፼፺፱፻፺፱"),
]

WORD_VECTORS: list[tuple[int, str]] = [
    (0, "ዜሮ"),
    (1, "አንድ"),
    (3, "ሦስት"),
    (10, "አስር"),
    (11, "አስራ አንድ"),
    (12, "አስራ ሁለት"),
    (19, "አስራ ዘጠኝ"),
    (20, "ሃያ"),
    (21, "ሃያ አንድ"),
    (60, "ስልሳ"),
    (99, "ዘጠና ዘጠኝ"),
    (100, "መቶ"),
    (101, "መቶ አንድ"),
    (250, "ሁለት መቶ ሃምሳ"),
    (1000, "አንድ ሺህ"),
    (1001, "አንድ ሺህ አንድ"),
    (1985, "አንድ ሺህ ዘጠኝ መቶ ሰማንያ አምስት"),
    (2024, "ሁለት ሺህ ሃያ አራት"),
    (10000, "አስር ሺህ"),
    (100000, "መቶ ሺህ"),
    (123456, "መቶ ሃያ ሦስት ሺህ አራት መቶ ሃምሳ ስድስት"),
    (10**6, "አንድ ሚሊዮን"),
    (1234567, "አንድ ሚሊዮን ሁለት መቶ ሰላሳ አራት ሺህ አምስት መቶ ስልሳ ሰባት"),
    (10**9, "አንድ ቢሊዮን"),
    (3 * 10**9 + 12, "ሦስት ቢሊዮን አስራ ሁለት"),
]


# --- Ethiopic numerals -----------------------------------------------------------------------


@pytest.mark.parametrize(("n", "numeral"), ETHIOPIC_VECTORS)
def test_ethiopic_reference_vectors(n: int, numeral: str) -> None:
    assert int_to_ethiopic(n) == numeral
    assert ethiopic_to_int(numeral) == n


@FAST
@given(st.integers(min_value=1, max_value=10**12 - 1))
def test_ethiopic_round_trip(n: int) -> None:
    numeral = int_to_ethiopic(n)
    assert all(is_ethiopic_numeral(ch) for ch in numeral)
    assert ethiopic_to_int(numeral) == n


def test_redundant_leading_one_is_accepted() -> None:
    assert ethiopic_to_int("፩፻") == 100
    assert ethiopic_to_int("፩፻፩") == 101
    assert ethiopic_to_int("፩፼") == 10000
    assert ethiopic_to_int("፩፼፼") == 10**8
    assert ethiopic_to_int("፼፩፻") == 10100


@pytest.mark.parametrize(
    ("numeral", "reason"),
    [
        ("", "empty"),
        ("12", "not an Ethiopic numeral character"),
        ("፲፪a", "not an Ethiopic numeral character"),
        (" ፲፪", "not an Ethiopic numeral character"),
        ("፪፫", "two units in a row"),
        ("፩፩", "two units in a row"),
        ("፫፲", "tens after units"),
        ("፲፳", "two tens in a row"),
        ("፻፻", "twice"),
        ("፪፻፫፻", "twice"),
        ("፼፼፼", "10\\*\\*12 or more"),
        ("፪፼፼፼", "10\\*\\*12 or more"),
    ],
)
def test_invalid_numerals_raise(numeral: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        ethiopic_to_int(numeral)
    assert repr(numeral) in str(caught.value)


@pytest.mark.parametrize("n", [0, -1, 10**12])
def test_int_to_ethiopic_out_of_range(n: int) -> None:
    with pytest.raises(ValueError):
        int_to_ethiopic(n)


def test_is_ethiopic_numeral() -> None:
    assert len(NUMERAL_LETTERS) == 20
    assert all(is_ethiopic_numeral(chr(c)) for c in range(0x1369, 0x137D))
    assert not is_ethiopic_numeral("1")
    assert not is_ethiopic_numeral("ሀ")
    assert not is_ethiopic_numeral("፲፪")
    assert not is_ethiopic_numeral("")


def test_numerals_in_running_text() -> None:
    text = "በ፲፱፻፹፭ ዓ.ም ፪፫ ሰዎች ፲፪ኛ ፻፼ ብር፤ ፲2 ፼፼፼"
    assert ethiopic_numerals_to_arabic(text) == "በ1985 ዓ.ም ፪፫ ሰዎች 12ኛ 1000000 ብር፤ ፲2 ፼፼፼"
    assert ethiopic_numerals_to_arabic("") == ""
    assert ethiopic_numerals_to_arabic("no numerals") == "no numerals"


@FAST
@given(st.text())
def test_numerals_to_arabic_never_raises(text: str) -> None:
    assert isinstance(ethiopic_numerals_to_arabic(text), str)


@FAST
@given(st.text(alphabet=NUMERAL_LETTERS + " a1.", max_size=40))
def test_numerals_to_arabic_never_raises_on_numeral_soup(text: str) -> None:
    out = ethiopic_numerals_to_arabic(text)
    assert ethiopic_numerals_to_arabic(out) == out  # what is left is not a valid numeral


# --- Amharic number words --------------------------------------------------------------------


@pytest.mark.parametrize(("n", "words"), WORD_VECTORS)
def test_word_reference_vectors(n: int, words: str) -> None:
    assert number_to_amharic_words(n) == words
    assert amharic_words_to_number(words) == n


@FAST
@given(st.integers(min_value=0, max_value=10**9))
def test_words_round_trip(n: int) -> None:
    assert amharic_words_to_number(number_to_amharic_words(n)) == n


@pytest.mark.parametrize(
    ("words", "n"),
    [
        ("ሶስት", 3),
        ("ሦስት", 3),
        ("አሥር", 10),
        ("ዐሥር", 10),
        ("አሥራ ሁለት", 12),
        ("ዐሥራ ሁለት", 12),
        ("አስራሁለት", 12),
        ("ሀያ", 20),
        ("ሐያ", 20),
        ("ሠላሳ", 30),
        ("ሃምሳ", 50),
        ("ኀምሳ", 50),
        ("ስድሳ", 60),
        ("ሰማኒያ", 80),
        ("አንድ መቶ", 100),
        ("ሺ", 1000),
        ("ሺህ", 1000),
        ("አንድ ሺ", 1000),
        ("ኹለት ሺ ሃያ አራት", 2024),
        ("ሁለት፡ሺህ፡ሃያ፡አራት", 2024),
        ("  ሁለት   ሺህ ", 2000),
        ("አንድ ሺህ አንድ መቶ", 1100),
        ("ሚልዮን", 10**6),
        ("ሁለት ሚሊየን", 2 * 10**6),
        ("ሦስት ቢሊዮን", 3 * 10**9),
    ],
)
def test_word_spelling_variants(words: str, n: int) -> None:
    assert amharic_words_to_number(words) == n


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "ሰላም",
        "ሁለት ሰላም",
        "2024",
        "አስራ",
        "አስር አንድ",
        "ሃያ ሰላሳ",
        "ሁለት ሦስት",
        "መቶ መቶ",
        "ሃያ መቶ",
        "ሺህ ሺህ",
        "ሺህ ሚሊዮን",
        "ዜሮ አንድ",
        "ሁለትም",
    ],
)
def test_not_a_number_raises(text: str) -> None:
    with pytest.raises(ValueError, match="not an Amharic number"):
        amharic_words_to_number(text)


@pytest.mark.parametrize("n", [-1, 10**12])
def test_number_to_words_out_of_range(n: int) -> None:
    with pytest.raises(ValueError):
        number_to_amharic_words(n)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("በ ሁለት ሺህ ሃያ አራት ዓ.ም", "በ 2024 ዓ.ም"),
        ("አንድ ሰው ሃያ አምስት ብር ከፈለ።", "1 ሰው 25 ብር ከፈለ።"),
        ("ሁለት ሦስት ቀን", "2 3 ቀን"),  # two numbers, not one
        ("ሁለትም ሰላም ናቸው", "ሁለትም ሰላም ናቸው"),  # only whole words
        ("አስራ ሰላም", "አስራ ሰላም"),  # a lone አስራ is no number
        ("5 ሚሊዮን ብር", "5000000 ብር"),  # digits as coefficient, never "5 1000000"
        ("1.5 ሺህ ሰዎች", "1500 ሰዎች"),
        ("5.ሁለት", "5.ሁለት"),  # would glue onto the digits
        ("ዜሮ", "0"),
        ("hello world", "hello world"),
    ],
)
def test_number_words_in_running_text(text: str, expected: str) -> None:
    assert amharic_number_words_to_digits(text) == expected


@FAST
@given(st.text())
def test_number_words_to_digits_never_raises(text: str) -> None:
    assert isinstance(amharic_number_words_to_digits(text), str)


WORD_SOUP = ["አንድ", "ሁለት", "አስራ", "ሃያ", "መቶ", "ሺህ", "ሚሊዮን", "ዜሮ", "ሰላም", "5", "1.5", "፡"]


@FAST
@given(st.lists(st.sampled_from(WORD_SOUP), max_size=25), st.sampled_from([" ", "\n", "።"]))
def test_number_words_to_digits_is_idempotent_on_word_soup(words: list[str], sep: str) -> None:
    once = amharic_number_words_to_digits(sep.join(words))
    assert amharic_number_words_to_digits(once) == once


@pytest.mark.parametrize("text", ["2024", "፳፻፳፬", "ሁለት ሺህ ሃያ አራት"])
def test_three_ways_to_write_2024(text: str) -> None:
    assert amharic_number_words_to_digits(ethiopic_numerals_to_arabic(text)) == "2024"
