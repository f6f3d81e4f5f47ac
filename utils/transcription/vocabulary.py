"""Constrained vocabulary: the token ids to suppress so decoding can only spell given words."""

from __future__ import annotations

from typing import Protocol

# Punctuation and spacing a restricted transcript may still use between the listed words.
_ALLOWED_PUNCTUATION = (" ", ".", ",", "?", "!", "'", "-", ":", ";", "።", "፣", "፤", "፧")


class _Encoder(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> object: ...

    def get_vocab_size(self) -> int: ...

    def token_to_id(self, token: str) -> int | None: ...


def _ids(tokenizer: _Encoder, text: str) -> list[int]:
    encoded = tokenizer.encode(text, add_special_tokens=False)
    return list(getattr(encoded, "ids", encoded))


def allowed_token_ids(tokenizer: _Encoder, words: tuple[str, ...]) -> set[int]:
    """Ids of every token that spells a listed word (lower, capitalized, upper; with and without a
    leading space) or the punctuation between words."""
    allowed: set[int] = set()
    for word in words:
        for form in {word, word.lower(), word.capitalize(), word.upper()}:
            allowed.update(_ids(tokenizer, form))
            allowed.update(_ids(tokenizer, " " + form))
    for mark in _ALLOWED_PUNCTUATION:
        allowed.update(_ids(tokenizer, mark))
    return allowed


def restricted_suppress_tokens(tokenizer: _Encoder, words: tuple[str, ...]) -> tuple[int, ...]:
    """Every text token id (below <|endoftext|>) that cannot spell the words; special and
    timestamp tokens stay allowed so segments still end and carry timestamps."""
    end_of_text = tokenizer.token_to_id("<|endoftext|>")
    if end_of_text is None:
        raise ValueError("the tokenizer has no <|endoftext|> token: not a Whisper tokenizer")
    allowed = allowed_token_ids(tokenizer, words)
    return tuple(i for i in range(end_of_text) if i not in allowed)
