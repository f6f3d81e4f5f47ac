"""SERA-style transliteration of Ethiopic text to ASCII and back.

SERA (System for Ethiopic Representation in ASCII) writes a syllable as consonant + vowel.
`transliterate(text, "latin")` writes Ethiopic as below; `transliterate(text, "ethiopic")`
reads it back, and also reads plain SERA typed by hand ("selam" -> ሰላም, "amarNa" -> አማርኛ,
"ityoPya" -> ኢትዮጵያ). Ethiopic -> Latin -> Ethiopic gives back any str unchanged.

Consonants (the series' 1st-order letter, then its code)::

    ሀ h    ለ l    ሐ H    መ m    ሠ ^s   ረ r    ሰ s    ሸ x    ቀ q    ቐ Q
    በ b    ቨ v    ተ t    ቸ c    ኀ ^h   ነ n    ኘ N    አ '    ከ k    ኸ K
    ወ w    ዐ `    ዘ z    ዠ Z    የ y    ደ d    ዸ D    ጀ j    ገ g    ጘ G
    ጠ T    ጨ C    ጰ P    ጸ S    ፀ ^S   ፈ f    ፐ p
    labialized sets:  ቈ qW   ቘ QW   ኈ ^hW   ኰ kW   ዀ KW   ጐ gW   ᎀ mW   ᎄ bW   ᎈ fW   ᎌ pW
    palatalized:      ፘ rYa   ፙ mYa   ፚ fYa

Vowels, by order: 1 e, 2 u, 3 i, 4 a, 5 E, 6 I or nothing (written as nothing: ስ = s),
7 o; order 8 (the offset-7 letter) Wa, or Oa for the -oa letters: ሏ lWa, ሟ mWa, ጟ GWa,
ቇ qOa (ቋ is qWa), ሇ hOa. The labialized sets take the same vowels after their code: ቈ qWe,
ቊ qWi, ቋ qWa, ቌ qWE, ቍ qW (or qWI); ᎀ mWe, ᎃ mW.

Vowel letters (the glottal series አ): a bare vowel is a glottal syllable, a (or e) -> አ as
Amharic spells it, u ኡ, i ኢ, E ኤ, I እ, o ኦ; ኣ is 'a and ኧ is 'Wa ('e 'u ... 'o also read).

Punctuation and numerals::

    ፡ :    ። ::    ፣ ,    ፤ ;    ፥ -:    ፦ :-    ፧ `?    ፠ :+:    ፨ :|:
    ፩ `1 ... ፱ `9    ፲ `10 ... ፺ `90    ፻ `100    ፼ `10000    (ASCII digits stay digits)

Reading is greedy: at each point the longest code that matches is taken ("ba" is ባ, not ብአ).
Writing therefore checks each syllable against what follows it and, where reading would run
on, writes the 6th order as consonant + I (ብአ -> bIa, ብእ -> bII) or, as a last resort,
puts the empty escape ``<>`` between the two (፡፡ -> :<>:).

Escapes: ``<...>`` is read as literal text up to the first ``>``. Writing puts every word of
non-Ethiopic letters (and anything else reading would change, such as ASCII : , ; ' < in
the text) inside one: "ሰላም hello ዓለም 2024" -> "selam <hello> `alem 2024". A ``>`` of the
text is written outside the escapes, where it reads as itself. Whitespace, digits and other
characters that start no code stay as they are; a ``<`` with no ``>`` after it is itself.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Literal

from utils.amharic.syllables import consonant_name, decompose, syllables

Target = Literal["latin", "ethiopic"]

# SERA code of each series, keyed by the consonant part of its base's Unicode name.
CONSONANT_CODES: Mapping[str, str] = MappingProxyType(
    {
        "H": "h", "L": "l", "HH": "H", "M": "m", "SZ": "^s", "R": "r", "S": "s", "SH": "x",
        "Q": "q", "QH": "Q", "B": "b", "V": "v", "T": "t", "C": "c", "X": "^h", "N": "n",
        "NY": "N", "GLOTTAL": "'", "K": "k", "KX": "K", "W": "w", "PHARYNGEAL": "`", "Z": "z",
        "ZH": "Z", "Y": "y", "D": "d", "DD": "D", "J": "j", "G": "g", "GG": "G", "TH": "T",
        "CH": "C", "PH": "P", "TS": "S", "TZ": "^S", "F": "f", "P": "p",
        "QW": "qW", "QHW": "QW", "XW": "^hW", "KW": "kW", "KXW": "KW", "GW": "gW",
        "MW": "mW", "BW": "bW", "FW": "fW", "PW": "pW", "RY": "rY", "MY": "mY", "FY": "fY",
    }
)  # fmt: skip
VOWEL_CODES: tuple[str, ...] = ("e", "u", "i", "a", "E", "I", "o")  # orders 1..7
SIXTH_ORDER = 6  # written as the bare consonant code
# A vowel with no consonant before it is a glottal (አ series) syllable.
BARE_VOWELS: Mapping[str, int] = MappingProxyType(
    {"a": 1, "e": 1, "u": 2, "i": 3, "E": 5, "I": 6, "o": 7}
)
_BARE_WRITTEN: Mapping[int, str] = MappingProxyType(
    {1: "a", 2: "u", 3: "i", 5: "E", 6: "I", 7: "o"}
)
PUNCTUATION: Mapping[str, str] = MappingProxyType(
    {"፠": ":+:", "፡": ":", "።": "::", "፣": ",", "፤": ";", "፥": "-:", "፦": ":-", "፧": "`?",
     "፨": ":|:"}
)  # fmt: skip
NUMERAL_PREFIX = "`"  # ፲ is `10: the Ethiopic numeral's value in ASCII digits
OPEN, CLOSE = "<", ">"  # <...> is literal text
SEPARATOR = OPEN + CLOSE  # the empty escape: stops a code from running on into the next

_GLOTTAL = "'"
_WHITESPACE = re.compile(r"(\s+)")


def _syllable_spellings(letter: str) -> tuple[str, ...]:
    """The Latin spellings of a syllable, the one to write first; all of them read back."""
    consonant, order = decompose(letter)
    code = CONSONANT_CODES[consonant_name(consonant)]
    if order == 8:
        vowel = "Oa" if unicodedata.name(letter).endswith("OA") else "Wa"
        spellings: tuple[str, ...] = (code + vowel,)
    elif order == SIXTH_ORDER:
        spellings = (code, code + "I")
    else:
        spellings = (code + VOWEL_CODES[order - 1],)
    if code == _GLOTTAL and order in _BARE_WRITTEN:
        spellings = (_BARE_WRITTEN[order], *spellings)
    return spellings


def _numeral_spelling(ch: str) -> str:
    return NUMERAL_PREFIX + str(int(unicodedata.numeric(ch)))


def _build_spellings() -> Mapping[str, tuple[str, ...]]:
    """Ethiopic character -> its Latin spellings, preferred first."""
    table = {letter: _syllable_spellings(letter) for letter in syllables()}
    table |= {mark: (latin,) for mark, latin in PUNCTUATION.items()}
    table |= {chr(c): (_numeral_spelling(chr(c)),) for c in range(0x1369, 0x137D)}
    return MappingProxyType(table)


def _build_reading(spellings: Mapping[str, tuple[str, ...]]) -> Mapping[str, str]:
    """Latin code -> Ethiopic character; every spelling and the bare vowels."""
    table: dict[str, str] = {}
    pairs = [(latin, ch) for ch, options in spellings.items() for latin in options]
    pairs += [(vowel, chr(0x12A0 + order - 1)) for vowel, order in BARE_VOWELS.items()]
    for latin, ch in pairs:
        if table.setdefault(latin, ch) != ch:
            raise RuntimeError(f"ambiguous transliteration code {latin!r}")  # a table typo
    return MappingProxyType(table)


SPELLINGS: Mapping[str, tuple[str, ...]] = _build_spellings()
READING: Mapping[str, str] = _build_reading(SPELLINGS)
_LONGEST = max(map(len, READING))


def _next_token(text: str, pos: int, last_close: int) -> tuple[int, str]:
    """(end, Ethiopic) of the token of `text` starting at `pos`: an escape, the longest code,
    or else the character itself. `last_close` is text.rfind(CLOSE), saving a search."""
    if text[pos] == OPEN and pos < last_close:
        close = text.index(CLOSE, pos + 1)
        return close + 1, text[pos + 1 : close]
    for end in range(min(len(text), pos + _LONGEST), pos, -1):
        found = READING.get(text[pos:end])
        if found is not None:
            return end, found
    return pos + 1, text[pos]


def _read(text: str, stop: int) -> tuple[int, str]:
    """Read `text` from its start until a token ends at or past `stop`: (that end, Ethiopic)."""
    last_close, pos, out = text.rfind(CLOSE), 0, []
    while pos < stop:
        pos, piece = _next_token(text, pos, last_close)
        out.append(piece)
    return pos, "".join(out)


def _to_ethiopic(text: str) -> str:
    return _read(text, len(text))[1]


def _escape(text: str) -> str:
    """`text` inside escapes; its '>' go between them, where they read as themselves."""
    return CLOSE.join(OPEN + part + CLOSE if part else "" for part in text.split(CLOSE))


def _needs_escape(word: str) -> bool:
    """Words with letters (Latin or any other script) or '<' are always escaped."""
    return any(ch.isalpha() or ch == OPEN for ch in word)


def _joins_group(part: str, group: str) -> bool:
    """Whether `part` goes into the escape being built: an escaped word, or spaces (only
    U+0020) after one. Words are split at whitespace, so two words never touch."""
    return _needs_escape(part) or (bool(group) and part.strip(" ") == "")


def _foreign_units(run: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Units of a run of non-Ethiopic text: (text, spellings). Escaped words that only spaces
    part share one escape ("<hello world>"); other words may stay bare if they read back."""
    group = ""  # escaped words and the spaces between them
    for part in _WHITESPACE.split(run):
        if not part:
            continue
        if _joins_group(part, group):
            group += part
            continue
        if group:
            yield from _flush(group)
            group = ""
        yield part, (part, _escape(part))
    if group:
        yield from _flush(group)


