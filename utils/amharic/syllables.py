"""Ge'ez (Ethiopic) syllables as a consonant series plus a vowel order.

The tables are built once, at import, from the Unicode layout and character names, so no
letter is typed by hand. `decompose` returns ``(consonant, order)``:

* Plain series, U+1200-U+1357 in rows of eight code points: ``consonant`` is the row's first
  (1st-order) letter, e.g. ``'ሀ'``; orders 1-7 are the vowels ä u i a e ə o at offsets 0-6
  (ሀ ሁ ሂ ሃ ሄ ህ ሆ). Order 8 is the letter at offset 7 where the row has one: the -wa form
  (ሏ LWA, ሟ MWA, ኧ GLOTTAL WA, ጟ GGWAA) or, in seven series, the -oa form (ሇ HOA, ቇ QOA,
  ኇ XOA, ኯ KOA, ዏ WOA, ጏ GOA, ፇ TZOA). Unassigned slots are never letters.
* Labialized sets, the rows of U+1248 ቈ, U+1258 ቘ, U+1288 ኈ, U+12B0 ኰ, U+12C0 ዀ and U+1310 ጐ:
  each is a series of its own. ``consonant`` is the labialized base (``'ቈ'`` for qw) and the
  order is that of the vowel after the w, which is again offset + 1: ቈ=1 (wä), ቊ=3 (wi),
  ቋ=4 (wa), ቌ=5 (we), ቍ=6 (wə).
* Ethiopic Supplement U+1380-U+138F, labialized መ በ ፈ ፐ in rows of four: the same rule, with
  the base at the row start: ᎀ=1 (mwä), ᎁ=3 (mwi), ᎂ=5 (mwe), ᎃ=6 (mwə). The mwa letter ሟ
  stays ``('መ', 8)``: the code point decides, not the sound.
* The palatalized letters ፘ ፙ ፚ (rya mya fya, U+1358-135A) are one-letter series of their
  own, order 4 (their vowel is a): ``decompose('ፘ') == ('ፘ', 4)``.

`compose` is the exact inverse: ``compose(*decompose(ch)) == ch`` for every syllable.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from types import MappingProxyType

_NAME_PREFIX = "ETHIOPIC SYLLABLE "
_MAIN_ROWS = range(0x1200, 0x1358, 8)  # plain series and labialized sets
_PALATALIZED = range(0x1358, 0x135B)  # ፘ ፙ ፚ
_SUPPLEMENT_ROWS = range(0x1380, 0x1390, 4)  # labialized መ በ ፈ ፐ
_SUPPLEMENT_ORDERS = (1, 3, 5, 6)  # -wä -wi -we -wə at offsets 0..3
_PALATALIZED_ORDER = 4
ORDERS = range(1, 9)  # every order a syllable can have


def _syllable_name(code: int) -> str | None:
    """The part of the Unicode name after "ETHIOPIC SYLLABLE ", or None when `code` is no
    assigned syllable (unassigned slots, punctuation, numerals, marks)."""
    name = unicodedata.name(chr(code), "")
    return name[len(_NAME_PREFIX) :] if name.startswith(_NAME_PREFIX) else None


def _build_table() -> Mapping[str, tuple[str, int]]:
    """letter -> (consonant, order) for every assigned syllable of U+1200-135A and U+1380-138F."""
    table: dict[str, tuple[str, int]] = {}
    for start in _MAIN_ROWS:
        for offset in range(8):
            if _syllable_name(start + offset) is not None:
                table[chr(start + offset)] = (chr(start), offset + 1)
    for code in _PALATALIZED:
        if _syllable_name(code) is not None:
            table[chr(code)] = (chr(code), _PALATALIZED_ORDER)
    for start in _SUPPLEMENT_ROWS:
        for offset, order in enumerate(_SUPPLEMENT_ORDERS):
            if _syllable_name(start + offset) is not None:
                table[chr(start + offset)] = (chr(start), order)
    return MappingProxyType(table)


_DECOMPOSED: Mapping[str, tuple[str, int]] = _build_table()
_COMPOSED: Mapping[tuple[str, int], str] = MappingProxyType(
    {parts: letter for letter, parts in _DECOMPOSED.items()}
)
_CONSONANTS: tuple[str, ...] = tuple(dict.fromkeys(c for c, _ in _DECOMPOSED.values()))


def is_syllable(ch: object) -> bool:
    """True for one assigned Ge'ez syllable of U+1200-135A or U+1380-138F; False for anything
    else (punctuation, numerals, marks, Latin, unassigned slots, strings of other lengths)."""
    return isinstance(ch, str) and ch in _DECOMPOSED


def decompose(ch: str) -> tuple[str, int]:
    """``(consonant, order)`` of a syllable (see the module docstring for the encoding).

    Raises ValueError for anything that is not one syllable."""
    if not is_syllable(ch):
        raise ValueError(f"not a Ge'ez syllable: {ch!r}")
    return _DECOMPOSED[ch]


def compose(consonant: str, order: int) -> str:
    """The syllable of series `consonant` (a series base, as `decompose` returns it) in
    `order` (1-8). Raises ValueError when the series has no such letter."""
    letter = _COMPOSED.get((consonant, order)) if isinstance(consonant, str) else None
    if letter is None:
        raise ValueError(f"no syllable for consonant {consonant!r} in order {order!r}")
    return letter


def syllables() -> tuple[str, ...]:
    """Every syllable `decompose` accepts, in code point order."""
    return tuple(_DECOMPOSED)


def consonants() -> tuple[str, ...]:
    """Every series base (the consonants `compose` accepts), in code point order."""
    return _CONSONANTS


def orders(consonant: str) -> tuple[int, ...]:
    """The orders series `consonant` has, ascending; () for anything that is not a base."""
    return tuple(o for o in ORDERS if (consonant, o) in _COMPOSED)


def consonant_name(consonant: str) -> str:
    """The consonant part of a series base's Unicode name: 'H' for ሀ, 'QW' for ቈ, 'GLOTTAL' for
    አ, 'PHARYNGEAL' for ዐ, 'MW' for ᎀ (SEBATBEIT MWA), 'RY' for ፘ. ValueError for a non-base."""
    if consonant not in _CONSONANTS:
        raise ValueError(f"not a series base: {consonant!r}")
    name = _syllable_name(ord(consonant)) or ""
    return name.removeprefix("SEBATBEIT ").removesuffix("A").strip()
