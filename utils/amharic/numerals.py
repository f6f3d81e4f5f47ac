"""Ethiopic (Ge'ez) numerals <-> Python ints, following CLDR's rule set "ethiopic" (rbnf).

Letters: ፩-፱ (U+1369-1371) are 1-9, ፲-፺ (U+1372-137A) are 10-90, ፻ (U+137B) is 100 and ፼
(U+137C) is 10000. There is no zero.

How CLDR writes 1 <= n < 10**12 (this module's range): split n into base-10000 blocks
b2 = n // 10**8, b1 = n // 10**4 % 10**4, b0 = n % 10**4 and join the blocks from the highest
non-zero one down with ፼; a zero block below the top is written as nothing (10**8 = ፼፼,
10**8 + 1 = ፼፼፩). A block b (1..9999) is its hundreds h = b // 100 and rest r = b % 100, each
1..99 written as tens letter + units letter: h ፻ r, where ፻ is left out for h = 0 and h is left
out for h = 1 (፻ = 100, ፻፩ = 101, ፲፻ = 1000, ፲፱፻፹፭ = 1985). The top block is left out when it is
1 (፼ = 10000, ፼፼ = 10**8); a lower block of 1 is written ፩ (፼፩፼ = 100010000). So ፼ multiplies
everything written before it: ፼፳፫፻፵፭፼፷፯፻፹፱ = (1 * 10**4 + 2345) * 10**4 + 6789 = 123456789.

Parsing accepts exactly the strings `int_to_ethiopic` writes plus one friendly extra: a redundant
leading ፩ where CLDR leaves out a 1, i.e. ፩ right before ፻ at the start of a block (፩፻ = ፻ = 100,
፼፩፻ = 10100) and ፩ as the whole top block (፩፼ = ፼ = 10000, ፩፼፼ = 10**8). Nothing else is
accepted: no spaces, no other characters, no digit-by-digit writing (፲፪ is 12, never 102).
"""

from __future__ import annotations

import re
from itertools import pairwise

MIN_VALUE = 1
MAX_VALUE = 10**12 - 1  # three ፼ would be needed for 10**12

HUNDRED = "\u137b"  # ፻
MYRIAD = "\u137c"  # ፼
UNIT_LETTERS = "".join(chr(0x1369 + k) for k in range(9))  # ፩..፱ = 1..9
TEN_LETTERS = "".join(chr(0x1372 + k) for k in range(9))  # ፲..፺ = 10..90
NUMERAL_LETTERS = UNIT_LETTERS + TEN_LETTERS + HUNDRED + MYRIAD  # U+1369..U+137C

_UNIT_VALUE = {ch: k + 1 for k, ch in enumerate(UNIT_LETTERS)}
_TEN_VALUE = {ch: 10 * (k + 1) for k, ch in enumerate(TEN_LETTERS)}
_RUN = re.compile(f"[{NUMERAL_LETTERS}]+")


def is_ethiopic_numeral(ch: str) -> bool:
    """True for one of the 20 Ethiopic numeral characters U+1369-U+137C (፩..፼); False for
    anything else, including strings that are not exactly one character."""
    return len(ch) == 1 and ch in NUMERAL_LETTERS


# --- writing ---------------------------------------------------------------------------------


def _pair_to_ethiopic(v: int) -> str:
    """1 <= v <= 99 as a tens letter then a units letter (either may be absent)."""
    tens, units = divmod(v, 10)
    return (TEN_LETTERS[tens - 1] if tens else "") + (UNIT_LETTERS[units - 1] if units else "")


def _block_to_ethiopic(b: int) -> str:
    """1 <= b <= 9999 as one ፼-free block: [h]፻[r], h omitted when it is 1."""
    hundreds, rest = divmod(b, 100)
    head = ""
    if hundreds:
        head = (_pair_to_ethiopic(hundreds) if hundreds > 1 else "") + HUNDRED
    return head + (_pair_to_ethiopic(rest) if rest else "")


def _check_int(n: int, name: str = "n") -> None:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int, not {type(n).__name__}")


