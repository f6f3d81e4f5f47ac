"""Amharic cardinal number words <-> ints (0 <= n < 10**12), and number words in running text
written as Arabic digits.

Writing (`number_to_amharic_words`) uses one spelling per word: ዜሮ 0; አንድ ሁለት ሦስት አራት አምስት
ስድስት ሰባት ስምንት ዘጠኝ 1-9; አስር ሃያ ሰላሳ አርባ ሃምሳ ስልሳ ሰባ ሰማንያ ዘጠና 10-90; teens are አስራ + unit
(አስራ ሁለት 12); መቶ 100, ሺህ 10**3, ሚሊዮን 10**6, ቢሊዮን 10**9. Words are joined by spaces, largest
first: ሁለት ሺህ ሃያ አራት = 2024. A coefficient of 1 is left out before መቶ (መቶ = 100, መቶ አንድ = 101,
as CLDR and most writers do) but written before the scale words (አንድ ሺህ = 1000, አንድ ሚሊዮን), as
is usual in writing though CLDR has ሺ alone; so 100000 is መቶ ሺህ and 123456 is
መቶ ሃያ ሦስት ሺህ አራት መቶ ሃምሳ ስድስት.

Reading (`amharic_words_to_number`) accepts both (አንድ መቶ, ሺህ alone), these spellings:
ሶስት, አሥር/ዐሥር, አሥራ/ዐሥራ, ሠላሳ, ስድሳ, ሰማኒያ, ሺ, ሚልዮን/ሚሊየን, ቢልዮን/ቢሊየን, a teen written as one word
(አስራሁለት), and any homophone spelling: before lookup the letters are folded, the ሐ ኀ ኸ series
onto ሀ, ሠ onto ሰ, ዐ onto አ, ፀ onto ጸ, then ሃ onto ሀ and ኣ onto አ (so ሀያ, ሐምሳ, ኹለት are fine).
Words may be separated by whitespace or the word space ፡. Grammar: groups
`[[unit] መቶ] [ten [unit] | አስራ unit | unit]` (so a coefficient of መቶ is one unit word, and
"አስር አንድ" or "ሃያ መቶ" are rejected), each optionally followed by a scale word whose coefficient
it is (none: 1), scale words strictly decreasing; ዜሮ only alone.

In running text (`amharic_number_words_to_digits`) only whole words count (ሁለትም is left alone),
and a number directly after Arabic digits is combined with them when it starts with መቶ or a scale
word ("5 ሚሊዮን" -> "5000000", "1.5 ሺህ" -> "1500"), so it never becomes "5 1000000". ባዶ
("empty", CLDR's zero) is not treated as a number, being an ordinary word; homographs such as
አንድ ("a") or ሰባ ("grew fat") are converted, as context alone could tell them apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from utils.amharic.numerals import adjoins_arabic_number

MAX_VALUE = 10**12 - 1
ZERO = "ዜሮ"
UNITS = ("", "አንድ", "ሁለት", "ሦስት", "አራት", "አምስት", "ስድስት", "ሰባት", "ስምንት", "ዘጠኝ")
TENS = ("", "አስር", "ሃያ", "ሰላሳ", "አርባ", "ሃምሳ", "ስልሳ", "ሰባ", "ሰማንያ", "ዘጠና")
TEEN_PREFIX = "አስራ"
HUNDRED = "መቶ"
SCALES = ((10**9, "ቢሊዮን"), (10**6, "ሚሊዮን"), (10**3, "ሺህ"))
_VARIANTS = {  # spellings beyond homophone folding -> canonical word
    "ስድሳ": "ስልሳ",
    "ሰማኒያ": "ሰማንያ",
    "ሺ": "ሺህ",
    "ሚልዮን": "ሚሊዮን",
    "ሚሊየን": "ሚሊዮን",
    "ቢልዮን": "ቢሊዮን",
    "ቢሊየን": "ቢሊዮን",
}
# The longest cardinal below 10**12: four groups of unit መቶ ten unit, and three scale words.
_MAX_RUN_WORDS = 4 * 4 + 3
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_SEPARATORS = re.compile(r"[\s፡]+")
# An Arabic number standing alone (a possible coefficient), or any other word.
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_TOKEN = re.compile(rf"{_NUMBER.pattern}(?!\w)|\w+")


def _fold_table() -> dict[int, str | None]:
    """The normalizer's homophone folding, plus dropping the gemination marks."""
    from utils.amharic.normalize import HOMOPHONES
    from utils.amharic.script import COMBINING_MARKS

    marks: dict[int, str | None] = dict.fromkeys(map(ord, COMBINING_MARKS))
    return {ord(k): v for k, v in HOMOPHONES.items()} | marks


_FOLD = _fold_table()


def _fold(word: str) -> str:
    return word.translate(_FOLD)


@dataclass(frozen=True)
class _Word:
    """One number word: kind is zero/unit/ten/teen/hundred/scale; value its number (teen: 10)."""

    kind: str
    value: int
    text: str = ""


