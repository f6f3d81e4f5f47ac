"""Whisper training samples: a Dataset of 30 s log-mel windows with their decoder labels, and
the collator that batches them.

Training samples vary (timestamps, previous-text prompts, translation, augmentation) with
random draws seeded by (config seed, epoch, index) from the sampler's `SampleKey`, never a
global RNG: a sample is the same in any worker process and after a resume.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from utils.audio import HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE, load_audio
from utils.dataset.manifest import TimedText, Utterance
from utils.training.config import TrainConfig
from utils.training.labels import (
    IGNORE_INDEX,
    LabelTooLongError,
    PackPlan,
    SpecialTokens,
    TokenizedExample,
    encode_example,
)
from utils.training.sampler import SampleKey

Augmenter = Callable[[np.ndarray, int, int], np.ndarray]  # (audio, sample_rate, seed) -> audio
SpecAugment = Callable[[np.ndarray, int, "int | None"], np.ndarray]  # (features, seed, frames)


@dataclass(frozen=True, eq=False)
class TrainingSample:
    """One model input: a 30 s log-mel window and its decoder sequence (T tokens)."""

    id: str  # utterance id ("a+b+c" for a packed window)
    input_features: np.ndarray  # (n_mels, 3000) float32 log-mel
    decoder_input_ids: tuple[int, ...]  # (T,)
    labels: tuple[int, ...]  # (T,), -100 where no loss is taken
    text: str  # the reference text (label language)
    language: str
    task: str
    speech_frames: int  # log-mel frames holding audio (the rest is padding), <= 3000
    epoch: int = -1  # from the SampleKey; -1 for a plain index
    batch: int = -1


@dataclass(frozen=True)
class SamplePlan:
    """The random choices for one sample, drawn before any audio is read."""

    index: int  # item index: an utterance, or a pack when packing
    members: tuple[int, ...]  # utterance indices: one, or the members of a pack
    text: str
    language: str
    task: str
    segments: tuple[TimedText, ...] | None  # None: no timestamps
    prompt: str
    augment_seed: int
    spec_seed: int


def english_translation(u: Utterance) -> str:
    """The utterance's English translation text, or ""."""
    t = u.translation
    return t.text if t is not None and t.language.lower() in ("en", "english") else ""


def key_parts(key: SampleKey | int) -> tuple[int, int]:
    """(epoch, index) of a key; a plain index counts as epoch 0."""
    return (key.epoch, key.index) if isinstance(key, SampleKey) else (0, int(key))


def pack_audio(
    parts: Sequence[np.ndarray], plan: PackPlan, durations: Sequence[float]
) -> np.ndarray:
    """Members' audio (16 kHz) placed at their offsets, each padded or cut to its manifest
    duration so the timestamps match; silence in between. Shape (round(plan.duration * sr),)."""
    out = np.zeros(round(plan.duration * SAMPLE_RATE), dtype=np.float32)
    for audio, offset, duration in zip(parts, plan.offsets, durations, strict=True):
        begin = round(offset * SAMPLE_RATE)
        count = min(round(duration * SAMPLE_RATE), len(audio), len(out) - begin)
        out[begin : begin + count] = audio[:count]
    return out


