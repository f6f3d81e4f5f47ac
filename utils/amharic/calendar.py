"""The Ethiopian calendar (Amete Mihret era) and the Ethiopian 12-hour clock.

Dates convert through the Julian Day Number (JDN, whole days): Meskerem 1 of year 1 is JDN
1724221. The year has 13 months: 12 of 30 days and ጳጉሜን with 5 days, or 6 in a leap year
(year % 4 == 3, the year that ends just before a Gregorian leap day, so the next year begins on
Gregorian September 12 instead of 11 in Gregorian years 1900-2099).

The clock counts hours from sunrise and sunset: hour 12 is 6:00 and hour 1 is 7:00, in two cycles
of 12 hours. The day cycle runs 06:00-17:59 and the night cycle 18:00-05:59 (western). A period
word says which cycle; `western_to_ethiopian_time` names it by these ranges (western time):

    ከሌሊቱ      night       00:00-05:59   Ethiopian 6:00-11:59  (night cycle)
    ከጠዋቱ      morning     06:00-11:59   Ethiopian 12:00-5:59  (day cycle)
    ከቀኑ        afternoon   12:00-17:59   Ethiopian 6:00-11:59  (day cycle)
    ከምሽቱ      evening     18:00-23:59   Ethiopian 12:00-5:59  (night cycle)

`ethiopian_to_western_time` reads any period word only for its cycle (so ከሰዓት በኋላ, like ከቀኑ,
is the day cycle, and the unusual ከጠዋቱ 7 is 13:00); no period word means the day cycle.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from utils.amharic.normalize import HOMOPHONES

ETHIOPIAN_EPOCH_JDN = 1724221  # Meskerem 1, 1 Amete Mihret
_GREGORIAN_ORDINAL_TO_JDN = 1721425  # JDN = date.toordinal() + this

MONTH_NAMES: tuple[str, ...] = (
    "መስከረም",
    "ጥቅምት",
    "ኅዳር",
    "ታኅሣሥ",
    "ጥር",
    "የካቲት",
    "መጋቢት",
    "ሚያዝያ",
    "ግንቦት",
    "ሰኔ",
    "ሐምሌ",
    "ነሐሴ",
    "ጳጉሜን",
)
# Spellings that homophone folding alone does not reach (ዚ/ዝ, a dropped final ን, ጐ for ጉ).
_EXTRA_MONTH_SPELLINGS = MappingProxyType(
    {"ሚያዚያ": 8, "ሚያዝያ": 8, "ጳጉሜ": 13, "ጳጐሜ": 13, "ጳጐሜን": 13, "ጷጉሜ": 13, "ጷጉሜን": 13}
)

DAY_CYCLE = "day"
NIGHT_CYCLE = "night"
PERIOD_WORDS: tuple[str, ...] = ("ከሌሊቱ", "ከጠዋቱ", "ከቀኑ", "ከሰዓት በኋላ", "ከምሽቱ")
# Written variants (already homophone-folded, see `_fold`) -> the canonical period word.
_PERIOD_SPELLINGS = MappingProxyType(
    {
        "ከሌሊቱ": "ከሌሊቱ",
        "ከለሊቱ": "ከሌሊቱ",
        "ከጠዋቱ": "ከጠዋቱ",
        "ከጧቱ": "ከጠዋቱ",
        "ከቀኑ": "ከቀኑ",
        "ከሰአት በኋላ": "ከሰዓት በኋላ",
        "ከሰአት በሁዋላ": "ከሰዓት በኋላ",
        "ከምሽቱ": "ከምሽቱ",
    }
)
_PERIOD_CYCLES = MappingProxyType(
    {
        "ከሌሊቱ": NIGHT_CYCLE,
        "ከጠዋቱ": DAY_CYCLE,
        "ከቀኑ": DAY_CYCLE,
        "ከሰዓት በኋላ": DAY_CYCLE,
        "ከምሽቱ": NIGHT_CYCLE,
    }
)


def _fold(word: str) -> str:
    """`word` with homophone letters written alike and spaces collapsed (for lookups only)."""
    return " ".join("".join(HOMOPHONES.get(ch, ch) for ch in word).split())


def _month_lookup() -> MappingProxyType[str, int]:
    table = {_fold(name): number for number, name in enumerate(MONTH_NAMES, start=1)}
    table |= {_fold(name): number for name, number in _EXTRA_MONTH_SPELLINGS.items()}
    return MappingProxyType(table)


_MONTHS_BY_FOLDED_NAME = _month_lookup()


def parse_month_name(word: str) -> int | None:
    """Month number 1..13 for an Ethiopian month name in any common spelling (ህዳር, ሕዳር, ታህሳስ,
    ሀምሌ, ነሃሴ, ጳጉሜ, ...); None when `word` is not one."""
    return _MONTHS_BY_FOLDED_NAME.get(_fold(word))


def month_spellings() -> tuple[str, ...]:
    """Every spelling `parse_month_name` knows before homophone folding: the canonical names and
    the extra variants (callers widen each letter to its homophones themselves)."""
    return MONTH_NAMES + tuple(_EXTRA_MONTH_SPELLINGS)


def is_leap_year(year: int) -> bool:
    """True when Ethiopian `year` has a 6-day ጳጉሜን (year % 4 == 3)."""
    return year % 4 == 3


def days_in_month(year: int, month: int) -> int:
    """Days (30, or 5/6 for ጳጉሜን) in Ethiopian `month` 1..13 of `year`."""
    if not 1 <= month <= 13:
        raise ValueError(f"Ethiopian month must be 1..13, not {month}")
    if month < 13:
        return 30
    return 6 if is_leap_year(year) else 5


def validate_ethiopian_date(year: int, month: int, day: int) -> None:
    """Raise ValueError unless month is 1..13 and day fits the month (years are proleptic:
    any int, year 0 and below counting back from the epoch)."""
    last = days_in_month(year, month)
    if not 1 <= day <= last:
        raise ValueError(
            f"day must be 1..{last} in Ethiopian month {month} ({MONTH_NAMES[month - 1]}) "
            f"of {year}, not {day}"
        )


@dataclass(frozen=True)
class EthiopianDate:
    """A date of the Ethiopian calendar (month 1..13, day 1..30)."""

    year: int
    month: int
    day: int

    @property
    def month_name(self) -> str:
        """The month's name in Amharic (መስከረም .. ጳጉሜን)."""
        return MONTH_NAMES[self.month - 1]

    def __str__(self) -> str:
        return f"{self.month_name} {self.day} {self.year} ዓ.ም"