def _vocabulary() -> dict[str, _Word]:
    """Folded spelling -> word, for every canonical spelling and listed variant."""
    words = {ZERO: _Word("zero", 0), TEEN_PREFIX: _Word("teen", 10), HUNDRED: _Word("hundred", 100)}
    words |= {w: _Word("unit", k) for k, w in enumerate(UNITS) if w}
    words |= {w: _Word("ten", 10 * k) for k, w in enumerate(TENS) if w}
    words |= {w: _Word("scale", scale) for scale, w in SCALES}
    words |= {variant: words[canonical] for variant, canonical in _VARIANTS.items()}
    return {_fold(w): entry for w, entry in words.items()}


_VOCABULARY = _vocabulary()
_FOLDED_TEEN = _fold(TEEN_PREFIX)


def _lookup(token: str) -> list[_Word] | None:
    """The number word(s) `token` spells (a joined teen like አስራሁለት is two), else None."""
    folded = _fold(token)
    word = _VOCABULARY.get(folded)
    if word is not None:
        return [_Word(word.kind, word.value, token)]
    unit = _VOCABULARY.get(folded[len(_FOLDED_TEEN) :]) if folded.startswith(_FOLDED_TEEN) else None
    if unit is not None and unit.kind == "unit":
        return [_Word("teen", 10, token), _Word("unit", unit.value, token)]
    return None


# --- writing ---------------------------------------------------------------------------------


def _below_thousand(n: int) -> list[str]:
    """Words of 1 <= n <= 999."""
    hundreds, rest = divmod(n, 100)
    words = ([UNITS[hundreds]] if hundreds > 1 else []) + ([HUNDRED] if hundreds else [])
    tens, units = divmod(rest, 10)
    if tens == 1 and units:
        return [*words, TEEN_PREFIX, UNITS[units]]
    return words + ([TENS[tens]] if tens else []) + ([UNITS[units]] if units else [])


