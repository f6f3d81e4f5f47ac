"""Language-aware text normalizers applied before scoring.

Names: "english" (Whisper's EnglishTextNormalizer), "amharic" (`utils.amharic.normalize`, with
punctuation removed, numerals and number words written as Arabic digits, times and dates in one
written form), "basic" (Whisper's
BasicTextNormalizer), "none" (text scored exactly as given) and "auto", which picks "english"
for "en", "amharic" for "am" and "basic" for every other language code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, get_args

NormalizerName = Literal["auto", "english", "amharic", "basic", "none"]
NORMALIZER_NAMES: tuple[str, ...] = get_args(NormalizerName)

Normalizer = Callable[[str], str]


def resolve_normalizer_name(normalizer: str, language: str) -> str:
    """The concrete normalizer name ("english", "amharic", "basic" or "none") for a request.

    Raises ValueError for an unknown name.
    """
    if normalizer not in NORMALIZER_NAMES:
        raise ValueError(
            f"unknown normalizer {normalizer!r}; choose one of {', '.join(NORMALIZER_NAMES)}"
        )
    if normalizer != "auto":
        return normalizer
    code = language.strip().lower()
    return {"en": "english", "am": "amharic"}.get(code, "basic")


def _amharic(*, homophones: bool = True, labialized: bool = True) -> Normalizer:
    # Imported lazily: the Amharic package is optional for non-Amharic scoring.
    from utils.amharic.normalize import normalize_amharic

    def run(text: str) -> str:
        return normalize_amharic(
            text,
            homophones=homophones,
            labialized=labialized,
            punctuation="remove",
            numerals="arabic",
            times_dates=True,
        )

    return run


def _whisper(name: str) -> Normalizer:
    if name == "english":
        from whisper_normalizer.english import EnglishTextNormalizer

        return EnglishTextNormalizer()
    from whisper_normalizer.basic import BasicTextNormalizer

    return BasicTextNormalizer()


def _identity(text: str) -> str:
    return text


def _collapse_spaces(inner: Normalizer) -> Normalizer:
    # Whisper's normalizers leave a leading/trailing space; one canonical form keeps CER honest.
    def run(text: str) -> str:
        return " ".join(inner(text).split())

    return run


def get_normalizer(
    normalizer: str,
    language: str,
    *,
    homophones: bool = True,
    labialized: bool = True,
) -> Normalizer:
    """A text -> text function for `normalizer` (see the module docstring) and `language`.

    Every normalizer except "none" also collapses whitespace runs to one space and strips the
    ends; "none" returns the text unchanged (jiwer's own default transforms still apply when
    scoring). `homophones` and `labialized` only affect the Amharic normalizer.
    """
    name = resolve_normalizer_name(normalizer, language)
    if name == "none":
        return _identity
    if name == "amharic":
        return _collapse_spaces(_amharic(homophones=homophones, labialized=labialized))
    return _collapse_spaces(_whisper(name))


def normalize_all(texts: Sequence[str], normalizer: Normalizer) -> tuple[str, ...]:
    """`normalizer` applied to each text, in order."""
    return tuple(normalizer(text) for text in texts)
