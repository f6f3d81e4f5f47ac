"""Amharic language layer: the public names (a contract later tooling relies on).

Each lives in a small module of `utils/amharic/`: `script` (which characters are Ethiopic),
`normalize` (homophones, labialized spellings, punctuation, numerals), `numerals` (Ethiopic
numerals), `number_words` (cardinals in words), `calendar` and `times_dates` (Ethiopian calendar
and clock, times and dates in text), `syllables` (consonant and vowel order of a syllable) and
`transliteration` (SERA-style Latin transliteration).
"""

from __future__ import annotations

from utils.amharic.calendar import (
    EthiopianDate,
    ethiopian_to_western_time,
    to_ethiopian,
    to_gregorian,
    western_to_ethiopian_time,
)
from utils.amharic.normalize import normalize_amharic
from utils.amharic.number_words import (
    amharic_number_words_to_digits,
    amharic_words_to_number,
    number_to_amharic_words,
)
from utils.amharic.numerals import (
    ethiopic_numerals_to_arabic,
    ethiopic_to_int,
    int_to_ethiopic,
)
from utils.amharic.script import is_ethiopic, script_ratio, script_shares
from utils.amharic.syllables import compose, decompose
from utils.amharic.times_dates import date_to_words, normalize_times_and_dates, time_to_words
from utils.amharic.transliteration import transliterate

__all__ = [
    "EthiopianDate",
    "amharic_number_words_to_digits",
    "amharic_words_to_number",
    "compose",
    "date_to_words",
    "decompose",
    "ethiopian_to_western_time",
    "ethiopic_numerals_to_arabic",
    "ethiopic_to_int",
    "int_to_ethiopic",
    "is_ethiopic",
    "normalize_amharic",
    "normalize_times_and_dates",
    "number_to_amharic_words",
    "script_ratio",
    "script_shares",
    "time_to_words",
    "to_ethiopian",
    "to_gregorian",
    "transliterate",
    "western_to_ethiopian_time",
]