def number_to_amharic_words(n: int) -> str:
    """`n` (0 <= n <= 10**12 - 1) in Amharic words, e.g. 2024 -> "ሁለት ሺህ ሃያ አራት", 100 -> "መቶ",
    1000 -> "አንድ ሺህ" (see the module docstring). TypeError for a non-int (bool included),
    ValueError out of range."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, not {type(n).__name__}")
    if not 0 <= n <= MAX_VALUE:
        raise ValueError(f"Amharic number words cover 0..{MAX_VALUE} here, not {n}")
    if n == 0:
        return ZERO
    words: list[str] = []
    for scale, name in SCALES:
        coefficient, n = divmod(n, scale)
        if coefficient:
            words += [*_below_thousand(coefficient), name]
    return " ".join(words + (_below_thousand(n) if n else []))


# --- reading ---------------------------------------------------------------------------------


def _hundreds(words: Sequence[_Word], i: int, lead: Decimal | None) -> tuple[Decimal | None, int]:
    """The `[unit] መቶ` part of a group at words[i] (with `lead`, a digits coefficient, as unit)."""
    n = len(words)
    if lead is not None:
        if i < n and words[i].kind == "scale":
            return lead, i
        if i < n and words[i].kind == "hundred" and lead == lead.to_integral() and 1 <= lead <= 9:
            return lead * 100, i + 1
        raise ValueError("a number in digits must be a coefficient of መቶ (1-9) or a scale word")
    if i + 1 < n and words[i].kind == "unit" and words[i + 1].kind == "hundred":
        return Decimal(words[i].value * 100), i + 2
    if i < n and words[i].kind == "hundred":
        return Decimal(100), i + 1
    return None, i


def _group(words: Sequence[_Word], i: int, lead: Decimal | None) -> tuple[Decimal | None, int]:
    """The value (1..999, or the digits lead) of the group at words[i] and where it ends;
    None when no group starts there."""
    value, i = _hundreds(words, i, lead)
    if lead is not None and i < len(words) and words[i].kind == "scale":
        return value, i
    word = words[i] if i < len(words) else None
    if word is None or word.kind not in ("ten", "teen", "unit"):
        return value, i
    total = (value or Decimal(0)) + word.value
    nxt = words[i + 1] if i + 1 < len(words) else None
    if word.kind == "teen":
        if nxt is None or nxt.kind != "unit":
            raise ValueError(f"{word.text!r} must be followed by a unit word (አንድ..ዘጠኝ)")
        return total + nxt.value, i + 2
    if word.kind == "ten" and word.value > 10 and nxt is not None and nxt.kind == "unit":
        return total + nxt.value, i + 2
    return total, i + 1


def _parse(words: Sequence[_Word], lead: Decimal | None = None) -> int:
    """The number `words` spell (`lead`: a coefficient written in digits before them).
    ValueError with the reason when they do not spell one."""
    if not words:
        raise ValueError("no number words")
    if len(words) == 1 and words[0].kind == "zero" and lead is None:
        return 0
    total, i, last_scale = Decimal(0), 0, MAX_VALUE + 1
    while i < len(words):
        group, i = _group(words, i, lead)
        lead = None
        if i < len(words) and words[i].kind == "scale":
            if words[i].value >= last_scale:
                raise ValueError(f"scale word {words[i].text!r} after a scale no larger")
            if group is not None and not 0 < group < 1000:
                raise ValueError(f"coefficient {group} of {words[i].text!r} is not 1..999")
            last_scale = words[i].value
            total += (1 if group is None else group) * last_scale
            i += 1
        elif group is None or i < len(words):
            word = words[i].text if i < len(words) else ""
            raise ValueError(f"{word!r} cannot come here in a number")
        else:
            total += group
    if total != total.to_integral():
        raise ValueError(f"{total} is not a whole number")
    return int(total)


def amharic_words_to_number(text: str) -> int:
    """The cardinal `text` spells in Amharic words: "ሁለት ሺህ ሃያ አራት" -> 2024, "መቶ" and
    "አንድ መቶ" -> 100, spelling and homophone variants accepted (see the module docstring).
    ValueError naming `text` and the reason when it is not exactly one number in words;
    TypeError for a non-str."""
    if not isinstance(text, str):
        raise TypeError(f"expected a str, not {type(text).__name__}")
    tokens = [t for t in _SEPARATORS.split(text) if t]
    if not tokens:
        raise ValueError(f"{text!r} is not an Amharic number: no words")
    words: list[_Word] = []
    for token in tokens:
        found = _lookup(token)
        if found is None:
            raise ValueError(f"{text!r} is not an Amharic number: {token!r} is not a number word")
        words += found
    try:
        return _parse(words)
    except ValueError as error:
        raise ValueError(f"{text!r} is not an Amharic number: {error}") from None


# --- running text ----------------------------------------------------------------------------


def _joined(text: str, left: re.Match[str], right: re.Match[str]) -> bool:
    """True when only spaces or ፡ (no line break) separate two tokens."""
    gap = text[left.end() : right.start()]
    return bool(gap) and all(ch == "፡" or (ch.isspace() and ch not in _LINE_BREAKS) for ch in gap)


def _lead(text: str, tokens: Sequence[re.Match[str]], k: int) -> re.Match[str] | None:
    """tokens[k - 1] when it is an Arabic number right before tokens[k] (a coefficient)."""
    if k == 0 or not _NUMBER.fullmatch(tokens[k - 1].group()):
        return None
    return tokens[k - 1] if _joined(text, tokens[k - 1], tokens[k]) else None


def _longest_number(
    run: Sequence[list[_Word]], i: int, lead: Decimal | None
) -> tuple[int, int] | None:
    """(end, value) for the longest run[i:end] (at most `_MAX_RUN_WORDS` tokens) that is one
    number, or None."""
    for end in range(min(len(run), i + _MAX_RUN_WORDS), i, -1):
        try:
            return end, _parse([w for token in run[i:end] for w in token], lead)
        except ValueError:
            continue
    return None


def _convert_run(
    text: str,
    tokens: Sequence[re.Match[str]],
    run: Sequence[list[_Word]],
    lead: re.Match[str] | None,
) -> list[tuple[int, int, str]]:
    """(start, end, digits) replacements for a run of number-word tokens, longest numbers first;
    the run's first word takes the lead digits as coefficient when it is መቶ or a scale word."""
    out: list[tuple[int, int, str]] = []
    i = 0
    while i < len(run):
        use_lead = lead if i == 0 and run[0][0].kind in ("hundred", "scale") else None
        found = _longest_number(run, i, Decimal(use_lead.group()) if use_lead else None)
        if found is None:
            i += 1  # a lone አስራ, or a multiplier after digits that it cannot join
            continue
        end, value = found
        start = (use_lead or tokens[i]).start()
        if not adjoins_arabic_number(text, start, tokens[end - 1].end()):
            out.append((start, tokens[end - 1].end(), str(value)))
        i = end
    return out


def amharic_number_words_to_digits(text: str) -> str:
    """`text` with every maximal run of Amharic number words (whole words, separated by spaces
    or ፡) written in Arabic digits: "በ ሁለት ሺህ ሃያ አራት ዓ.ም" -> "በ 2024 ዓ.ም". A run that is not
    one number is split into the longest numbers from its start ("ሁለት ሦስት ቀን" -> "2 3 ቀን");
    words that belong to no number (a lone አስራ) and all other text are left as they are.
    Never raises on a str."""
    tokens = list(_TOKEN.finditer(text))
    replacements: list[tuple[int, int, str]] = []
    k = 0
    while k < len(tokens):
        run: list[list[_Word]] = []
        while k + len(run) < len(tokens):
            j = k + len(run)
            found = _lookup(tokens[j].group())
            if found is None or (run and not _joined(text, tokens[j - 1], tokens[j])):
                break
            run.append(found)
        if run:
            run_tokens = tokens[k : k + len(run)]
            replacements += _convert_run(text, run_tokens, run, _lead(text, tokens, k))
        k += max(len(run), 1)
    pieces, cursor = [], 0
    for start, end, digits in replacements:
        pieces += [text[cursor:start], digits]
        cursor = end
    return "".join([*pieces, text[cursor:]])
