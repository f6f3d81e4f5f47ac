"""Ethiopian calendar and clock (utils.amharic.calendar), and times and dates in Amharic text
(utils.amharic.times_dates)."""

from __future__ import annotations

import datetime
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utils.amharic.calendar import (
    MONTH_NAMES,
    PERIOD_WORDS,
    EthiopianDate,
    days_in_month,
    ethiopian_to_western_time,
    is_leap_year,
    parse_month_name,
    to_ethiopian,
    to_gregorian,
    western_to_ethiopian_time,
)
from utils.amharic.normalize import HOMOPHONES
from utils.amharic.times_dates import date_to_words, normalize_times_and_dates, time_to_words

# --- calendar ------------------------------------------------------------------------------

ANCHORS = [
    ((2016, 1, 1), datetime.date(2023, 9, 12)),  # after the leap year 2015
    ((2017, 1, 1), datetime.date(2024, 9, 11)),
    ((2012, 1, 1), datetime.date(2019, 9, 12)),  # Gregorian 2020 is a leap year
    ((2015, 13, 6), datetime.date(2023, 9, 11)),  # ጳጉሜን 6 exists: 2015 % 4 == 3
    ((1992, 4, 22), datetime.date(2000, 1, 1)),
    ((2016, 4, 28), datetime.date(2024, 1, 7)),  # ገና after a 6-day ጳጉሜን
    ((2015, 4, 29), datetime.date(2023, 1, 7)),  # ገና in an ordinary year
    ((2017, 4, 29), datetime.date(2025, 1, 7)),
    ((1888, 6, 23), datetime.date(1896, 3, 1)),  # Adwa: before 1900 the offset is a day less
    ((1, 1, 1), datetime.date(8, 8, 27)),  # the epoch, JDN 1724221
]


@pytest.mark.parametrize(("ethiopian", "gregorian"), ANCHORS)
def test_anchor_dates_convert_both_ways(
    ethiopian: tuple[int, int, int], gregorian: datetime.date
) -> None:
    assert to_gregorian(*ethiopian) == gregorian
    assert to_ethiopian(gregorian.year, gregorian.month, gregorian.day) == EthiopianDate(*ethiopian)


def test_anchors_agree_with_julian_day_numbers() -> None:
    # JDN = proleptic Gregorian ordinal + 1721425; Meskerem 1 of year 1 is JDN 1724221.
    assert to_gregorian(1, 1, 1).toordinal() + 1721425 == 1724221
    assert datetime.date(2000, 1, 1).toordinal() + 1721425 == 2451545  # the J2000 epoch
    days = (1992 - 1) * 365 + 1992 // 4 + 3 * 30 + 21  # Ethiopian 1992-04-22 after the epoch
    assert 1724221 + days == 2451545


def test_new_year_is_september_12_before_a_gregorian_leap_year() -> None:
    # Between 1900 and 2099 every fourth Gregorian year is a leap year; the Ethiopian leap day
    # (ጳጉሜን 6) falls in the September before it and shifts the next new year by one day.
    for gregorian_year in range(1900, 2100):
        new_year = to_gregorian(gregorian_year - 7, 1, 1)
        day = 12 if (gregorian_year + 1) % 4 == 0 else 11
        assert new_year == datetime.date(gregorian_year, 9, day)


def test_month_names_and_date_fields() -> None:
    date = to_ethiopian(2024, 9, 11)
    assert (date.year, date.month, date.day, date.month_name) == (2017, 1, 1, "መስከረም")
    assert str(date) == "መስከረም 1 2017 ዓ.ም"
    assert to_ethiopian(2023, 9, 11).month_name == "ጳጉሜን"
    assert len(MONTH_NAMES) == 13
    with pytest.raises(AttributeError):
        date.year = 2018  # type: ignore[misc]


@pytest.mark.parametrize(
    ("word", "month"),
    [
        ("መስከረም", 1),
        ("ኅዳር", 3),
        ("ህዳር", 3),
        ("ሕዳር", 3),
        ("ታኅሣሥ", 4),
        ("ታህሳስ", 4),
        ("ታሕሳስ", 4),
        ("ሚያዚያ", 8),
        ("ሐምሌ", 11),
        ("ሀምሌ", 11),
        ("ሃምሌ", 11),
        ("ነሐሴ", 12),
        ("ነሃሴ", 12),
        ("ጳጉሜ", 13),
        ("ጳጉሜን", 13),
        ("ሰላም", None),
        ("", None),
    ],
)
def test_month_names_parse_in_common_spellings(word: str, month: int | None) -> None:
    assert parse_month_name(word) == month


