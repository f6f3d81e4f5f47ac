"""Tokenizer cost of transcripts: tokens per character and whether a label fits the decoder.

Whisper's byte-level BPE spends about 3 tokens per Ethiopic character (each is 3 UTF-8 bytes
that the vocabulary rarely merges), so only about 150 Amharic characters fit one 448-position
decoder window, against several hundred for English.

A tokenizer is a transformers `WhisperTokenizer`/`WhisperTokenizerFast`, a `tokenizers.Tokenizer`
(whose `encode` returns an `Encoding` with `.ids`), or anything with
`.encode(text, add_special_tokens=False)` returning a sequence of token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

WHISPER_MAX_TARGET_POSITIONS = 448  # decoder positions of every Whisper model
TASKS = ("transcribe", "translate")


class SupportsEncode(Protocol):
    """Anything with a Hugging Face style `encode`."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> Any: ...


def count_tokens(text: str, tokenizer: SupportsEncode) -> int:
    """Tokens of `text` alone (no special tokens)."""
    encoded = tokenizer.encode(text, add_special_tokens=False)
    ids: Sequence[int] = getattr(encoded, "ids", encoded)  # tokenizers.Encoding keeps ids apart
    return len(ids)


def tokens_per_char(text: str, tokenizer: SupportsEncode) -> float:
    """Tokens of `text` per character (Unicode code points, spaces included).

    Raises ValueError for an empty text, whose ratio is undefined.
    """
    if not text:
        raise ValueError("tokens_per_char of an empty text is undefined")
    return count_tokens(text, tokenizer) / len(text)


@dataclass(frozen=True)
class DecoderBudget:
    """Decoder positions a label needs: prefix + text + end-of-text, against `max_positions`."""

    prefix_tokens: int  # <|startoftranscript|> [<|lang|>] <|task|> [<|notimestamps|>]
    text_tokens: int
    end_tokens: int  # <|endoftext|>, plus the closing timestamp with timestamps
    max_positions: int

    @property
    def total(self) -> int:
        """All positions used (tokens)."""
        return self.prefix_tokens + self.text_tokens + self.end_tokens

    @property
    def fits(self) -> bool:
        """True when `total` <= `max_positions`."""
        return self.total <= self.max_positions

    @property
    def spare(self) -> int:
        """Unused positions (negative when the label is too long)."""
        return self.max_positions - self.total


def decoder_budget(
    text: str,
    tokenizer: SupportsEncode,
    *,
    language: str | None = "am",
    task: str = "transcribe",
    timestamps: bool = False,
    max_positions: int = WHISPER_MAX_TARGET_POSITIONS,
) -> DecoderBudget:
    """How many decoder positions `text` needs as a Whisper training label.

    The prefix is <|startoftranscript|>, the language token (none when `language` is None),
    the task token, and <|notimestamps|> when `timestamps` is False. With timestamps the text
    is taken as one segment: an opening timestamp token replaces <|notimestamps|> and a closing
    one precedes <|endoftext|>. Raises ValueError for an unknown task or max_positions < 1.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if max_positions < 1:
        raise ValueError(f"max_positions must be >= 1, got {max_positions}")
    # <|startoftranscript|>, [<|lang|>], <|task|>, and <|notimestamps|> or the opening timestamp
    prefix = 3 + int(language is not None)
    return DecoderBudget(
        prefix_tokens=prefix,
        text_tokens=count_tokens(text, tokenizer),
        end_tokens=2 if timestamps else 1,
        max_positions=max_positions,
    )


def fits_decoder(
    text: str,
    tokenizer: SupportsEncode,
    *,
    language: str | None = "am",
    task: str = "transcribe",
    timestamps: bool = False,
    max_positions: int = WHISPER_MAX_TARGET_POSITIONS,
) -> bool:
    """True when `text` with its prefix and end tokens fits `max_positions` decoder positions."""
    budget = decoder_budget(
        text,
        tokenizer,
        language=language,
        task=task,
        timestamps=timestamps,
        max_positions=max_positions,
    )
    return budget.fits