def _ethiopian_to_jdn(year: int, month: int, day: int) -> int:
    return ETHIOPIAN_EPOCH_JDN + 365 * (year - 1) + year // 4 + 30 * (month - 1) + day - 1


def _jdn_to_ethiopian(jdn: int) -> EthiopianDate:
    # Cycles of 1461 days start one year before the epoch, so the leap day ends each cycle.
    days = jdn - (ETHIOPIAN_EPOCH_JDN - 365)
    cycle, rest = divmod(days, 1461)
    year = 4 * cycle + rest // 365 - rest // 1460
    day_of_year = rest % 365 + 365 * (rest // 1460)
    return EthiopianDate(year, day_of_year // 30 + 1, day_of_year % 30 + 1)


def to_gregorian(year: int, month: int, day: int) -> datetime.date:
    """The Gregorian date of Ethiopian `year`-`month`-`day`; ValueError for an invalid date or
    one outside Python's date range (Gregorian years 1..9999)."""
    validate_ethiopian_date(year, month, day)
    ordinal = _ethiopian_to_jdn(year, month, day) - _GREGORIAN_ORDINAL_TO_JDN
    if not 1 <= ordinal <= datetime.date.max.toordinal():
        raise ValueError(f"Ethiopian {year}-{month}-{day} is outside Gregorian years 1..9999")
    return datetime.date.fromordinal(ordinal)


def to_ethiopian(year: int, month: int, day: int) -> EthiopianDate:
    """The Ethiopian date of Gregorian `year`-`month`-`day`; ValueError for an invalid one."""
    try:
        gregorian = datetime.date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"invalid Gregorian date {year}-{month}-{day}: {exc}") from None
    return _jdn_to_ethiopian(gregorian.toordinal() + _GREGORIAN_ORDINAL_TO_JDN)


class EthiopianTime(NamedTuple):
    """An Ethiopian clock reading: hour 1..12, minute 0..59 and its period word."""

    hour: int
    minute: int
    period: str


def canonical_period_word(word: str) -> str | None:
    """The canonical spelling of a period word (ከጧቱ -> ከጠዋቱ, ከሰአት በሁዋላ -> ከሰዓት በኋላ);
    None when `word` is not one of `PERIOD_WORDS` in any known spelling."""
    return _PERIOD_SPELLINGS.get(_fold(word))


def ethiopian_to_western_time(hour: int, minute: int, period: str | None = None) -> datetime.time:
    """Western time of Ethiopian `hour` (1..12) and `minute` (0..59); `period` picks the cycle
    (see the module docstring), None meaning the day cycle. ValueError for other values."""
    if not 1 <= hour <= 12:
        raise ValueError(f"Ethiopian hour must be 1..12, not {hour}")
    if not 0 <= minute <= 59:
        raise ValueError(f"minute must be 0..59, not {minute}")
    cycle = DAY_CYCLE
    if period is not None:
        word = canonical_period_word(period)
        if word is None:
            raise ValueError(f"unknown period word {period!r}; expected one of {PERIOD_WORDS}")
        cycle = _PERIOD_CYCLES[word]
    start = 6 if cycle == DAY_CYCLE else 18  # western hour at Ethiopian 12
    return datetime.time((start + hour % 12) % 24, minute)


def western_to_ethiopian_time(t: datetime.time) -> EthiopianTime:
    """Ethiopian (hour 1..12, minute, period word) for western time `t` (seconds ignored),
    the period named by the ranges in the module docstring."""
    if t.hour < 6:
        period = "ከሌሊቱ"
    elif t.hour < 12:
        period = "ከጠዋቱ"
    elif t.hour < 18:
        period = "ከቀኑ"
    else:
        period = "ከምሽቱ"
    return EthiopianTime((t.hour - 6) % 12 or 12, t.minute, period)