def test_leap_years_and_month_lengths() -> None:
    assert [is_leap_year(y) for y in (2011, 2012, 2015, 2016)] == [True, False, True, False]
    assert days_in_month(2015, 13) == 6
    assert days_in_month(2016, 13) == 5
    assert days_in_month(2016, 4) == 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((2016, 0, 1), "month must be 1..13"),
        ((2016, 14, 1), "month must be 1..13"),
        ((2016, 1, 31), "day must be 1..30"),
        ((2016, 1, 0), "day must be 1..30"),
        ((2016, 13, 6), "day must be 1..5"),
        ((2015, 13, 7), "day must be 1..6"),
        ((9999, 1, 1), "outside Gregorian years"),
    ],
)
def test_invalid_ethiopian_dates_raise(args: tuple[int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_gregorian(*args)


def test_invalid_gregorian_dates_raise() -> None:
    for args in ((2023, 2, 29), (2024, 13, 1), (2024, 4, 31), (0, 1, 1)):
        with pytest.raises(ValueError, match="invalid Gregorian date"):
            to_ethiopian(*args)


@settings(max_examples=300)
@given(st.dates(datetime.date(1900, 1, 1), datetime.date(2100, 12, 31)))
def test_gregorian_round_trip(date: datetime.date) -> None:
    ethiopian = to_ethiopian(date.year, date.month, date.day)
    assert 1 <= ethiopian.month <= 13
    assert 1 <= ethiopian.day <= days_in_month(ethiopian.year, ethiopian.month)
    assert to_gregorian(ethiopian.year, ethiopian.month, ethiopian.day) == date


@st.composite
def ethiopian_dates(draw: st.DrawFn) -> tuple[int, int, int]:
    year = draw(st.integers(1892, 2093))
    month = draw(st.integers(1, 13))
    return year, month, draw(st.integers(1, days_in_month(year, month)))


@settings(max_examples=300)
@given(ethiopian_dates())
def test_ethiopian_round_trip(date: tuple[int, int, int]) -> None:
    gregorian = to_gregorian(*date)
    assert to_ethiopian(gregorian.year, gregorian.month, gregorian.day) == EthiopianDate(*date)
    assert to_gregorian(*date) - to_gregorian(1892, 1, 1) == datetime.timedelta(
        days=sum(days_in_month(y, m) for y in range(1892, date[0]) for m in range(1, 14))
        + sum(days_in_month(date[0], m) for m in range(1, date[1]))
        + date[2]
        - 1
    )


# --- clock ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hour", "minute", "period", "western"),
    [
        (3, 30, "ከጠዋቱ", datetime.time(9, 30)),
        (12, 0, "ከጠዋቱ", datetime.time(6, 0)),
        (2, 0, "ከምሽቱ", datetime.time(20, 0)),
        (7, 0, "ከሌሊቱ", datetime.time(1, 0)),
        (6, 0, "ከሌሊቱ", datetime.time(0, 0)),
        (7, 0, "ከቀኑ", datetime.time(13, 0)),
        (6, 0, "ከቀኑ", datetime.time(12, 0)),
        (9, 0, "ከሰዓት በኋላ", datetime.time(15, 0)),
        (9, 0, "ከሰአት  በሁዋላ", datetime.time(15, 0)),
        (12, 0, "ከምሽቱ", datetime.time(18, 0)),
        (11, 59, "ከሌሊቱ", datetime.time(5, 59)),
        (2, 0, "ከጧቱ", datetime.time(8, 0)),
        (4, 0, None, datetime.time(10, 0)),  # no period: the day cycle
    ],
)
def test_ethiopian_clock_to_western(
    hour: int, minute: int, period: str | None, western: datetime.time
) -> None:
    assert ethiopian_to_western_time(hour, minute, period) == western


@pytest.mark.parametrize(
    ("western_hour", "hour", "period"),
    [
        (0, 6, "ከሌሊቱ"),
        (5, 11, "ከሌሊቱ"),
        (6, 12, "ከጠዋቱ"),
        (7, 1, "ከጠዋቱ"),
        (11, 5, "ከጠዋቱ"),
        (12, 6, "ከቀኑ"),
        (17, 11, "ከቀኑ"),
        (18, 12, "ከምሽቱ"),
        (23, 5, "ከምሽቱ"),
    ],
)
def test_western_to_ethiopian_period_ranges(western_hour: int, hour: int, period: str) -> None:
    assert western_to_ethiopian_time(datetime.time(western_hour, 20)) == (hour, 20, period)


@pytest.mark.parametrize("western_hour", range(24))
def test_clock_round_trips_for_every_hour(western_hour: int) -> None:
    for minute in (0, 15, 30, 59):
        t = datetime.time(western_hour, minute)
        hour, got_minute, period = western_to_ethiopian_time(t)
        assert 1 <= hour <= 12
        assert period in PERIOD_WORDS
        assert ethiopian_to_western_time(hour, got_minute, period) == t


def test_every_ethiopian_hour_and_period_round_trips() -> None:
    for hour, period in itertools.product(range(1, 13), PERIOD_WORDS):
        t = ethiopian_to_western_time(hour, 45, period)
        back = western_to_ethiopian_time(t)
        assert (back.hour, back.minute) == (hour, 45)
        assert ethiopian_to_western_time(*back) == t


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 0, None), "hour must be 1..12"),
        ((13, 0, None), "hour must be 1..12"),
        ((3, 60, None), "minute must be 0..59"),
        ((3, 0, "ነገ"), "unknown period word"),
    ],
)
def test_invalid_clock_values_raise(args: tuple[int, int, str | None], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ethiopian_to_western_time(*args)


# --- times and dates in text ---------------------------------------------------------------

EQUIVALENT_FORMS = {
    "ከጠዋቱ 3:30": [
        "ከጠዋቱ 3:30",
        "ከጠዋቱ 03:30",
        "ከጠዋቱ 3፡30",
        "ከጠዋቱ 3.30",
        "ከጠዋቱ 3:30 ሰዓት",
        "ከጠዋቱ 3 ሰዓት ከ30 ደቂቃ",
        "ከጠዋቱ 3 ሰዓት ከ 30 ደቂቃ",
        "ከጠዋቱ 3 ሰዓት ተኩል",
        "ከጠዋቱ 3 ተኩል",
        "ከጧቱ 3 ሰዓት ተኩል",
        "ከጠዋቱ  3ሰአት ተኩል",
    ],
    "3:30": ["3:30", "3፡30", "03:30", "3 ሰዓት ተኩል", "3 ሰዓት ከ30 ደቂቃ", "3:30 ሰዓት"],
    "3:15": ["3:15", "3 ሰዓት ሩብ", "3 ሰዓት ከሩብ", "3 ሰዓት ከ15 ደቂቃ"],
    "3:45": ["3:45", "ለ4 ሰዓት ሩብ ጉዳይ", "ለ4 ሩብ ጉዳይ", "ለ4 ሰዓት ከ15 ደቂቃ ጉዳይ"],
    "3:00": ["3:00", "3 ሰዓት", "3:00 ሰዓት", "03:00"],
    "ከሌሊቱ 7:00": ["ከሌሊቱ 7", "ከሌሊቱ 7 ሰዓት", "ከለሊቱ 7:00"],
    "ከሰዓት በኋላ 9:00": ["ከሰዓት በኋላ 9 ሰዓት", "ከሰአት በሁዋላ 9", "ከሰዓት በኋላ 9:00"],
    "በ3:00": ["በ3 ሰዓት", "በ3:00", "በ3፡00 ሰዓት"],
    "መስከረም 12 2017 ዓ.ም": [
        "12/01/2017",
        "12-01-2017",
        "12.01.2017",
        "12/1/2017",
        "መስከረም 12 ቀን 2017 ዓ.ም",
        "መስከረም 12 ቀን 2017 ዓ.ም.",
        "መስከረም 12, 2017",
        "መስከረም 12፣ 2017",
        "መስከረም 12 2017",
        "12 መስከረም 2017",
        "መስከረም 12 ቀን 2017 ዓ/ም",
        "መስከረም 12 ቀን 2017 ዓም",
        "መስከረም 12 ቀን 2017 ዓመተ ምሕረት",
        "12/01/2017 ዓ.ም",
    ],
    "ታኅሣሥ 29 2016 ዓ.ም": ["ታህሳስ 29 2016", "ታሕሳስ 29 ቀን 2016 ዓ.ም", "29/4/2016", "29 ታኅሣሥ 2016"],
    "ጳጉሜን 6 2015 ዓ.ም": ["ጳጉሜ 6 ቀን 2015 ዓ.ም", "06/13/2015", "6 ጳጉሜ 2015"],
    "በመስከረም 1 2017 ዓ.ም": ["በመስከረም 1 ቀን 2017 ዓ.ም", "በ1/1/2017", "በ1 መስከረም 2017"],
    "ሐምሌ 5": ["ሐምሌ 5", "ሀምሌ 5 ቀን", "ሃምሌ 05"],
    "2017 ዓ.ም": ["2017 ዓ.ም", "2017 ዓ.ም.", "2017ዓ/ም", "2017 ዓም", "2017 ዓመተ ምህረት"],
}


def _fold(text: str) -> str:
    return "".join(HOMOPHONES.get(ch, ch) for ch in text)


@pytest.mark.parametrize(("canonical", "forms"), list(EQUIVALENT_FORMS.items()))
def test_written_forms_compare_equal(canonical: str, forms: list[str]) -> None:
    for form in forms:
        assert normalize_times_and_dates(form) == canonical, form
        # normalize_amharic folds homophones (ሰዓት -> ሰአት, ዓ.ም -> አ.ም) before this step
        assert normalize_times_and_dates(_fold(form)) == canonical, form
    normalized = {normalize_times_and_dates(f"ስብሰባው {form} ላይ ነው።") for form in forms}
    assert normalized == {f"ስብሰባው {canonical} ላይ ነው።"}


def test_sentence_with_date_and_time() -> None:
    text = "ዛሬ መስከረም 12 ቀን 2017 ዓ.ም. ከጠዋቱ 3 ሰዓት ተኩል ስብሰባ አለ።"
    expected = "ዛሬ መስከረም 12 2017 ዓ.ም ከጠዋቱ 3:30 ስብሰባ አለ።"
    assert normalize_times_and_dates(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ሰላም ለሁላችሁ ይሁን።",
        "Meeting at 3 pm on 12 March.",
        "1,000 ሰዎች 12.50 ብር ከፈሉ",
        "24 ሰዓት",  # a duration, not an hour of the clock
        "3 ሰዓታት ቆየ",
        "3.30",  # a decimal without a period word
        "3 ተኩል ኪሎ",
        "3:30:15",
        "ከ3:00-4:00",
        "31/01/2017",  # no day 31
        "06/13/2016",  # no ጳጉሜን 6 in 2016
        "12/01/2017 እ.ኤ.አ",  # a Gregorian date stays as written
        "ISO 2017-01-12",
        "መስከረም 3:30",
        "ገና 7 ቀን",
    ],
)
def test_text_without_times_or_dates_is_unchanged(text: str) -> None:
    assert normalize_times_and_dates(text) == text


