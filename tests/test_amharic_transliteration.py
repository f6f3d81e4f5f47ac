"""Ge'ez syllable decomposition (`utils.amharic.syllables`) and SERA-style transliteration
(`utils.amharic.transliteration`): vectors, exhaustive round trips and property tests."""

from __future__ import annotations

import random
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.amharic import transliteration
from utils.amharic.syllables import (
    compose,
    consonant_name,
    consonants,
    decompose,
    is_syllable,
    orders,
    syllables,
)
from utils.amharic.transliteration import SPELLINGS, transliterate

RANGES = (range(0x1200, 0x135B), range(0x1380, 0x13A0))
LETTERS = tuple(
    chr(c)
    for r in RANGES
    for c in r
    if unicodedata.name(chr(c), "").startswith("ETHIOPIC SYLLABLE ")
)
MARKS = tuple(chr(c) for c in range(0x1360, 0x137D))  # punctuation and numerals
VOWEL_INITIAL = tuple(ch for ch in LETTERS if decompose(ch)[0] in ("አ", "ዐ"))
TRICKY_ASCII = "'`^:,;-?<>|+ aeiouEIoWOY019"
_PLAIN_VOWELS = ("A", "U", "I", "AA", "EE", "E", "O")  # name endings of orders 1..7


def round_trip(text: str) -> str:
    return transliterate(transliterate(text, "latin"), "ethiopic")


# --- syllables ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("letter", "expected"),
    [
        ("ሀ", ("ሀ", 1)),
        ("ሁ", ("ሀ", 2)),
        ("ሆ", ("ሀ", 7)),
        ("ሇ", ("ሀ", 8)),
        ("ሏ", ("ለ", 8)),
        ("ሟ", ("መ", 8)),
        ("ቈ", ("ቈ", 1)),
        ("ቊ", ("ቈ", 3)),
        ("ቋ", ("ቈ", 4)),
        ("ቌ", ("ቈ", 5)),
        ("ቍ", ("ቈ", 6)),
        ("ዅ", ("ዀ", 6)),
        ("ፐ", ("ፐ", 1)),
        ("ጰ", ("ጰ", 1)),
        ("ጵ", ("ጰ", 6)),
        ("ኧ", ("አ", 8)),
        ("ዓ", ("ዐ", 4)),
        ("ጟ", ("ጘ", 8)),
        ("ፘ", ("ፘ", 4)),
        ("ፚ", ("ፚ", 4)),
        ("ᎀ", ("ᎀ", 1)),
        ("ᎁ", ("ᎀ", 3)),
        ("ᎂ", ("ᎀ", 5)),
        ("ᎃ", ("ᎀ", 6)),
        ("ᎏ", ("ᎌ", 6)),
    ],
)
def test_decompose_vectors(letter: str, expected: tuple[str, int]) -> None:
    assert decompose(letter) == expected
    assert compose(*expected) == letter


@pytest.mark.parametrize("bad", ["።", "፩", "፼", "a", "1", " ", "", "ሀሁ", "\u1249", "\u135d", "᎐"])
def test_decompose_rejects_non_syllables(bad: str) -> None:
    assert not is_syllable(bad)
    with pytest.raises(ValueError):
        decompose(bad)


@pytest.mark.parametrize(("consonant", "order"), [("ቈ", 2), ("ሁ", 1), ("ሀ", 9), ("a", 1), ("ፘ", 1)])
def test_compose_rejects_missing_letters(consonant: str, order: int) -> None:
    with pytest.raises(ValueError):
        compose(consonant, order)


def test_syllables_are_exactly_the_assigned_letters() -> None:
    assert syllables() == LETTERS
    assert len(LETTERS) == 342
    assert all(is_syllable(ch) for ch in LETTERS)
    assert not is_syllable(None)


def test_compose_inverts_decompose_everywhere() -> None:
    for letter in LETTERS:
        assert compose(*decompose(letter)) == letter
    pairs = {(c, o) for c in consonants() for o in orders(c)}
    assert pairs == {decompose(letter) for letter in LETTERS}
    for consonant in consonants():
        assert decompose(consonant)[0] == consonant


def _expected_name(letter: str) -> str:
    """The Unicode name the (consonant, order) encoding predicts for `letter`."""
    consonant, order = decompose(letter)
    stem = consonant_name(consonant)
    if stem in ("GLOTTAL", "PHARYNGEAL"):
        stem += " "
    if orders(consonant) == (4,):  # ፘ ፙ ፚ: RYA MYA FYA
        return stem + "A"
    if order == 8:
        return unicodedata.name(letter)[len("ETHIOPIC SYLLABLE ") :]
    return stem + _PLAIN_VOWELS[order - 1]


def test_orders_agree_with_unicode_names() -> None:
    for letter in LETTERS:
        name = unicodedata.name(letter).removeprefix("ETHIOPIC SYLLABLE ")
        assert name.removeprefix("SEBATBEIT ") == _expected_name(letter), letter
        consonant, order = decompose(letter)
        if order == 8:  # the -wa / -oa / -waa form at offset 7
            assert re.fullmatch(consonant_name(consonant) + " ?(WA|OA|WAA)", name), letter


