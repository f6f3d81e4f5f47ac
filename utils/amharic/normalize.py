"""Amharic text normalization for scoring, training labels and search.

Steps, in order (each optional step named by its argument):
1. Unicode NFC; the combining marks U+135D-135F (gemination, vowel length) are dropped, since
   almost no text writes them and they do not change which letter is meant.
2. `homophones`: letters that sound alike are written alike (Belay et al. 2021): the ሐ, ኀ and ኸ
   series onto the ሀ series, ሠ onto ሰ, ዐ onto አ, order by order; ፀ onto ጸ (the direction chosen
   here: ጸ is the spelling modern dictionaries prefer); then the 4th order of the laryngeals onto
   the 1st (ሃ → ሀ, ኣ → አ), since ሃ/ሀ and ኣ/አ are pronounced the same (so ዓለም = አለም). The only
   labialized h letters kept are ኈ ኊ ኋ ኌ ኍ: ሗ and ዀ..ዅ fold onto them.
3. `labialized`: two-letter spellings of labialized syllables become the single letter (ሉዋ → ሏ,
   ቁዋ → ቋ, ኩዋ → ኳ, ጉዋ → ጓ, ሁዋ → ኋ, ...), and the 6th-order labialized letters and ቊ are written
   as the 2nd order they sound like (ቊ ቍ → ቁ, ኵ → ኩ, ጕ → ጉ, ኍ → ኁ).
4. Punctuation: `፡፡` and `::` → `።`; `፡` between digits (a time, 3፡30) → `:`, elsewhere, being
   the old word separator, → space. Then `punctuation`: "keep" leaves the rest; "ascii" writes
   Ethiopic marks as ASCII (። . ፣ , ፤ ; ፥ : ፦ : ፧ ?); "remove" drops every punctuation mark
   except between digits (3:30, 2.5) and thousands commas (1,000 → 1000).
5. `numerals`: "arabic" writes Ethiopic numerals and Amharic number words as Arabic digits
   (፲፪ → 12, ሁለት ሺህ ሃያ አራት → 2024), so "2024", "፳፻፳፬" and the words compare equal.
6. `times_dates`: common written forms of times and dates are put in one form.
7. Whitespace runs become one space; the ends are stripped.

Latin text and digits inside Amharic text pass through untouched. The steps run until the text
no longer changes (steps can enable one another), which makes the function idempotent; it
never raises on any str.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from utils.amharic.script import COMBINING_MARKS

Punctuation = Literal["keep", "remove", "ascii"]
Numerals = Literal["keep", "arabic"]


def _rows(source: int, target: int, offsets: range) -> dict[str, str]:
    """Map letters source+k -> target+k for k in offsets (a Ge'ez series is a row of 8)."""
    return {chr(source + k): chr(target + k) for k in offsets}


def _homophone_table() -> Mapping[str, str]:
    table: dict[str, str] = {}
    table |= _rows(0x1210, 0x1200, range(7))  # ሐ series -> ሀ series
    table |= _rows(0x1280, 0x1200, range(8))  # ኀ series (with ኇ XOA -> ሇ HOA) -> ሀ series
    table |= _rows(0x12B8, 0x1200, range(7))  # ኸ series -> ሀ series
    table |= _rows(0x1220, 0x1230, range(8))  # ሠ series (with ሧ) -> ሰ series
    table |= _rows(0x12D0, 0x12A0, range(7))  # ዐ series -> አ series
    table |= _rows(0x1340, 0x1338, range(7))  # ፀ series -> ጸ series
    table |= {"ሗ": "ኋ", "ዀ": "ኈ", "ዂ": "ኊ", "ዃ": "ኋ", "ዄ": "ኌ", "ዅ": "ኍ"}
    # 4th order laryngeals onto the 1st, after the series folding above
    fourth = {"ሃ": "ሀ", "ኣ": "አ"}
    return MappingProxyType({k: fourth.get(v, v) for k, v in table.items()} | fourth)


HOMOPHONES: Mapping[str, str] = _homophone_table()
LABIALIZED_LETTERS: Mapping[str, str] = MappingProxyType(
    {"ቊ": "ቁ", "ቍ": "ቁ", "ኵ": "ኩ", "ጕ": "ጉ", "ኍ": "ኁ"}
)


def _labialized_pairs() -> Mapping[str, str]:
    """2nd-order letter + ዋ -> the series' -wa letter: from the Unicode names, every row whose
    offset 7 is named ...WA, plus the series whose labialized letters stand in their own row."""
    pairs: dict[str, str] = {}
    for base in range(0x1200, 0x1358, 8):
        name = unicodedata.name(chr(base + 7), "")
        if name.endswith("WA") and unicodedata.name(chr(base + 1), ""):
            pairs[chr(base + 1) + "ዋ"] = chr(base + 7)
    pairs |= {"ቁዋ": "ቋ", "ቑዋ": "ቛ", "ኩዋ": "ኳ", "ጉዋ": "ጓ", "ኁዋ": "ኋ", "ሁዋ": "ኋ"}
    pairs.pop("ኡዋ", None)  # ኧ (U+12A7) is a vowel letter, not the labialized glottal stop
    return MappingProxyType(pairs)


LABIALIZED_PAIRS: Mapping[str, str] = _labialized_pairs()
_PAIR_PATTERN = re.compile("|".join(map(re.escape, LABIALIZED_PAIRS)))

ASCII_PUNCTUATION: Mapping[str, str] = MappingProxyType(
    {"።": ".", "፣": ",", "፤": ";", "፥": ":", "፦": ":", "፧": "?", "፠": " ", "፨": " "}
)
_MARKS = dict.fromkeys(map(ord, COMBINING_MARKS))
_DOUBLE_STOP = re.compile("፡፡|::")
_DIGIT_COLON = re.compile(r"(?<=\d)፡(?=\d)")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_SPACES = re.compile(r"\s+")
MAX_PASSES = 4  # in practice two settle every text


def _is_punctuation(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def _remove_punctuation(text: str) -> str:
    """Every punctuation mark becomes a space, except one between two digits."""
    text = _THOUSANDS.sub("", text)
    out = []
    for i, ch in enumerate(text):
        between_digits = 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
        out.append(" " if _is_punctuation(ch) and not between_digits else ch)
    return "".join(out)


def _fold_letters(text: str, homophones: bool, labialized: bool) -> str:
    if homophones:
        text = "".join(HOMOPHONES.get(ch, ch) for ch in text)
    if labialized:
        text = "".join(LABIALIZED_LETTERS.get(ch, ch) for ch in text)
        if homophones:  # ኍ -> ኁ above may have made a new ሀ-series candidate
            text = "".join(HOMOPHONES.get(ch, ch) for ch in text)
        text = _PAIR_PATTERN.sub(lambda m: LABIALIZED_PAIRS[m.group()], text)
    return text


def _unify_separators(text: str) -> str:
    text = _DOUBLE_STOP.sub("።", text)
    text = _DIGIT_COLON.sub(":", text)
    return text.replace("፡", " ")


def _apply_punctuation(text: str, punctuation: Punctuation) -> str:
    if punctuation == "ascii":
        text = "".join(ASCII_PUNCTUATION.get(ch, ch) for ch in text)
        return text.replace("::", ".")  # a new "::" (from ":፥") is a full stop, as in step 4
    if punctuation == "remove":
        return _remove_punctuation(text)
    return text


def _to_arabic_numbers(text: str) -> str:
    from utils.amharic.number_words import amharic_number_words_to_digits
    from utils.amharic.numerals import ethiopic_numerals_to_arabic

    return amharic_number_words_to_digits(ethiopic_numerals_to_arabic(text))


def normalize_amharic(
    text: str,
    *,
    homophones: bool = True,
    labialized: bool = True,
    punctuation: Punctuation = "keep",
    numerals: Numerals = "keep",
    times_dates: bool = False,
) -> str:
    """Normalized `text` (see the module docstring for each step). Idempotent; never raises on
    text (a bad option value raises ValueError)."""
    if punctuation not in ("keep", "remove", "ascii"):
        raise ValueError(f"punctuation must be 'keep', 'remove' or 'ascii', not {punctuation!r}")
    if numerals not in ("keep", "arabic"):
        raise ValueError(f"numerals must be 'keep' or 'arabic', not {numerals!r}")
    steps = (homophones, labialized, punctuation, numerals, times_dates)
    text = str(text)
    # Steps can enable one another (a dot removed next to a number word lets it become digits),
    # so the pipeline runs until the text is stable: that is what makes it idempotent.
    for _ in range(MAX_PASSES):
        once = _normalize_once(text, *steps)
        if once == text:
            break
        text = once
    return text


def _normalize_once(
    text: str,
    homophones: bool,
    labialized: bool,
    punctuation: Punctuation,
    numerals: Numerals,
    times_dates: bool,
) -> str:
    text = unicodedata.normalize("NFC", text).translate(_MARKS)
    text = _fold_letters(text, homophones, labialized)
    text = _unify_separators(text)
    if numerals == "arabic":
        text = _to_arabic_numbers(text)
    if times_dates:
        from utils.amharic.times_dates import normalize_times_and_dates

        # its canonical month and era spellings (ታኅሣሥ, ዓ.ም) are folded like the rest
        text = _fold_letters(normalize_times_and_dates(text), homophones, labialized)
    text = _apply_punctuation(text, punctuation)
    return _SPACES.sub(" ", text).strip()
