"""Ge'ez script in Whisper's byte-level BPE: the byte alphabet and the tokens a Ge'ez-aware
vocabulary adds.

Whisper's tokenizer (GPT-2's byte-level BPE) writes each UTF-8 byte as one printable character
(`byte_alphabet`). An Ethiopic character U+1200-137F is three bytes, E1 88..8D xx, and no merge
joins them, so it costs about three tokens. The tokens added here are, in merge order:
- 6 prefixes: E1 followed by one of 88..8D (`á` + `Ī ī Ĭ ĭ Į į` in the byte alphabet);
- one token per assigned character of the block (358): a prefix followed by its last byte;
- space variants: `Ġ` (a space) followed by a character, for the characters that most often
  begin a word, so a word costs one token for its first character too.
"""

from __future__ import annotations

import functools
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

ETHIOPIC_BLOCK = range(0x1200, 0x1380)  # the main block; its UTF-8 is E1 88 80 .. E1 8D BF
SPACE = "Ġ"  # the byte alphabet's space


@functools.cache
def byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character map (`bytes_to_unicode`): printable Latin-1 bytes
    stand for themselves, the others are shifted to U+0100 and up."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    mapping, shifted = {b: chr(b) for b in printable}, 0
    for byte in range(256):
        if byte not in mapping:
            mapping[byte] = chr(256 + shifted)
            shifted += 1
    return mapping


def byte_string(text: str) -> str:
    """`text` as the byte-level BPE sees it: one alphabet character per UTF-8 byte."""
    alphabet = byte_alphabet()
    return "".join(alphabet[b] for b in text.encode("utf-8"))


@functools.cache
def ethiopic_characters() -> tuple[str, ...]:
    """The assigned characters of U+1200-137F (358 in Unicode 14): syllables, numerals,
    punctuation and the three combining marks."""
    return tuple(chr(c) for c in ETHIOPIC_BLOCK if unicodedata.category(chr(c)) != "Cn")


def is_ethiopic(char: str) -> bool:
    return ord(char) in ETHIOPIC_BLOCK


@dataclass(frozen=True)
class NewToken:
    """A token the Ge'ez vocabulary adds: its byte-level text and the merge that makes it."""

    text: str
    merge: tuple[str, str]


def word_initials(texts: Iterable[str], count: int) -> tuple[str, ...]:
    """The `count` Ethiopic characters that most often begin a word in `texts` (ties broken by
    code point, so the choice is reproducible)."""
    counts: Counter[str] = Counter()
    for text in texts:
        for word in text.split():
            if word and is_ethiopic(word[0]):
                counts[word[0]] += 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(char for char, _ in ranked[:count])


def geez_tokens(space_initials: Iterable[str] = ()) -> tuple[NewToken, ...]:
    """The tokens to add, in the order their merges must run: prefixes, characters, then the
    space variants of `space_initials`."""
    prefixes = sorted({byte_string(char)[:2] for char in ethiopic_characters()})
    tokens = [NewToken(prefix, (prefix[0], prefix[1])) for prefix in prefixes]
    for char in ethiopic_characters():
        piece = byte_string(char)
        tokens.append(NewToken(piece, (piece[:2], piece[2])))
    for char in space_initials:
        if not is_ethiopic(char):
            raise ValueError(f"space variants are for Ethiopic characters, not {char!r}")
        tokens.append(NewToken(SPACE + byte_string(char), (SPACE, byte_string(char))))
    return tuple(tokens)


# -- decoding another language ------------------------------------------------------------------
GEEZ_LANGUAGES = frozenset({"am"})  # Whisper's languages written in Ge'ez script


def ethiopic_token_ids(vocab: Mapping[str, int]) -> tuple[int, ...]:
    """Ids of the tokens that write Ethiopic (`vocab`: byte-level token -> id, as `get_vocab()`
    gives it): those holding a lead pair E1 88..8D, which only the main Ethiopic block uses.
    A Ge'ez vocabulary's 428 re-purposed tokens; none in the original Whisper vocabulary."""
    alphabet = byte_alphabet()
    leads = tuple(alphabet[0xE1] + alphabet[second] for second in range(0x88, 0x8E))
    return tuple(sorted(i for token, i in vocab.items() if any(p in token for p in leads)))


def foreign_script_suppression(ethiopic_ids: Sequence[int], language: str | None) -> list[int]:
    """`ethiopic_ids` when decoding `language` with them is wrong: not for Amharic, nor while
    the language is still unknown. Fine-tuning on Amharic alone raises these tokens on any
    audio: a forced-English decode of a Ge'ez model after a short Amharic run wrote Ethiopic
    loops (WER 121%), and 6.1% as before tuning with them suppressed."""
    if language is None or language in GEEZ_LANGUAGES:
        return []
    return list(ethiopic_ids)
