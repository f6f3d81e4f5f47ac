"""Times and dates in running Amharic text: one canonical written form, and spoken forms.

`normalize_times_and_dates` rewrites the common written forms so that a reference and a
hypothesis that write the same time or date differently compare equal (WER scoring). Numbers
must already be Arabic digits (`utils.amharic.numerals` and `number_words` convert the rest).

Canonical forms (PERIOD is one of ከሌሊቱ ከጠዋቱ ከቀኑ ከሰዓት በኋላ ከምሽቱ in its standard spelling;
PREFIX is an attached preposition እስከ/በ/የ/ከ/ለ, kept in place):

* time: ``[PERIOD ][PREFIX]H:MM`` - hour without leading zero, two-digit minutes, a trailing ሰዓት
  dropped. From 3:30, 03:30, 3፡30, PERIOD 3.30, 3 ሰዓት ከ30 ደቂቃ, 3 ሰዓት ተኩል (:30),
  3 ሰዓት ሩብ / ከሩብ (:15), ለ4 ሰዓት ሩብ ጉዳይ (3:45), ለ4 ሰዓት 10 ደቂቃ ጉዳይ (3:50), 3 ሰዓት (3:00),
  and after a period word the hour alone (ከሌሊቱ 7 -> ከሌሊቱ 7:00). The clock is not converted:
  Ethiopian hours stay Ethiopian. Hours must be 1..12 in the ሰዓት forms (so 24 ሰዓት, a
  duration, stays) and 0..24 with a colon; ሰዓታት (hours, plural) is never a time.
* date: ``[PREFIX]MONTH D YYYY ዓ.ም`` with a year, ``[PREFIX]MONTH D`` without; MONTH in the
  spelling of `calendar.MONTH_NAMES`. From D/M/YYYY, D-M-YYYY, D.M.YYYY (read as Ethiopian
  day/month/year unless እ.ኤ.አ follows), MONTH D ቀን YYYY ዓ.ም, MONTH D, YYYY, MONTH D YYYY,
  D MONTH YYYY (a bare year must have 4 digits; with an era marker 1..4; day-first only with a
  year, so that a moved day never meets a number before it). Invalid dates (day 31, ጳጉሜን 6 in a
  common year, month 14) are left as written.
* era marker after a year: ``YYYY ዓ.ም`` from ዓ.ም / ዓ.ም. / ዓ/ም / ዓም / ዓመተ ምሕረት (any homophone);
  one full stop after the marker or a date's year is absorbed (it is usually the abbreviation's).
* a month name on its own: its standard spelling (ታህሳስ -> ታኅሣሥ, ጳጉሜ -> ጳጉሜን).

Every rewrite starts and ends at a word boundary (not inside a word or a longer number), so
English, plain numbers and other text pass through unchanged. Idempotent; never raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import MappingProxyType

from utils.amharic.calendar import (
    MONTH_NAMES,
    canonical_period_word,
    month_spellings,
    parse_month_name,
    validate_ethiopian_date,
)
from utils.amharic.normalize import HOMOPHONES

ERA = "ዓ.ም"
_LETTER = r"[^\W\d_]"
_SP = r"[ \t\u00a0]+"
_OSP = r"[ \t\u00a0]*"
_SEPS = r"[./:፡,-]"
# A rewrite starts and ends next to neither a letter or digit nor a separator glued to one: so
# rewriting a neighbour (which may turn its last digit into a letter) never changes whether
# this one matches, and a second pass finds what the first left.
_START = rf"(?<![^\W_])(?<![^\W_]{_SEPS})"
_END = rf"(?![^\W_])(?!{_SEPS}[^\W_])"
_NUM_END = rf"(?!\d)(?!{_SEPS}\d)"
_PREFIX = r"(?:እስከ|[በየከለ])"
_SAAT = rf"[ሰሠ][ዓአዐ]ት(?!{_LETTER})"
_DOT = r"(?:\.(?!\.))?+"  # one full stop after a year or era marker is taken as part of it
_ERA = (
    rf"(?:[ዓአዐ]{_OSP}[./፡]{_OSP}ም|[ዓአዐ]ም|[ዓአዐ]መተ{_SP}ም[ሕህኅሀ]ረት)(?!{_LETTER}){_DOT}"
    r"(?![^\W_])"
)
_GREGORIAN_ERA = rf"{_OSP}እ[.\s]*ኤ"
_PERIOD = rf"ከ(?:ጠዋቱ|ጧቱ|ቀኑ|ምሽቱ|[ሌለ]ሊቱ|[ሰሠ][ዓአዐ]ት{_SP}በ(?:ኋ|ሁዋ)ላ)(?!{_LETTER})"


def _homophone_classes() -> MappingProxyType[str, str]:
    """Letter -> regex character class of every letter written alike after folding."""
    groups: dict[str, set[str]] = {}
    for source, target in HOMOPHONES.items():
        groups.setdefault(target, {target}).add(source)
    return MappingProxyType(
        {ch: "[" + "".join(sorted(group)) + "]" for group in groups.values() for ch in group}
    )


def _month_pattern() -> str:
    classes = _homophone_classes()
    spellings = sorted(set(month_spellings()), key=len, reverse=True)
    alternatives = ("".join(classes.get(ch, re.escape(ch)) for ch in s) for s in spellings)
    return "(?:" + "|".join(alternatives) + f")(?!{_LETTER})"


_MONTH = _month_pattern()


def _year(tag: str) -> str:
    """A year after the day or month: 1..4 digits with an era marker, or 4 digits bare."""
    return (
        rf"(?:{_OSP}[,፣]{_OSP}|{_SP})(?:(?P<{tag}_ye>[0-9]{{1,4}})(?!\d){_OSP}{_ERA}"
        rf"|(?P<{tag}_y>[0-9]{{4}}){_NUM_END}{_DOT})"
    )


_H = r"[0-9]{1,2}(?!\d)"
_HOUR_WORD = rf"(?(t_per)(?:{_OSP}{_SAAT})?|{_OSP}{_SAAT})"  # ሰዓት optional after a period
_TIME_BODY = "|".join(
    (
        rf"(?P<c_h>{_H})[:፡](?P<c_m>[0-5][0-9]){_NUM_END}",
        rf"(?(t_per)(?P<d_h>{_H})\.(?P<d_m>[0-5][0-9]){_NUM_END}|(?!))",
        rf"(?P<g_h>{_H})(?:{_OSP}{_SAAT})?{_SP}(?:(?P<g_q>ሩብ)|(?:ከ{_OSP})?(?P<g_m>[0-9]{{1,2}})"
        rf"(?!\d){_OSP}ደቂቃ){_SP}ጉዳይ(?!{_LETTER})",
        rf"(?P<h_h>{_H}){_HOUR_WORD}{_SP}ተኩል(?!{_LETTER})",
        rf"(?P<q_h>{_H}){_HOUR_WORD}{_SP}(?:ከ)?ሩብ(?!{_LETTER})(?!{_SP}ጉዳይ)",
        rf"(?P<m_h>{_H}){_OSP}{_SAAT}{_SP}(?:ከ{_OSP})?(?P<m_m>[0-9]{{1,2}})(?!\d){_OSP}"
        rf"ደቂቃ(?!{_LETTER})",
        rf"(?P<o_h>{_H}){_OSP}{_SAAT}",
        rf"(?(t_per)(?P<x_h>{_H}){_NUM_END}(?!{_SP}{_PREFIX}?{_MONTH}|{_OSP}{_ERA})|(?!))",
    )
)

_ALTERNATIVES: tuple[tuple[str, str], ...] = (
    (
        "numeric",
        rf"{_START}(?P<n_pre>{_PREFIX}?)(?P<n_d>[0-9]{{1,2}})(?P<n_sep>[/.-])(?P<n_m>[0-9]{{1,2}})"
        rf"(?P=n_sep)(?P<n_y>[0-9]{{4}}){_NUM_END}(?!{_GREGORIAN_ERA})"
        rf"(?:{_OSP}{_ERA}|{_DOT}){_END}",
    ),
    (
        "month_first",
        rf"{_START}(?P<f_pre>{_PREFIX}?)(?P<f_mon>{_MONTH})"
        rf"(?:{_SP}(?P<f_d>[0-9]{{1,2}}){_NUM_END}(?:{_OSP}ቀን(?![^\W_]))*+"
        rf"(?:{_year('f')}|(?!{_OSP}{_ERA})))?{_END}",  # "መስከረም 1 ዓ.ም": 1 is a year
    ),
    (
        "day_first",
        rf"{_START}(?P<b_pre>{_PREFIX}?)(?P<b_d>[0-9]{{1,2}}){_NUM_END}{_SP}"
        rf"(?P<b_mon>{_MONTH}){_year('b')}{_END}",
    ),
    ("era", rf"{_START}(?P<e_pre>{_PREFIX}?)(?P<e_y>[0-9]{{1,4}})(?!\d){_OSP}{_ERA}{_END}"),
    (
        "time",
        rf"{_START}(?:(?P<t_per>{_PERIOD}){_SP})?(?P<t_pre>{_PREFIX}?)(?:{_TIME_BODY})"
        rf"(?:{_SP}{_SAAT})*{_END}",
    ),
)
_PATTERN = re.compile("|".join(f"(?P<{name}>{body})" for name, body in _ALTERNATIVES))


def _date_valid(year: int | None, month: int, day: int) -> bool:
    if year is None:
        return 1 <= day <= (6 if month == 13 else 30)
    try:
        validate_ethiopian_date(year, month, day)
    except ValueError:
        return False
    return year >= 1


def _format_date(prefix: str, month: int, day: int, year: int | None) -> str:
    date = f"{prefix}{MONTH_NAMES[month - 1]} {day}"
    return date if year is None else f"{date} {year} {ERA}"


def _year_of(m: re.Match[str], tag: str) -> int | None:
    text = m.group(f"{tag}_ye") or m.group(f"{tag}_y")
    return None if text is None else int(text)


def _with_canonical_month(m: re.Match[str], group: str) -> str:
    """The match as written, with only the month name in its standard spelling."""
    start, end = m.span(group)
    whole_start = m.start()
    month = parse_month_name(m.group(group)) or 0
    name = MONTH_NAMES[month - 1] if month else m.group(group)
    text = m.group(0)
    return text[: start - whole_start] + name + text[end - whole_start :]


def _numeric(m: re.Match[str]) -> str:
    day, month, year = int(m.group("n_d")), int(m.group("n_m")), int(m.group("n_y"))
    if not 1 <= month <= 13 or not _date_valid(year, month, day):
        return m.group(0)
    return _format_date(m.group("n_pre"), month, day, year)


def _month_first(m: re.Match[str]) -> str:
    month = parse_month_name(m.group("f_mon"))
    if month is None or m.group("f_d") is None:
        return _with_canonical_month(m, "f_mon")
    day, year = int(m.group("f_d")), _year_of(m, "f")
    if not _date_valid(year, month, day):
        return _with_canonical_month(m, "f_mon")
    return _format_date(m.group("f_pre"), month, day, year)


def _day_first(m: re.Match[str]) -> str:
    month = parse_month_name(m.group("b_mon"))
    day, year = int(m.group("b_d")), _year_of(m, "b")
    if month is None or not _date_valid(year, month, day):
        return _with_canonical_month(m, "b_mon")
    return _format_date(m.group("b_pre"), month, day, year)


def _era(m: re.Match[str]) -> str:
    return f"{m.group('e_pre')}{int(m.group('e_y'))} {ERA}"


# (hour group, minute group or fixed minute, lowest hour, highest hour) per time form
_CLOCK_FORMS: tuple[tuple[str, str | int, int, int], ...] = (
    ("c_h", "c_m", 0, 24),
    ("d_h", "d_m", 0, 24),
    ("m_h", "m_m", 1, 12),
    ("h_h", 30, 1, 12),
    ("q_h", 15, 1, 12),
    ("o_h", 0, 1, 12),
    ("x_h", 0, 1, 12),
)


def _clock(m: re.Match[str]) -> tuple[int, int] | None:
    """(hour, minute) as written on the clock (not converted), or None when out of range."""
    if m.group("g_h") is not None:
        return _before_the_hour(m)
    for hour_group, minute_source, lowest, highest in _CLOCK_FORMS:
        if m.group(hour_group) is not None:
            hour = int(m.group(hour_group))
            minute = minute_source if isinstance(minute_source, int) else int(m[minute_source])
            return (hour, minute) if lowest <= hour <= highest and minute <= 59 else None
    return None


def _before_the_hour(m: re.Match[str]) -> tuple[int, int] | None:
    """ለ4 ሰዓት ሩብ ጉዳይ: a quarter (or N minutes) short of hour 4 -> (3, 45)."""
    hour = int(m.group("g_h"))
    short = 15 if m.group("g_q") else int(m.group("g_m"))
    if m.group("t_pre") != "ለ" or not 1 <= hour <= 12 or not 1 <= short <= 59:
        return None
    return (hour - 2) % 12 + 1, 60 - short


def _time(m: re.Match[str]) -> str:
    clock = _clock(m)
    if clock is None:
        return m.group(0)
    period = m.group("t_per")
    prefix = "" if m.group("g_h") is not None else m.group("t_pre")
    lead = f"{canonical_period_word(period) or period} " if period else ""
    return f"{lead}{prefix}{clock[0]}:{clock[1]:02d}"


_HANDLERS: MappingProxyType[str, Callable[[re.Match[str]], str]] = MappingProxyType(
    {
        "numeric": _numeric,
        "month_first": _month_first,
        "day_first": _day_first,
        "era": _era,
        "time": _time,
    }
)


def _rewrite(m: re.Match[str]) -> str:
    name = next(name for name, _ in _ALTERNATIVES if m.group(name) is not None)
    return _HANDLERS[name](m)


def normalize_times_and_dates(text: str) -> str:
    """`text` with every recognised time and date in its canonical form (module docstring).
    Idempotent; never raises (a non-str is converted with str())."""
    return _PATTERN.sub(_rewrite, str(text))


def time_to_words(hour: int, minute: int, period: str | None = None) -> str:
    """Spoken Amharic for Ethiopian `hour` (1..12) and `minute` (0..59), e.g. (3, 30, "ከጠዋቱ")
    -> "ከጠዋቱ ሦስት ሰዓት ተኩል"; :15 is "ከሩብ", other minutes "ከ<N> ደቂቃ". ValueError for out of
    range values or an unknown period word."""
    from utils.amharic.number_words import number_to_amharic_words

    if not 1 <= hour <= 12:
        raise ValueError(f"Ethiopian hour must be 1..12, not {hour}")
    if not 0 <= minute <= 59:
        raise ValueError(f"minute must be 0..59, not {minute}")
    words = [f"{number_to_amharic_words(hour)} ሰዓት"]
    if minute == 30:
        words.append("ተኩል")
    elif minute == 15:
        words.append("ከሩብ")
    elif minute:
        words.append(f"ከ{number_to_amharic_words(minute)} ደቂቃ")
    if period is not None:
        word = canonical_period_word(period)
        if word is None:
            raise ValueError(f"unknown period word {period!r}")
        words.insert(0, word)
    return " ".join(words)


def date_to_words(year: int, month: int, day: int) -> str:
    """Spoken Amharic for Ethiopian `year`-`month`-`day`, e.g. (2017, 1, 12) -> "መስከረም አስራ
    ሁለት ቀን ሁለት ሺህ አስራ ሰባት ዓ.ም". ValueError for an invalid date or a year below 1."""
    from utils.amharic.number_words import number_to_amharic_words

    validate_ethiopian_date(year, month, day)
    if year < 1:
        raise ValueError(f"year must be >= 1 to be spoken, not {year}")
    return (
        f"{MONTH_NAMES[month - 1]} {number_to_amharic_words(day)} ቀን "
        f"{number_to_amharic_words(year)} {ERA}"
    )