def int_to_ethiopic(n: int) -> str:
    """`n` (1 <= n <= 10**12 - 1) in Ethiopic numerals, exactly as CLDR's "ethiopic" rule set
    writes it (see the module docstring): 12 -> ፲፪, 100 -> ፻, 1985 -> ፲፱፻፹፭, 10**8 -> ፼፼.
    Raises TypeError for a non-int (bool included) and ValueError out of range."""
    _check_int(n)
    if not MIN_VALUE <= n <= MAX_VALUE:
        raise ValueError(f"Ethiopic numerals cover {MIN_VALUE}..{MAX_VALUE} here, not {n}")
    blocks = [n // 10**8, n // 10**4 % 10**4, n % 10**4]
    while blocks[0] == 0:
        blocks.pop(0)
    top = "" if blocks[0] == 1 and len(blocks) > 1 else _block_to_ethiopic(blocks[0])
    lower = [_block_to_ethiopic(b) if b else "" for b in blocks[1:]]
    return MYRIAD.join([top, *lower])


# --- reading ---------------------------------------------------------------------------------


def _invalid(s: str, why: str) -> ValueError:
    return ValueError(f"not a valid Ethiopic numeral {s!r}: {why}")


def _pair_problem(seg: str) -> str:
    """Why `seg` (only tens and units letters, not a valid pair) is not tens-then-units."""
    for a, b in pairwise(seg):
        if a in _UNIT_VALUE and b in _UNIT_VALUE:
            return f"two units in a row ({a}{b})"
        if a in _UNIT_VALUE and b in _TEN_VALUE:
            return f"tens after units ({a}{b})"
        if a in _TEN_VALUE and b in _TEN_VALUE:
            return f"two tens in a row ({a}{b})"
    return f"{seg!r} is not tens then units"


def _parse_pair(seg: str, s: str) -> int:
    """1..99 from a non-empty tens-then-units segment of `s` (the whole string, for errors)."""
    tens = _TEN_VALUE.get(seg[0], 0)
    rest = seg[1:] if tens else seg
    if len(rest) > 1 or (rest and rest not in _UNIT_VALUE):
        raise _invalid(s, _pair_problem(seg))
    return tens + _UNIT_VALUE.get(rest, 0)


def _parse_block(block: str, s: str) -> int:
    """1..9999 from one non-empty ፼-free block; a redundant ፩ before ፻ is accepted."""
    if block.count(HUNDRED) > 1:
        raise _invalid(s, f"{HUNDRED} twice within one {MYRIAD} group ({block})")
    head, hundred, rest = block.partition(HUNDRED)
    if not hundred:
        return _parse_pair(head, s)
    hundreds = _parse_pair(head, s) if head else 1
    return hundreds * 100 + (_parse_pair(rest, s) if rest else 0)


def ethiopic_to_int(s: str) -> int:
    """The value of the Ethiopic numeral `s`: ፲፪ -> 12, ፻ -> 100, ፲፱፻፹፭ -> 1985,
    ፼፳፫፻፵፭፼፷፯፻፹፱ -> 123456789. Accepts the strings `int_to_ethiopic` writes plus a redundant
    leading ፩ (፩፻, ፩፼; see the module docstring). Raises ValueError naming `s` and the reason
    (empty, not a numeral character, two units in a row, tens after units, a ፻/፼ order CLDR
    cannot produce, value of 10**12 or more), TypeError for a non-str."""
    if not isinstance(s, str):
        raise TypeError(f"expected a str, not {type(s).__name__}")
    if not s:
        raise _invalid(s, "empty string")
    bad = next((ch for ch in s if ch not in NUMERAL_LETTERS), None)
    if bad is not None:
        raise _invalid(s, f"{bad!r} (U+{ord(bad):04X}) is not an Ethiopic numeral character")
    blocks = s.split(MYRIAD)
    if len(blocks) > 3:
        raise _invalid(s, f"{len(blocks) - 1} × {MYRIAD} means 10**12 or more (max {MAX_VALUE})")
    top, lower = blocks[0], blocks[1:]
    value = _parse_block(top, s) if top else 1  # an empty top block before ፼ is a 1
    for block in lower:
        value = value * 10**4 + (_parse_block(block, s) if block else 0)
    return value


def adjoins_arabic_number(text: str, start: int, end: int) -> bool:
    """True when text[start:end] touches a decimal digit, directly or through one '.' or ','
    (5.፭, ፲2): converting it would glue two numbers into one, so callers leave it alone."""

    def digit_at(i: int) -> bool:
        return 0 <= i < len(text) and text[i].isdecimal()

    if digit_at(start - 1) or digit_at(end):
        return True
    before = start >= 2 and text[start - 1] in ".," and digit_at(start - 2)
    after = end < len(text) and text[end] in ".," and digit_at(end + 1)
    return before or after


def ethiopic_numerals_to_arabic(text: str) -> str:
    """`text` with every maximal run of Ethiopic numeral characters that is a valid numeral
    replaced by its value in Arabic digits ("በ፲፱፻፹፭ ዓ.ም" -> "በ1985 ዓ.ም"). Invalid runs (፪፫),
    runs of 10**12 or more and runs touching an Arabic number (፲2) are left as they are.
    Never raises on a str."""

    def replace(match: re.Match[str]) -> str:
        run = match.group()
        if adjoins_arabic_number(text, match.start(), match.end()):
            return run
        try:
            return str(ethiopic_to_int(run))
        except ValueError:
            return run

    return _RUN.sub(replace, text)