def _flush(group: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """An escaped group as units; spaces after its last word are left outside the escape."""
    words = group.rstrip(" ")
    yield words, (_escape(words),)
    if len(words) < len(group):
        yield group[len(words) :], (group[len(words) :],)


def _units(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """`text` cut into units, each (its text, Latin spellings to try in turn)."""
    units: list[tuple[str, tuple[str, ...]]] = []
    run_start = 0
    for i, ch in enumerate(text):
        options = SPELLINGS.get(ch)
        if options is not None:
            units.extend(_foreign_units(text[run_start:i]))
            units.append((ch, (*options, options[0] + SEPARATOR)))
            run_start = i + 1
    units.extend(_foreign_units(text[run_start:]))
    return units


def _choose(unit: tuple[str, tuple[str, ...]], after: str) -> str:
    """The first spelling of `unit` that reads back as it when `after` follows. The last one,
    an escape or a code + SEPARATOR, always does."""
    text, options = unit
    for latin in options[:-1]:
        if _read(latin + after, len(latin)) == (len(latin), text):
            return latin
    return options[-1]


def _to_latin(text: str) -> str:
    # Right to left: what follows a unit is final when its spelling is chosen, and reading
    # looks at most _LONGEST characters past a code.
    pieces: list[str] = []
    after = ""
    for unit in reversed(_units(text)):
        latin = _choose(unit, after)
        pieces.append(latin)
        after = (latin + after)[:_LONGEST]
    return "".join(reversed(pieces))


def transliterate(text: str, to: Target = "latin") -> str:
    """`text` written in SERA-style Latin (to="latin") or read back into Ethiopic
    (to="ethiopic"); see the module docstring for the scheme. Never raises on a str.

    transliterate(transliterate(t), "ethiopic") == t for every str t."""
    if to == "latin":
        return _to_latin(text)
    if to == "ethiopic":
        return _to_ethiopic(text)
    raise ValueError(f"to must be 'latin' or 'ethiopic', not {to!r}")