TOKENS = [
    *MONTH_NAMES,
    *("ህዳር", "ታህሳስ", "ጳጉሜ", "ሀምሌ"),
    *PERIOD_WORDS,
    *("ከጧቱ", "ሰዓት", "ሰአት", "ሰዓታት", "ደቂቃ", "ተኩል", "ሩብ", "ጉዳይ", "ቀን"),
    *("ዓ.ም", "ዓ/ም", "ዓም", "ዓ.ም.", "እ.ኤ.አ", "ከ", "በ", "ለ", "እስከ", "ሰላም", "a", "x"),
    *("0", "1", "3", "6", "12", "13", "30", "59", "01", "2015", "2017"),
    *(":", "፡", "/", ".", "-", ",", "።", "፣", "\t"),
]
texts = st.one_of(
    st.lists(
        st.tuples(st.sampled_from(TOKENS), st.sampled_from(["", " ", " ", "  ", "\n"])),
        max_size=12,
    ).map(lambda pairs: "".join(token + space for token, space in pairs)),
    st.text(max_size=40),
)


@settings(max_examples=400)
@given(texts)
def test_normalization_is_idempotent_and_never_raises(text: str) -> None:
    once = normalize_times_and_dates(text)
    assert isinstance(once, str)
    assert normalize_times_and_dates(once) == once


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40))
def test_text_without_ethiopic_or_digits_passes_through(text: str) -> None:
    if not any(ch.isdigit() or "\u1200" <= ch <= "\u137f" for ch in text):
        assert normalize_times_and_dates(text) == text


