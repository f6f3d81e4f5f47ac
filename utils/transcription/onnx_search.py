"""Greedy, sampling and beam search over a cached decoder, by transformers' `generate` rules.

The ONNX engine runs its own search loop (onnxruntime has no `generate`), yet must pick the same
tokens as `TransformersEngine` for the same logits: the logits processors are transformers' own
classes, applied in the order its Whisper `generate` builds them, to raw logits when greedy or
sampling and to log-probabilities in beam search; beam hypotheses end and are ranked as in
transformers' beam search with early stopping (score = sum of log-probs / length ** penalty,
the length counting the end token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from transformers.generation.logits_process import LogitsProcessorList, TopKLogitsWarper

SAMPLING_TOP_K = 50  # transformers' generate keeps the 50 likeliest tokens when sampling


class DecoderState(Protocol):
    """A decoder with its KV cache for a batch of rows."""

    def step(self, ids: np.ndarray) -> Tensor:
        """Feed ids (rows, n) int64; the cache grows by n. -> float32 logits (rows, vocab) at
        the last position."""
        ...

    def select(self, rows: Sequence[int]) -> None:
        """Keep (and reorder, repeat) the cache rows listed, in that order."""
        ...


@dataclass(frozen=True)
class Search:
    """One window's search. The prefix (prompt + sot sequence) is already in the cache."""

    prefix: tuple[int, ...]
    eot: int
    limit: int  # most new tokens
    temperature: float = 0.0
    count: int = 1  # rows decoded side by side (best_of when sampling)
    beam_size: int = 1
    length_penalty: float = 1.0


@dataclass(frozen=True)
class Hypothesis:
    """New ids (ending with <|endoftext|> when the decode ended) and the sum of their natural-log
    probabilities under the processed (temperature-free) scores."""

    tokens: tuple[int, ...]
    logprob: float


def sample(
    state: DecoderState, logits: Tensor, processors: LogitsProcessorList, search: Search
) -> list[Hypothesis]:
    """Greedy (temperature 0) or sampled decodes of `search.count` rows. logits: the first
    step's (count, vocab); a row stops at <|endoftext|> or after `search.limit` tokens."""
    warpers = LogitsProcessorList([TopKLogitsWarper(SAMPLING_TOP_K)])
    sequences = [list(search.prefix) for _ in range(search.count)]
    sums, active = [0.0] * search.count, list(range(search.count))
    for step in range(search.limit):
        ids = torch.tensor([sequences[i] for i in active])
        scores = processors(ids, logits)
        logprobs = scores.log_softmax(-1)
        if search.temperature > 0:
            weights = warpers(ids, scores / search.temperature).softmax(-1)
            chosen = torch.multinomial(weights, num_samples=1)[:, 0].tolist()
        else:
            chosen = scores.argmax(-1).tolist()
        for row, (i, token) in enumerate(zip(active, chosen, strict=True)):
            sequences[i].append(token)
            sums[i] += float(logprobs[row, token])
        keep = [row for row, i in enumerate(active) if sequences[i][-1] != search.eot]
        if not keep or step + 1 == search.limit:
            break
        if len(keep) < len(active):  # finished rows leave the batch
            state.select(keep)
            active = [active[row] for row in keep]
        logits = state.step(np.array([[sequences[i][-1]] for i in active], dtype=np.int64))
    new = [tuple(sequence[len(search.prefix) :]) for sequence in sequences]
    return [Hypothesis(tokens, total) for tokens, total in zip(new, sums, strict=True)]


@dataclass(frozen=True)
class _Beam:
    tokens: tuple[int, ...]  # prefix and new ids
    score: float  # sum of processed log-probs (what beams are ranked by)
    logprob: float  # sum of renormalised processed log-probs (what the decode reports)


def beam_search(
    state: DecoderState, logits: Tensor, processors: LogitsProcessorList, search: Search
) -> Hypothesis:
    """Beam search with `search.beam_size` beams from one row's first-step logits (1, vocab):
    each step keeps the 2 x beams best continuations; those ending (<|endoftext|> or the token
    limit) among the top `beam_size` become finished hypotheses, the others run on; it stops
    when `beam_size` hypotheses have finished. Returns the best by length-normalised score."""
    beams, finished = [_Beam(search.prefix, 0.0, 0.0)], []
    width, vocab = search.beam_size, logits.shape[-1]
    for step in range(search.limit):
        ids = torch.tensor([beam.tokens for beam in beams])
        scores = processors(ids, logits.log_softmax(-1))
        logprobs = scores.log_softmax(-1)
        totals = scores + torch.tensor([beam.score for beam in beams])[:, None]
        values, indices = totals.flatten().topk(min(2 * width, totals.numel()))
        running, rows = [], []
        for rank, (value, index) in enumerate(zip(values.tolist(), indices.tolist(), strict=True)):
            row, token = divmod(index, vocab)
            beam = beams[row]
            grown = _Beam((*beam.tokens, token), value, beam.logprob + float(logprobs[row, token]))
            if token == search.eot or step + 1 == search.limit:
                if rank < width:  # only the top `width` may finish (transformers' rule)
                    finished.append((value / (step + 1) ** search.length_penalty, grown))
            elif len(running) < width:
                running.append(grown)
                rows.append(row)
        finished = sorted(finished, key=lambda item: -item[0])[:width]
        if len(finished) == width or not running or step + 1 == search.limit:
            break
        beams = running
        state.select(rows)
        logits = state.step(np.array([[beam.tokens[-1]] for beam in beams], dtype=np.int64))
    best = finished[0][1] if finished else max(beams, key=lambda beam: beam.score)
    return Hypothesis(best.tokens[len(search.prefix) :], best.logprob)
