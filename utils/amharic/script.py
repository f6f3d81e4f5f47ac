"""Which characters are Ethiopic, and how much of a text is in which script."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# The five Ethiopic blocks (inclusive code point ranges).
ETHIOPIC_BLOCKS: tuple[tuple[int, int], ...] = (
    (0x1200, 0x137F),  # Ethiopic
    (0x1380, 0x139F),  # Ethiopic Supplement
    (0x2D80, 0x2DDF),  # Ethiopic Extended
    (0xAB00, 0xAB2F),  # Ethiopic Extended-A
    (0x1E7E0, 0x1E7FF),  # Ethiopic Extended-B
)
PUNCTUATION = "፠፡።፣፤፥፦፧፨"  # U+1360-1368
WORD_SPACE = "፡"  # U+1361, the traditional word separator
FULL_STOP = "።"  # U+1362
COMBINING_MARKS = "\u135d\u135e\u135f"  # gemination and vowel-length marks


def is_ethiopic(ch: str) -> bool:
    """True for any character of the five Ethiopic blocks (letters, marks, punctuation,
    numerals); False for anything else, including strings that are not one character."""
    if len(ch) != 1:
        return False
    code = ord(ch)
    return any(low <= code <= high for low, high in ETHIOPIC_BLOCKS)


def is_ethiopic_letter(ch: str) -> bool:
    """True for an assigned Ethiopic syllable (not punctuation, numerals or combining marks)."""
    return is_ethiopic(ch) and unicodedata.category(ch) == "Lo"


@dataclass(frozen=True)
class ScriptShares:
    """Shares (0..1) of a text's non-space characters by script; they sum to 1 for a text with
    any such character and are all 0 for an empty or all-space text."""

    ethiopic: float
    latin: float
    digits: float
    other: float
    characters: int  # non-space characters counted

    def as_dict(self) -> dict[str, float]:
        return {
            "ethiopic": self.ethiopic,
            "latin": self.latin,
            "digits": self.digits,
            "other": self.other,
        }


def _kind(ch: str) -> str:
    if is_ethiopic(ch):
        return "ethiopic"  # Ethiopic numerals and punctuation count as Ethiopic script
    if ch.isdigit():
        return "digits"
    if ch.isalpha() and "LATIN" in unicodedata.name(ch, ""):
        return "latin"
    return "other"


def script_shares(text: str) -> ScriptShares:
    """Typed form of `script_ratio`: the share of Ethiopic, Latin, digit and other characters
    among the non-space characters of `text`."""
    counts = {"ethiopic": 0, "latin": 0, "digits": 0, "other": 0}
    for ch in text:
        if not ch.isspace():
            counts[_kind(ch)] += 1
    total = sum(counts.values())
    if total == 0:
        return ScriptShares(0.0, 0.0, 0.0, 0.0, 0)
    return ScriptShares(*(counts[k] / total for k in counts), characters=total)


def script_ratio(text: str) -> dict[str, float]:
    """{"ethiopic", "latin", "digits", "other"} -> share of the non-space characters of `text`
    (Ethiopic numerals and punctuation count as Ethiopic; ASCII and other digits as digits)."""
    return script_shares(text).as_dict()