# --- spoken forms --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((3, 30, "ከጠዋቱ"), "ከጠዋቱ ሦስት ሰዓት ተኩል"),
        ((3, 0, None), "ሦስት ሰዓት"),
        ((3, 15, None), "ሦስት ሰዓት ከሩብ"),
        ((12, 10, "ከምሽቱ"), "ከምሽቱ አስራ ሁለት ሰዓት ከአስር ደቂቃ"),
        ((9, 0, "ከሰአት በሁዋላ"), "ከሰዓት በኋላ ዘጠኝ ሰዓት"),
    ],
)
def test_time_to_words(args: tuple[int, int, str | None], words: str) -> None:
    assert time_to_words(*args) == words


def test_date_to_words() -> None:
    assert date_to_words(2017, 1, 12) == "መስከረም አስራ ሁለት ቀን ሁለት ሺህ አስራ ሰባት ዓ.ም"
    assert date_to_words(2015, 13, 6) == "ጳጉሜን ስድስት ቀን ሁለት ሺህ አስራ አምስት ዓ.ም"


def test_words_functions_reject_invalid_values() -> None:
    for args in ((0, 0, None), (13, 0, None), (3, 60, None), (3, 0, "ነገ")):
        with pytest.raises(ValueError):
            time_to_words(*args)
    for date in ((2016, 13, 6), (2017, 14, 1), (2017, 1, 31), (0, 1, 1)):
        with pytest.raises(ValueError):
            date_to_words(*date)
