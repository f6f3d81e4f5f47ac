"""Which token ids a Ge'ez vocabulary gives up (NOTES.md, "A Ge'ez-aware vocabulary").

Only leaves (no merge takes them as an input) with regular ids, never the empty-string token
50256, never an id Whisper suppresses (the model's suppress lists and faster-whisper's non-speech
tokens), and only tokens no string of the reference corpus's choosing half uses. Among those,
the lowest emission prior first when priors are given (a token the model rarely emits), then
the latest merge first: rank alone would hit real words (` aquellos`, CJK), the corpus filter
removes those.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from utils.geez_vocab.tokenizer_edit import EMPTY_TOKEN_ID, leaf_ranks, load_tokenizer

ENCODE_BATCH = 20_000  # strings per tokenizers batch: bounded memory on a large corpus


def non_speech_ids(tokenizer: dict[str, Any]) -> set[int]:
    """faster-whisper's non-speech tokens for this tokenizer (its own rule, its own code)."""
    from faster_whisper.tokenizer import Tokenizer

    encoder = Tokenizer(load_tokenizer(tokenizer), True, task="transcribe", language="en")
    return set(encoder.non_speech_tokens)


def token_use(tokenizer: dict[str, Any], texts: Sequence[str]) -> Counter[int]:
    """How often each id occurs when `texts` are tokenized (no special tokens)."""
    encoder, counts = load_tokenizer(tokenizer), Counter()
    for first in range(0, len(texts), ENCODE_BATCH):
        batch = list(texts[first : first + ENCODE_BATCH])
        for encoding in encoder.encode_batch(batch, add_special_tokens=False):
            counts.update(encoding.ids)
    return counts


def choose_given_up(
    tokenizer: dict[str, Any],
    count: int,
    choosing_texts: Sequence[str],
    protected: Iterable[int] = (),
    priors: Mapping[int, float] | None = None,
) -> tuple[int, ...]:
    """`count` ids to re-purpose, in the order chosen. Raises ValueError when fewer qualify."""
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    barred = set(protected) | non_speech_ids(tokenizer) | {EMPTY_TOKEN_ID}
    used = token_use(tokenizer, choosing_texts)
    candidates = [
        (vocab[token], rank)
        for token, rank in leaf_ranks(tokenizer).items()
        if vocab[token] < EMPTY_TOKEN_ID and vocab[token] not in barred and not used[vocab[token]]
    ]
    if len(candidates) < count:
        raise ValueError(f"only {len(candidates)} tokens qualify to be given up; {count} needed")
    prior = priors or {}
    candidates.sort(key=lambda item: (prior.get(item[0], 0.0), -item[1], item[0]))
    return tuple(index for index, _ in candidates[:count])
