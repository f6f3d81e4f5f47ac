"""The LightningDataModule of a fine-tuning run: reads one dataset's manifest, splits (holding
out validation when the manifest has none), drops what cannot train (with notes), packs and
batches it with the resumable length-grouped sampler.

The Dataset and collator live in `utils.training.samples` and are re-exported here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from utils.audio import CHUNK_LENGTH, MAX_DECODER_POSITIONS
from utils.dataset.manifest import MANIFEST_NAME, Utterance, iter_manifest
from utils.training.config import TrainConfig
from utils.training.labels import (
    PackPlan,
    SpecialTokens,
    count_text_tokens,
    label_length,
    plan_packs,
)
from utils.training.sampler import LengthGroupedBatchSampler
from utils.training.samples import (
    Augmenter,
    SamplePlan,
    SpecAugment,
    TrainingSample,
    WhisperCollator,
    WhisperTrainingSet,
    english_translation,
)

__all__ = [
    "SamplePlan",
    "TrainingSample",
    "WhisperCollator",
    "WhisperDataModule",
    "WhisperTrainingSet",
    "difficulty_scores",
    "holdout",
    "read_utterances",
]

HOLDOUT_SHARE = 0.1  # of train, held out for validation when the manifest has no validation


def read_utterances(dataset_dir: str | os.PathLike) -> list[Utterance]:
    """All utterances of the dataset's manifest, in manifest order. ValueError names the
    dataset when there is no manifest; ManifestError (a ValueError) names a bad line."""
    path = Path(dataset_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(f"dataset {dataset_dir}: no {MANIFEST_NAME} (not a dataset directory?)")
    return list(iter_manifest(path))


def holdout(utterances: Sequence[Utterance], share: float = HOLDOUT_SHARE) -> tuple[list, list]:
    """(kept, held out): the round(share * n) utterances (at least 1 when n >= 2) whose ids have
    the smallest SHA-1, so the choice is the same on every run and machine; order is kept."""
    count = min(max(1, round(share * len(utterances))), len(utterances) - 1)
    ranked = sorted(utterances, key=lambda u: hashlib.sha1(u.id.encode()).hexdigest())
    chosen = {u.id for u in ranked[:count]}
    return [u for u in utterances if u.id not in chosen], [u for u in utterances if u.id in chosen]


def difficulty_scores(utterances: Sequence[Utterance], token_counts: Sequence[int]) -> np.ndarray:
    """Difficulty in [0, 1] per utterance (higher = harder): the mean of the percentile ranks
    of the speaking rate (label tokens per second) and of the noise (-snr_db from the quality
    figures, when measured; unmeasured utterances get the middle rank)."""
    rate = np.array(
        [c / max(u.duration, 0.1) for u, c in zip(utterances, token_counts, strict=True)]
    )
    snr = [u.quality.get("snr_db") for u in utterances]
    noise = np.array([-s if isinstance(s, (int, float)) else np.nan for s in snr], dtype=float)
    return (_percentile_ranks(rate) + _percentile_ranks(noise)) / 2


def _percentile_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties share the mean rank); NaN -> 0.5."""
    known = ~np.isnan(values)
    out = np.full(len(values), 0.5)
    if known.sum() > 1:
        ordered = np.sort(values[known])
        low = np.searchsorted(ordered, values[known], side="left")
        high = np.searchsorted(ordered, values[known], side="right") - 1
        out[known] = (low + high) / 2 / (known.sum() - 1)
    return out


def _resume(sampler: LengthGroupedBatchSampler, epoch: int, next_batch: int) -> None:
    """Position `sampler` at the next batch; past the last batch of an epoch that is the
    start of the next epoch (where Lightning resumes such a checkpoint: the loader's iterator
    may be created, and with workers start drawing, before Lightning calls `set_epoch`)."""
    if next_batch >= len(sampler):
        epoch, next_batch = epoch + 1, 0
    sampler.set_position(epoch, next_batch)