class WhisperTrainingSet(Dataset):
    """Samples of `utterances` (of the dataset directory `root`), or of `packs` of them.

    `train=True` draws timestamps, prompts and tasks by the config's shares and applies the
    injected augmenter / spec_augment; otherwise every sample is a plain transcription (or
    translation when `config.task` is "translate") of one utterance.
    """

    def __init__(
        self,
        utterances: Sequence[Utterance],
        root: str | os.PathLike,
        processor: Any,
        config: TrainConfig,
        *,
        train: bool = False,
        augmenter: Augmenter | None = None,
        spec_augment: SpecAugment | None = None,
        packs: Sequence[PackPlan] | None = None,
    ) -> None:
        self.utterances = list(utterances)
        self.root = Path(root)
        self.feature_extractor = processor.feature_extractor
        self.tokenizer = processor.tokenizer
        self.special = SpecialTokens.from_tokenizer(self.tokenizer)
        self.config = config
        self.train = train
        self.augmenter = augmenter
        self.spec_augment = spec_augment
        self.packs = list(packs) if packs is not None else None
        self._previous = _previous_in_group(self.utterances)

    def __len__(self) -> int:
        return len(self.packs) if self.packs is not None else len(self.utterances)

    def language(self, u: Utterance) -> str:
        return u.language or self.config.language

    def plan(self, key: SampleKey | int) -> SamplePlan:
        """The sample's choices (no audio read): deterministic in (seed, epoch, index)."""
        epoch, index = key_parts(key)
        rng = np.random.default_rng([self.config.seed % 2**32, epoch, index])
        draws = rng.random(4)  # timestamps, prompt, task, prompt pick: always all four
        augment_seed, spec_seed = (int(s) for s in rng.integers(0, 2**31, size=2))
        if self.packs is not None:
            timestamps = self.train and draws[0] < self.config.timestamp_share
            return self._pack_plan(index, timestamps, augment_seed, spec_seed)
        u = self.utterances[index]
        task = self.config.task
        translation = english_translation(u)
        if self.train and self.config.mixed_tasks and translation and draws[2] < 0.5:
            task = "translate" if task == "transcribe" else "transcribe"
        text = translation if task == "translate" else u.text
        segments, prompt = None, ""
        if self.train and draws[0] < self.config.timestamp_share:
            own = u.segments if task == "transcribe" and u.segments else ()
            segments = own or (TimedText(0.0, u.duration, text),)
        if self.train and draws[1] < self.config.prompt_share:
            prompt = self._prompt(index, task, draws[3])
        return SamplePlan(index, (index,), text, self.language(u), task, segments, prompt,
                          augment_seed, spec_seed)  # fmt: skip

    def _pack_plan(
        self, index: int, timestamps: bool, augment_seed: int, spec_seed: int
    ) -> SamplePlan:
        """Utterances side by side in one window: with a timestamped segment each, or (as
        evaluation decodes) as one text without timestamps, so both modes are trained."""
        assert self.packs is not None
        pack = self.packs[index]
        members = [self.utterances[i] for i in pack.members]
        segments = tuple(
            TimedText(offset, offset + u.duration, u.text)
            for u, offset in zip(members, pack.offsets, strict=True)
        )
        text = " ".join(u.text.strip() for u in members)
        language = self.language(members[0])
        timed = segments if timestamps else None
        return SamplePlan(index, pack.members, text, language, "transcribe", timed, "",
                          augment_seed, spec_seed)  # fmt: skip

    def _prompt(self, index: int, task: str, draw: float) -> str:
        """The previous utterance of the same speaker (or audio file) in manifest order; for
        the first of a group, another utterance picked by `draw`; "" when there is none."""
        other = self._previous[index]
        if other < 0 and len(self.utterances) > 1:
            other = int(draw * (len(self.utterances) - 1))
            other += other >= index  # any utterance but this one
        if other < 0:
            return ""
        u = self.utterances[other]
        return (english_translation(u) if task == "translate" else "") or u.text

    def label(self, plan: SamplePlan) -> tuple[SamplePlan, TokenizedExample]:
        """The plan's token sequence; when it is too long, the prompt, then the timestamps,
        then a translation are given up (the plan returned says what was used)."""
        fallbacks = [
            plan,
            replace(plan, prompt=""),
            replace(plan, prompt="", segments=None),
        ]
        if len(plan.members) == 1 and plan.task == "translate":
            source = self.utterances[plan.members[0]].text
            fallbacks.append(replace(fallbacks[-1], task="transcribe", text=source))
        for candidate in fallbacks:
            try:
                return candidate, encode_example(
                    self.tokenizer,
                    candidate.text,
                    language=candidate.language,
                    task=candidate.task,
                    segments=candidate.segments,
                    prompt=candidate.prompt,
                    special=self.special,
                )
            except LabelTooLongError as error:
                last = error
        raise last

    def audio(self, plan: SamplePlan) -> np.ndarray:
        """The plan's audio, 16 kHz mono float32, before augmentation: shape (n_samples,)."""
        parts = [self._utterance_audio(self.utterances[i]) for i in plan.members]
        if self.packs is None:
            return parts[0]
        durations = [self.utterances[i].duration for i in plan.members]
        return pack_audio(parts, self.packs[plan.index], durations)

    def _rescaled(self, plan: SamplePlan, factor: float) -> tuple[SamplePlan, TokenizedExample]:
        """The plan with its timestamps scaled by `factor` (augmentation changed the speed)."""
        segments = tuple(
            TimedText(t.start * factor, t.end * factor, t.text) for t in plan.segments or ()
        )
        return self.label(replace(plan, segments=segments))

    def _utterance_audio(self, u: Utterance) -> np.ndarray:
        audio = load_audio(self.root / u.audio)
        if u.start is not None or u.end is not None:
            begin = round((u.start or 0.0) * SAMPLE_RATE)
            end = None if u.end is None else round(u.end * SAMPLE_RATE)
            audio = audio[begin:end]
        return audio

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Log-mel of `audio` padded or cut to 30 s: shape (n_mels, 3000), float32."""
        features = self.feature_extractor(
            audio, sampling_rate=SAMPLE_RATE, return_tensors="np", padding="max_length",
            max_length=N_SAMPLES, truncation=True,
        ).input_features[0]  # fmt: skip
        return np.ascontiguousarray(features[:, :N_FRAMES], dtype=np.float32)

    def __getitem__(self, key: SampleKey | int) -> TrainingSample:
        plan, tokens = self.label(self.plan(key))
        audio = self.audio(plan)
        if self.train and self.augmenter is not None:
            before = len(audio)
            audio = self.augmenter(audio, SAMPLE_RATE, plan.augment_seed)
            if plan.segments is not None and before and abs(len(audio) / before - 1) > 0.005:
                plan, tokens = self._rescaled(plan, len(audio) / before)
        frames = min(N_FRAMES, math.ceil(len(audio) / HOP_LENGTH))
        features = self.features(audio)
        if self.train and self.spec_augment is not None:
            features = self.spec_augment(features, plan.spec_seed, frames)
            features = np.asarray(features, dtype=np.float32)
        ids = "+".join(self.utterances[i].id for i in plan.members)
        epoch, batch = (key.epoch, key.batch) if isinstance(key, SampleKey) else (-1, -1)
        return TrainingSample(ids, features, tokens.decoder_input_ids, tokens.labels, plan.text,
                              plan.language, plan.task, frames, epoch, batch)  # fmt: skip


def _previous_in_group(utterances: Sequence[Utterance]) -> list[int]:
    """For each utterance, the index of the one before it with the same speaker (or, without a
    speaker, the same audio file); -1 for the first of its group."""
    last: dict[str, int] = {}
    previous = []
    for index, u in enumerate(utterances):
        group = f"speaker:{u.speaker}" if u.speaker else f"audio:{u.audio}"
        previous.append(last.get(group, -1))
        last[group] = index
    return previous


@dataclass(frozen=True)
class WhisperCollator:
    """TrainingSamples (with their keys) -> one batch dict:
    input_features (B, n_mels, 3000) float32; decoder_input_ids (B, T) long padded with
    `pad_token_id` (eot); labels (B, T) long padded with -100; speech_frames (B,) long;
    texts, languages, tasks, ids (lists of B); epoch, batch (ints from the SampleKeys, -1 for
    plain indices)."""

    pad_token_id: int

    def __call__(self, samples: Sequence[TrainingSample]) -> dict[str, Any]:
        width = max(len(s.decoder_input_ids) for s in samples)
        inputs = torch.full((len(samples), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(samples), width), IGNORE_INDEX, dtype=torch.long)
        for row, s in enumerate(samples):
            inputs[row, : len(s.decoder_input_ids)] = torch.tensor(s.decoder_input_ids)
            labels[row, : len(s.labels)] = torch.tensor(s.labels)
        features = torch.from_numpy(np.stack([s.input_features for s in samples]))
        return {
            "input_features": features.float(),
            "decoder_input_ids": inputs,
            "labels": labels,
            "speech_frames": torch.tensor([s.speech_frames for s in samples], dtype=torch.long),
            "texts": [s.text for s in samples],
            "languages": [s.language for s in samples],
            "tasks": [s.task for s in samples],
            "ids": [s.id for s in samples],
            "epoch": samples[0].epoch,
            "batch": samples[0].batch,
        }
