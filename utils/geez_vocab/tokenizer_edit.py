"""Re-purposing token ids in a Whisper tokenizer.json: the vocabulary size and every special and
timestamp id stay as they are, so CTranslate2, faster-whisper and transformers run the result
unmodified.

Each given-up id takes one new token. A given-up token must be a *leaf*: no merge takes it as an
input, so removing the merge that made it changes no other token; text that used it is then
written with the two pieces it was merged from. The new merges go to the *front* of the merge
list: `Ġ`+`á` and the merges of continuation bytes would otherwise fire first, and the new
tokens would never be produced. They join bytes that only occur inside Ethiopic UTF-8, so
running them first changes no other text.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from utils.geez_vocab.alphabet import NewToken, byte_alphabet

EMPTY_TOKEN_ID = 50256  # CTranslate2 >= 4.8 reads a model as multilingual only if it is kept


class VocabularyEditError(ValueError):
    """A tokenizer that cannot be edited as asked; the message names the token and the rule."""


@dataclass(frozen=True)
class Swap:
    """Id `id` held `old` (made by the merge of `pieces` at `rank`) and now holds `new`."""

    id: int
    old: str
    new: str
    rank: int
    pieces: tuple[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "old": self.old, "new": self.new, "rank": self.rank,
                "pieces": list(self.pieces)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Swap:
        pieces = data["pieces"]
        return cls(data["id"], data["old"], data["new"], data["rank"], (pieces[0], pieces[1]))


def merge_pairs(tokenizer: dict[str, Any]) -> list[tuple[str, str]]:
    """The merges of a tokenizer.json, as pairs (the file holds "a b" strings or [a, b])."""
    merges = tokenizer["model"]["merges"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else (m[0], m[1]) for m in merges]


def merge_inputs(pairs: Iterable[tuple[str, str]]) -> set[str]:
    return {piece for pair in pairs for piece in pair}


def leaf_ranks(tokenizer: dict[str, Any]) -> dict[str, int]:
    """Token -> rank of the merge that makes it, for every merged token no merge takes as an
    input (the byte alphabet itself is never a leaf here: it has no merge)."""
    pairs = merge_pairs(tokenizer)
    inputs = merge_inputs(pairs)
    made = Counter(a + b for a, b in pairs)  # a token two merges make could not be restored
    return {a + b: rank for rank, (a, b) in enumerate(pairs)
            if a + b not in inputs and made[a + b] == 1}  # fmt: skip


def edit_tokenizer(
    tokenizer: dict[str, Any], new_tokens: Sequence[NewToken], given_up: Sequence[int]
) -> tuple[dict[str, Any], tuple[Swap, ...]]:
    """A copy of `tokenizer` (a parsed tokenizer.json) where `given_up[i]` holds
    `new_tokens[i]`; also the swaps made. Raises VocabularyEditError when a rule is broken."""
    if len(new_tokens) != len(given_up) or len(set(given_up)) != len(given_up):
        raise VocabularyEditError(
            f"{len(new_tokens)} new tokens need as many distinct ids; got {len(set(given_up))}"
        )
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    by_id = {index: token for token, index in vocab.items()}
    leaves, pairs = leaf_ranks(tokenizer), merge_pairs(tokenizer)
    swaps = []
    for index, token in zip(given_up, new_tokens, strict=True):
        rank = leaves.get(by_id.get(index, ""), -1)
        pieces = pairs[rank] if rank >= 0 else ("", "")
        swaps.append(Swap(index, by_id.get(index, ""), token.text, rank, pieces))
    _check(swaps, vocab, set(leaves))
    return _rewritten(tokenizer, swaps, [token.merge for token in new_tokens]), tuple(swaps)


def _rewritten(
    tokenizer: dict[str, Any], swaps: Sequence[Swap], front_merges: list[tuple[str, str]]
) -> dict[str, Any]:
    """`tokenizer` with each swap's id holding its new token, the given-up merges dropped and
    `front_merges` first."""
    edited = copy.deepcopy(tokenizer)
    _swap_vocab(edited["model"]["vocab"], swaps, forward=True)
    dropped = {swap.old for swap in swaps}
    kept = [pair for pair in merge_pairs(tokenizer) if pair[0] + pair[1] not in dropped]
    _set_merges(edited, front_merges + kept, tokenizer)
    return edited


def _swap_vocab(vocab: dict[str, int], swaps: Sequence[Swap], forward: bool) -> None:
    """Each swap's id moves from its old token to its new one (back when not `forward`);
    all removals first, as a new token may be another swap's old one."""
    for swap in swaps:
        del vocab[swap.old if forward else swap.new]
    for swap in swaps:
        vocab[swap.new if forward else swap.old] = swap.id


def _set_merges(
    tokenizer: dict[str, Any], pairs: Sequence[tuple[str, str]], like: dict[str, Any]
) -> None:
    as_strings = isinstance(like["model"]["merges"][0], str)
    tokenizer["model"]["merges"] = [f"{a} {b}" if as_strings else [a, b] for a, b in pairs]


def restore_tokenizer(edited: dict[str, Any], swaps: Sequence[Swap]) -> dict[str, Any]:
    """The tokenizer `edited` was made from: the swaps undone, the new merges (the first
    len(swaps)) removed and each given-up merge back at its rank."""
    restored = copy.deepcopy(edited)
    _swap_vocab(restored["model"]["vocab"], swaps, forward=False)
    pairs = merge_pairs(edited)[len(swaps) :]
    for swap in sorted(swaps, key=lambda s: s.rank):
        pairs.insert(swap.rank, swap.pieces)
    _set_merges(restored, pairs, edited)
    return restored


def _check(swaps: Sequence[Swap], vocab: dict[str, int], leaves: set[str]) -> None:
    alphabet = set(byte_alphabet().values())
    size = len(vocab)
    for swap in swaps:
        if swap.id == EMPTY_TOKEN_ID or not 0 <= swap.id < size:
            raise VocabularyEditError(f"id {swap.id} cannot be given up (regular ids < {size}, "
                                      f"never {EMPTY_TOKEN_ID})")  # fmt: skip
        if swap.old in alphabet or swap.old not in leaves:
            raise VocabularyEditError(f"token {swap.old!r} (id {swap.id}) is not a leaf: a merge "
                                      "uses it, or it is a byte of the alphabet")  # fmt: skip
        if swap.new in vocab:
            raise VocabularyEditError(f"token {swap.new!r} is already in the vocabulary")


def edit_ct2_vocabulary(vocabulary: list[str], swaps: Iterable[Swap]) -> list[str]:
    """CTranslate2's vocabulary.json (tokens by id) with the same swaps."""
    edited = list(vocabulary)
    for swap in swaps:
        if edited[swap.id] != swap.old:
            raise VocabularyEditError(
                f"vocabulary.json holds {edited[swap.id]!r} at id {swap.id}, not {swap.old!r}"
            )
        edited[swap.id] = swap.new
    return edited


def load_tokenizer(tokenizer: dict[str, Any]) -> Any:
    """A `tokenizers.Tokenizer` for a parsed tokenizer.json."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json.dumps(tokenizer))