class WhisperDataModule(L.LightningDataModule):
    """Train / validation / test data of one dataset directory for one TrainConfig.

    Resume: the LightningModule calls `mark_consumed(batch["epoch"], batch["batch"])` after each
    training batch (in `training_step`: checkpoint callbacks run before the module's
    `on_train_batch_end`); `state_dict()` (saved in checkpoints by Lightning) holds the next
    batch and `load_state_dict` makes the sampler start there (`next_batch` equal to the batches
    per epoch means the start of the next epoch). With DDP the Trainer needs
    `use_distributed_sampler=False` (the batch sampler splits the data across ranks itself).
    """

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        config: TrainConfig,
        processor: Any,
        augmenter: Augmenter | None = None,
        spec_augment: SpecAugment | None = None,
    ) -> None:
        super().__init__()
        self.dataset_dir = Path(dataset_dir)
        self.config = config
        self.processor = processor
        self.augmenter = augmenter if config.augment else None
        self.spec_augment = spec_augment if config.spec_augment else None
        self.special = SpecialTokens.from_tokenizer(processor.tokenizer)
        self.collator = WhisperCollator(self.special.eot)
        self.notes: list[str] = []
        self.train_utterances: list[Utterance] = []
        self.val_utterances: list[Utterance] = []
        self.test_utterances: list[Utterance] = []
        self.packs: list[PackPlan] | None = None
        self.train_set: WhisperTrainingSet | None = None
        self.val_set: WhisperTrainingSet | None = None
        self.test_set: WhisperTrainingSet | None = None
        self.lengths: list[float] = []  # sampler lengths per train item: label tokens
        self.difficulty: list[float] | None = None
        self._position = (0, 0)
        self._sampler: LengthGroupedBatchSampler | None = None

    # ---- setup

    def setup(self, stage: str | None = None) -> None:
        """Read the manifest (once), split, filter, pack and build the datasets."""
        if self.train_set is not None:
            return
        utterances = read_utterances(self.dataset_dir)
        train = [u for u in utterances if u.split in ("", "train")]
        val = [u for u in utterances if u.split == "validation"]
        test = [u for u in utterances if u.split == "test"]
        train, counts = self._usable(train, "train")
        val, _ = self._usable(val, "validation")
        test, _ = self._usable(test, "test")
        if not any(u.split == "validation" for u in utterances) and len(train) > 1:
            kept, val = holdout(train)
            held = {u.id for u in val}
            counts = [c for u, c in zip(train, counts, strict=True) if u.id not in held]
            train = kept
            self.notes.append(f"no validation split: held out {len(val)} training utterances")
        if not train:
            reasons = "; ".join(self.notes) or "the manifest has no train utterances"
            raise ValueError(f"dataset {self.dataset_dir}: no training utterances ({reasons})")
        self.train_utterances, self.val_utterances, self.test_utterances = train, val, test
        self._build_train(train, counts)
        self.val_set = self._dataset(val)
        self.test_set = self._dataset(test)

    def _usable(self, utterances: list[Utterance], split: str) -> tuple[list[Utterance], list]:
        """(kept, label text token counts): drops what cannot train, with a note per reason."""
        reasons: dict[str, int] = {}
        kept, counts = [], []
        translate = self.config.task == "translate"
        texts = [english_translation(u) if translate else u.text for u in utterances]
        for u, text, count in zip(
            utterances, texts, count_text_tokens(self.tokenizer, texts), strict=True
        ):
            reason = self._problem(u, text, count)
            if reason:
                reasons[reason] = reasons.get(reason, 0) + 1
            else:
                kept.append(u)
                counts.append(count)
        self.notes.extend(
            f"{split}: dropped {n} of {len(utterances)} utterances: {reason}"
            for reason, n in reasons.items()
        )
        return kept, counts

    def _problem(self, u: Utterance, text: str, count: int) -> str:
        if u.duration > CHUNK_LENGTH:
            return f"audio longer than {CHUNK_LENGTH} s"
        try:
            self.special.language(u.language or self.config.language)
        except ValueError:
            return "language not in the tokenizer"
        if self.config.task == "translate" and not text:
            return "no English translation to translate into"
        if label_length(count) > MAX_DECODER_POSITIONS:
            return f"label longer than {MAX_DECODER_POSITIONS} tokens"
        return ""

    def _build_train(self, train: list[Utterance], counts: list[int]) -> None:
        durations = [u.duration for u in train]
        if self.config.packing:
            self.packs = self._plan_packs(train, counts)
            self.lengths = [float(p.tokens) for p in self.packs]
            durations = [p.duration for p in self.packs]
        else:
            self.lengths = [float(label_length(c)) for c in counts]
        if self.config.curriculum == "duration":
            self.difficulty = durations
        elif self.config.curriculum == "difficulty":
            scores = difficulty_scores(train, counts)
            self.difficulty = (
                [float(scores[list(p.members)].mean()) for p in self.packs]
                if self.packs is not None
                else scores.tolist()
            )
        self.train_set = self._dataset(train, train=True)

    def _plan_packs(self, train: list[Utterance], counts: list[int]) -> list[PackPlan]:
        """Packs of one language each, members in an order shuffled once by the seed."""
        order = np.random.default_rng([self.config.seed % 2**32, 7]).permutation(len(train))
        packs = []
        for language in sorted({u.language or self.config.language for u in train}):
            members = [i for i in order if (train[i].language or self.config.language) == language]
            packs.extend(plan_packs([u.duration for u in train], counts, members))
        self.notes.append(f"packing: {len(train)} training utterances in {len(packs)} windows")
        return packs

    def _dataset(self, utterances: list[Utterance], train: bool = False) -> WhisperTrainingSet:
        return WhisperTrainingSet(
            utterances, self.dataset_dir, self.processor, self.config, train=train,
            augmenter=self.augmenter, spec_augment=self.spec_augment,
            packs=self.packs if train else None,
        )  # fmt: skip

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    # ---- loaders

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def _loader_options(self) -> dict[str, Any]:
        workers = self.config.num_workers
        return {
            "num_workers": workers,
            "persistent_workers": workers > 0,
            "pin_memory": torch.cuda.is_available(),
            "collate_fn": self.collator,
        }

    def curriculum_batches(self) -> int:
        """Batches (per rank) over which the curriculum phases hard samples in."""
        if self.config.curriculum == "none":
            return 0
        return self.config.curriculum_steps * self.config.accumulate_grad_batches

    def train_sampler(self) -> LengthGroupedBatchSampler:
        """A new batch sampler of the training items for this rank, at the resume position."""
        self.setup()
        rank, world = self._rank_world()
        sampler = LengthGroupedBatchSampler(
            self.lengths, self.config.batch_size, seed=self.config.seed, rank=rank,
            world_size=world, difficulty=self.difficulty,
            curriculum_batches=self.curriculum_batches(),
        )  # fmt: skip
        _resume(sampler, *self._position)
        return sampler

    def train_dataloader(self) -> DataLoader:
        self._sampler = self.train_sampler()
        return DataLoader(self.train_set, batch_sampler=self._sampler, **self._loader_options())

    def _eval_loader(self, dataset: WhisperTrainingSet | None) -> DataLoader | list:
        self.setup()
        if dataset is None or not len(dataset):
            return []  # Lightning skips the loop
        return DataLoader(dataset, batch_size=self.config.batch_size, shuffle=False,
                          **self._loader_options())  # fmt: skip

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader | list:
        return self._eval_loader(self.test_set)

    # ---- resume

    def mark_consumed(self, epoch: int, batch: int) -> None:
        """Training batch `batch` of `epoch` is done: the next one is `batch + 1`. Negative
        numbers (a batch not drawn by the sampler) are ignored."""
        if epoch >= 0 and batch >= 0:
            self._position = (int(epoch), int(batch) + 1)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._position[0], "next_batch": self._position[1]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        try:
            self._position = (int(state_dict["epoch"]), int(state_dict["next_batch"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a WhisperDataModule state: {state_dict!r}") from exc
        if self._sampler is not None:
            _resume(self._sampler, *self._position)

    def summary(self) -> str:
        """Splits, sizes and notes, one fact per line."""
        self.setup()
        lines = [f"dataset: {self.dataset_dir.name}"]
        for name, utts in (("train", self.train_utterances), ("validation", self.val_utterances),
                           ("test", self.test_utterances)):  # fmt: skip
            hours = sum(u.duration for u in utts) / 3600
            lines.append(f"{name}: {len(utts)} utterances, {hours:.2f} h")
        batches = len(self.train_sampler())
        lines.append(f"batches per epoch: {batches} of up to {self.config.batch_size}")
        if self.difficulty is not None and self.curriculum_batches():
            lines.append(f"curriculum by {self.config.curriculum} over "
                         f"{self.curriculum_batches()} batches")  # fmt: skip
        return "\n".join([*lines, *self.notes])
