"""Checks of an utterance's text: empty, too long for the decoder, unexpected script."""

from __future__ import annotations

import functools
from functools import cached_property

from utils.amharic.script import script_shares

# Below this share of its letters in the expected script, a text gets a warning (not a
# rejection: code-switched Amharic with English words is legitimate).
SCRIPT_WARNING_SHARE = 0.5
EXPECTED_SCRIPT = {"am": "ethiopic", "ti": "ethiopic"}  # others: Latin-script languages only
LATIN_LANGUAGES = frozenset(
    [
        "en",
        "fr",
        "de",
        "es",
        "it",
        "pt",
        "nl",
        "sv",
        "da",
        "no",
        "fi",
        "pl",
        "cs",
        "sk",
        "sl",
        "hr",
        "ro",
        "hu",
        "tr",
        "id",
        "ms",
        "sw",
        "so",
        "ha",
        "yo",
        "ig",
        "om",
        "af",
        "ca",
        "eu",
        "gl",
        "et",
        "lv",
        "lt",
        "mt",
        "cy",
        "ga",
        "is",
        "sq",
        "vi",
        "tl",
    ]
)


@functools.cache
def default_tokenizer():
    """The default model's tokenizer (tokenizers.Tokenizer), loaded once per process."""
    from tokenizers import Tokenizer

    from utils.model_store import ensure_default_model

    return Tokenizer.from_file(str(ensure_default_model() / "tokenizer.json"))


def model_tokenizer(model: str | None):
    """The tokenizer of `model` (a registry name or directory): a Ge'ez vocabulary fits about
    three times more Amharic in the decoder. The default model's when `model` is None, has no
    tokenizer.json or cannot be found."""
    from tokenizers import Tokenizer

    from utils.model_store import DEFAULT_MODEL, ModelNotFoundError, resolve_model

    if not model or model == DEFAULT_MODEL:
        return default_tokenizer()
    try:
        path = resolve_model(model).path / "tokenizer.json"
    except ModelNotFoundError:
        return default_tokenizer()
    return Tokenizer.from_file(str(path)) if path.is_file() else default_tokenizer()


class TextChecker:
    """Text checks for one language; the decoder-fit check counts with `model`'s tokenizer
    (loaded once, on first use)."""

    def __init__(self, language: str, model: str | None = None):
        self.language = language
        self.model = model

    @cached_property
    def _normalizer(self):
        from evaluation.normalizers import get_normalizer

        return get_normalizer("auto", self.language)

    @cached_property
    def tokenizer(self):
        return model_tokenizer(self.model)

    def normalize(self, text: str) -> str:
        return self._normalizer(text)

    def rejection(self, text: str) -> str:
        """Why `text` cannot be a training label, or "" when it can."""
        if not text.strip():
            return "empty text"
        from evaluation.token_cost import decoder_budget

        budget = decoder_budget(text, self.tokenizer, language=self.language or None)
        if not budget.fits:
            return (
                f"label needs {budget.total} decoder positions, over {budget.max_positions} "
                f"({len(text)} characters; {budget.text_tokens / max(len(text), 1):.1f} tokens "
                f"per character with {self.model or 'the default model'}'s vocabulary)"
            )
        return ""

    def warnings(self, text: str) -> list[str]:
        expected = EXPECTED_SCRIPT.get(self.language)
        if expected is None and self.language in LATIN_LANGUAGES:
            expected = "latin"
        if expected is None:
            return []
        shares = script_shares(text)
        letters = shares.ethiopic + shares.latin + shares.other
        share = getattr(shares, expected) / letters if letters else 1.0
        if share < SCRIPT_WARNING_SHARE:
            return [
                f"text is {share:.0%} {expected.capitalize()} script, unexpected for "
                f"language {self.language!r}"
            ]
        return []