# --- transliteration: vectors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("latin", "ethiopic"),
    [
        ("selam", "ሰላም"),
        ("amarNa", "አማርኛ"),
        ("ityoPya", "ኢትዮጵያ"),
        ("a", "አ"),
        ("e", "አ"),
        ("'a", "ኣ"),
        ("kWankWa", "ኳንኳ"),
        ("qWanqWa", "ቋንቋ"),
        ("`alem", "ዓለም"),
        ("lWa ^se ^he ^Se", "ሏ ሠ ኀ ፀ"),
        ("selam:`alem::", "ሰላም፡ዓለም።"),
        ("`10`2 `100", "፲፪ ፻"),
        ("bIa b'e", "ብአ ብአ"),
        ("<hello> selam", "hello ሰላም"),
        ("a < b", "አ < ብ"),
    ],
)
def test_reads_typed_sera(latin: str, ethiopic: str) -> None:
    assert transliterate(latin, "ethiopic") == ethiopic


@pytest.mark.parametrize(
    ("ethiopic", "latin"),
    [
        ("ሰላም hello ዓለም 2024", "selam <hello> `alem 2024"),
        ("አማርኛ", "amarNa"),
        ("ኢትዮጵያ", "ityoPya"),
        ("ብአ", "bIa"),
        ("ብእ", "bII"),
        ("፡፡", ":<>:"),
        ("፩0", "`1<>0"),
        ("ቋ ሏ ሟ ቇ ኧ ኣ ጟ ፘ ᎀ ᎃ", "qWa lWa mWa qOa 'Wa 'a GWa rYa mWe mW"),
        ("hello world ሀ x>y", "<hello world> he <x>><y>"),
    ],
)
def test_writes_latin(ethiopic: str, latin: str) -> None:
    assert transliterate(ethiopic, "latin") == latin
    assert transliterate(latin, "ethiopic") == ethiopic


def test_docstring_tables_match_the_code() -> None:
    doc = transliteration.__doc__ or ""
    table = doc[doc.index("Consonants") : doc.index("Vowels, by order")]
    pairs = re.findall(r"([\u1200-\u139f])\s+(\S+)", table)
    assert len(pairs) == len(consonants())
    for letter, code in pairs:
        spelled = SPELLINGS[letter][-1]  # the consonant + vowel form (አ is also "a")
        assert spelled in (code + "e", code), (letter, code, spelled)
    marks = doc[doc.index("Punctuation and numerals") : doc.index("Reading is greedy")]
    for mark, code in re.findall(r"([\u1360-\u137c])\s+(\S+)", marks):
        assert SPELLINGS[mark] == (code,)


def test_bad_target_is_rejected() -> None:
    with pytest.raises(ValueError):
        transliterate("ሀ", "amharic")  # type: ignore[arg-type]


# --- transliteration: round trips ---------------------------------------------------------


def test_every_letter_and_mark_alone_and_in_pairs() -> None:
    alphabet = LETTERS + MARKS
    for first in alphabet:
        assert round_trip(first) == first
        assert transliterate(first).isascii()
        for second in alphabet:
            pair = first + second
            assert round_trip(pair) == pair, pair


def test_every_letter_before_every_vowel_letter() -> None:
    for letter in LETTERS:
        for vowel in VOWEL_INITIAL:
            for text in (letter + vowel, f"{letter}{vowel}{letter}", f"ሰ{letter}{vowel}ም"):
                assert round_trip(text) == text, text


def test_random_words() -> None:
    rng = random.Random(20240101)
    pool = LETTERS + MARKS
    words = ["".join(rng.choice(pool) for _ in range(rng.randint(2, 6))) for _ in range(4000)]
    for word in words:
        assert round_trip(word) == word, word
    text = " ".join(words)
    assert round_trip(text) == text
    assert round_trip(text.replace(" ", "")) == text.replace(" ", "")


def test_random_mixed_text() -> None:
    rng = random.Random(7)
    pool = LETTERS + MARKS + tuple(TRICKY_ASCII) + ("hello", "2024", "\n", "é", "\u135f", "᎐")
    for _ in range(2000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(1, 12)))
        assert round_trip(text) == text, text


@pytest.mark.parametrize(
    "text",
    [
        "ሰላም hello ዓለም 2024",
        "ሰላም፣ እንዴት ነህ? I'm fine, thanks። ዋጋው 1,500 ብር ነው፤ 10:30 ላይ",
        "<b>ሰላም</b> a<b>c :: :: ፡፡ `1 ፩ `` '' ^s ^ \\ ``` <> <<>> >><<",
        "Addis Ababa (አዲስ አበባ) - 2,355 m; ፳፻፲፮ ዓ.ም.",
        "ዕ1 ዕ? ዕ: ዕa ብእ ብአ ክዋ ቍ ቍa ፡- -፡ ፡|፡ ፡+፡",
        "",
        "   \t\n ",
    ],
)
def test_mixed_text_round_trips(text: str) -> None:
    assert round_trip(text) == text


_ALPHABET = st.sampled_from(LETTERS + MARKS + tuple(TRICKY_ASCII) + ("\n", "ñ", "\u135d"))


@settings(max_examples=300, deadline=None)
@given(st.text(_ALPHABET, max_size=30))
def test_round_trip_property_on_ethiopic_heavy_text(text: str) -> None:
    assert round_trip(text) == text


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_round_trip_and_no_errors_on_any_text(text: str) -> None:
    assert round_trip(text) == text
    assert isinstance(transliterate(text, "ethiopic"), str)  # any str reads without raising
