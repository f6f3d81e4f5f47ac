"""A resumable batch sampler that groups utterances of similar length (less padding per batch),
splits batches across DDP ranks and can phase hard samples in gradually (curriculum).

Every batch is a pure function of (seed, epoch, batch number, rank), so a run resumed from a
checkpoint sees exactly the batches it would have seen, and the yielded `SampleKey`s carry
(epoch, batch, index) to the Dataset, which seeds its per-sample randomness from them in
whichever worker process it runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Sampler

MEGABATCH_BATCHES = 50  # batches per length-sorted chunk
CURRICULUM_START = 0.3  # share of the easiest samples drawn from at the first batch
CURRICULUM_CANDIDATES = 8  # batches' worth of candidates a curriculum batch is grouped from


@dataclass(frozen=True, order=True)
class SampleKey:
    """One sample of one batch: `index` into the dataset, drawn at batch `batch` (of this
    rank, from 0) of `epoch`."""

    epoch: int
    batch: int
    index: int


class LengthGroupedBatchSampler(Sampler[list[SampleKey]]):
    """Batches of similar-length samples, in an order fixed by (seed, epoch).

    Each epoch: shuffle the indices, cut them into chunks of 50 batches, sort each chunk by
    length (longest first), cut into batches and shuffle the batch order, with the longest batch
    first (an out-of-memory shows at once). Rank r of W takes batches r, r + W, ...; the list
    wraps around so every rank gets `len(self)` batches (with `drop_last`, surplus batches are
    dropped instead when there are at least W).

    With `difficulty` (higher = harder) and `curriculum_batches` > 0, global batch
    g = epoch * len(self) + b below `curriculum_batches` draws only from the easiest share
    min(1, f0 + (1 - f0) * g / curriculum_batches) of the samples (f0 = 0.3), randomly but
    seeded by (seed, epoch, b, rank); later batches follow the regular order.

    Lightning calls `set_epoch` on `batch_sampler.sampler`, so `sampler` is this object.
    """

    def __init__(
        self,
        lengths: Sequence[float],
        batch_size: int,
        *,
        seed: int,
        shuffle: bool = True,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        difficulty: Sequence[float] | None = None,
        curriculum_batches: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        if not len(lengths):
            raise ValueError("no samples to batch")
        if difficulty is not None and len(difficulty) != len(lengths):
            raise ValueError("difficulty needs one value per sample")
        self.lengths = np.asarray(lengths, dtype=np.float64)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.curriculum_batches = curriculum_batches if difficulty is not None else 0
        # easiest first; ties by index so the order is stable
        self._easy_order = (
            np.lexsort((np.arange(len(lengths)), np.asarray(difficulty, dtype=np.float64)))
            if difficulty is not None
            else None
        )
        self.epoch = 0
        self._resume: tuple[int, int] = (0, 0)
        self._len = len(self._rank_batches(0))

    @property
    def sampler(self) -> LengthGroupedBatchSampler:
        """This sampler: where Lightning looks for `set_epoch`."""
        return self

    def __len__(self) -> int:
        """Batches per epoch on this rank (the full count, also when resuming mid-epoch)."""
        return self._len

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_position(self, epoch: int, next_batch: int) -> None:
        """Resume: iterating `epoch` starts at batch `next_batch`; other epochs start at 0."""
        if next_batch < 0:
            raise ValueError("next_batch must be >= 0")
        self._resume = (int(epoch), int(next_batch))
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        epoch = self.epoch
        start = self._resume[1] if self._resume[0] == epoch else 0
        regular = self._rank_batches(epoch)
        for b in range(start, len(regular)):
            indices = self.batch_indices(epoch, b, regular)
            yield [SampleKey(epoch, b, int(i)) for i in indices]

    def batch_indices(
        self, epoch: int, batch: int, regular: list[np.ndarray] | None = None
    ) -> np.ndarray:
        """Dataset indices of batch `batch` of `epoch` on this rank."""
        if self._easy_order is not None and epoch * self._len + batch < self.curriculum_batches:
            return self._curriculum_batch(epoch, batch)
        regular = self._rank_batches(epoch) if regular is None else regular
        return regular[batch]

    def curriculum_share(self, global_batch: int) -> float:
        """Share of the samples (easiest first) that global batch `global_batch` draws from."""
        if not self.curriculum_batches:
            return 1.0
        progress = global_batch / self.curriculum_batches
        return min(1.0, CURRICULUM_START + (1.0 - CURRICULUM_START) * progress)

    def _all_batches(self, epoch: int) -> list[np.ndarray]:
        """Every batch of `epoch` across ranks, length-grouped, in training order."""
        rng = np.random.default_rng([self.seed, epoch])
        n = len(self.lengths)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        chunk = MEGABATCH_BATCHES * self.batch_size
        batches: list[np.ndarray] = []
        for begin in range(0, n, chunk):
            part = order[begin : begin + chunk]
            part = part[np.argsort(-self.lengths[part], kind="stable")]
            batches.extend(
                part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)
            )
        if self.drop_last and len(batches[-1]) < self.batch_size and len(batches) > 1:
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
            longest = int(np.argmax([self.lengths[b].max() for b in batches]))
            batches[0], batches[longest] = batches[longest], batches[0]
        return batches

    def _rank_batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's share of `_all_batches(epoch)`: every W-th batch from `rank`."""
        batches = self._all_batches(epoch)
        world = self.world_size
        if self.drop_last and len(batches) >= world:
            batches = batches[: len(batches) // world * world]
        else:
            total = math.ceil(len(batches) / world) * world
            batches = [batches[i % len(batches)] for i in range(total)]
        return batches[self.rank :: world]

    def _curriculum_batch(self, epoch: int, batch: int) -> np.ndarray:
        """A batch from the easiest share: random candidates from the pool, sorted by length,
        and a random run of `batch_size` neighbours among them (similar lengths)."""
        assert self._easy_order is not None
        rng = np.random.default_rng([self.seed, epoch, batch, self.rank, 1])
        n = len(self.lengths)
        share = self.curriculum_share(epoch * self._len + batch)
        pool = self._easy_order[: max(min(n, self.batch_size), math.ceil(share * n))]
        size = min(len(pool), CURRICULUM_CANDIDATES * self.batch_size)
        candidates = rng.choice(pool, size=size, replace=False)
        candidates = candidates[np.argsort(-self.lengths[candidates], kind="stable")]
        count = min(self.batch_size, size)
        first = int(rng.integers(0, size - count + 1))
        return candidates[first : first + count]
