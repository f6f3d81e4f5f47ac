"""Tokenizer cost with the real Whisper tokenizer of the default model (offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evaluation.metrics import decoder_budget, fits_decoder, tokens_per_char
from evaluation.token_cost import SupportsEncode

ENGLISH = "The quick brown fox jumps over the lazy dog near the river bank."
# Plain Amharic prose, 88 characters with spaces and punctuation.
AMHARIC = "ኢትዮጵያ በምሥራቅ አፍሪካ የምትገኝ ሀገር ናት። ዋና ከተማዋ አዲስ አበባ ነው። ሕዝቧ ብዙ ቋንቋዎችን ይናገራል። አማርኛ የሥራ ቋንቋ ነው።"


def _amharic(chars: int) -> str:
    text = " ".join([AMHARIC] * 4)[:chars]
    assert len(text) == chars
    return text


class OneTokenPerChar:
    """A stand-in tokenizer: one token id per character."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        assert add_special_tokens is False
        return [ord(ch) for ch in text]


@pytest.fixture(scope="module")
def hf_tokenizer(default_model_dir: Path) -> Any:
    transformers = pytest.importorskip("transformers")
    return transformers.WhisperTokenizerFast(
        tokenizer_file=str(default_model_dir / "tokenizer.json")
    )


@pytest.fixture(scope="module")
def raw_tokenizer(default_model_dir: Path) -> Any:
    tokenizers = pytest.importorskip("tokenizers")
    return tokenizers.Tokenizer.from_file(str(default_model_dir / "tokenizer.json"))


def test_tokens_per_char_english_vs_amharic(
    hf_tokenizer: SupportsEncode, raw_tokenizer: SupportsEncode
) -> None:
    for tokenizer in (hf_tokenizer, raw_tokenizer):
        assert tokens_per_char(ENGLISH, tokenizer) < 0.5  # BPE merges whole English words
        assert 2.3 <= tokens_per_char(AMHARIC, tokenizer) <= 3.0
    with pytest.raises(ValueError, match="empty"):
        tokens_per_char("", raw_tokenizer)


def test_amharic_window_capacity(hf_tokenizer: SupportsEncode) -> None:
    assert fits_decoder(_amharic(140), hf_tokenizer)
    assert not fits_decoder(_amharic(200), hf_tokenizer)
    assert fits_decoder(ENGLISH * 6, hf_tokenizer, language="en")


def test_budget_matches_the_tokenizer_with_its_prefix(hf_tokenizer: Any) -> None:
    text = _amharic(60)
    hf_tokenizer.set_prefix_tokens(language="am", task="transcribe", predict_timestamps=False)
    full = hf_tokenizer.encode(text)  # <|startoftranscript|><|am|><|transcribe|><|notimestamps|>
    assert full[-1] == hf_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert decoder_budget(text, hf_tokenizer).total == len(full)


@pytest.mark.parametrize(
    ("kwargs", "longest"),
    [
        ({}, 448 - 5),  # sot, am, transcribe, notimestamps ... eot
        ({"timestamps": True}, 448 - 6),  # an opening and a closing timestamp
        ({"language": None}, 448 - 4),
        ({"max_positions": 100, "task": "translate"}, 95),
    ],
)
def test_fits_decoder_boundary(kwargs: dict[str, Any], longest: int) -> None:
    tokenizer = OneTokenPerChar()
    assert fits_decoder("x" * longest, tokenizer, **kwargs)
    assert not fits_decoder("x" * (longest + 1), tokenizer, **kwargs)
    assert decoder_budget("x" * longest, tokenizer, **kwargs).spare == 0


def test_bad_decoder_arguments() -> None:
    with pytest.raises(ValueError, match="task"):
        fits_decoder("x", OneTokenPerChar(), task="summarize")
    with pytest.raises(ValueError, match="max_positions"):
        fits_decoder("x", OneTokenPerChar(), max_positions=0)
