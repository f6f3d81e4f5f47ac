"""Held-out speech for checking an export: a dataset's split, or real English speech.

Exports are compared on audio no model was tuned on: the dataset's test split (its sentences
and speakers unseen in training) or, for English, Debian's asterisk prompts (real recordings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.audio import SAMPLE_RATE


@dataclass(frozen=True)
class HeldoutSet:
    description: str
    language: str
    audios: tuple[np.ndarray, ...]  # 16 kHz mono float32 clips, each <= 30 s
    references: tuple[str, ...]

    @property
    def n(self) -> int:
        return len(self.audios)

    @property
    def seconds(self) -> float:
        return sum(a.size for a in self.audios) / SAMPLE_RATE


def dataset_heldout(
    dataset_dir: str | os.PathLike,
    split: str = "test",
    language: str | None = None,
    limit: int | None = None,
) -> HeldoutSet:
    """`split` of a studio dataset (ValueError naming the splits there are when it is empty);
    the language defaults to the dataset's own (its manifest's language column, else "am")."""
    from utils.training.heldout import split_utterances, utterance_audio

    root = Path(dataset_dir)
    utterances = split_utterances(root, split)[:limit]
    language = language or next((u.language for u in utterances if u.language), None) or "am"
    return HeldoutSet(
        description=f"{root.name} / {split} ({len(utterances)} utterances)",
        language=language,
        audios=tuple(utterance_audio(root, u) for u in utterances),
        references=tuple(u.text for u in utterances),
    )


def english_heldout(count: int = 16) -> HeldoutSet:
    """`count` real English recordings (asterisk prompts); PromptsMissingError without them."""
    from utils.audio import load_audio
    from utils.training.forgetting import choose_prompts

    prompts = choose_prompts(count)
    return HeldoutSet(
        description=f"English speech, asterisk prompts ({len(prompts)} recordings)",
        language="en",
        audios=tuple(load_audio(p.path) for p in prompts),
        references=tuple(p.text for p in prompts),
    )


def heldout_for(
    dataset_dir: str | os.PathLike | None,
    language: str | None,
    split: str = "test",
    limit: int | None = None,
) -> HeldoutSet:
    """The dataset's split when one is given, else real speech for English; other languages
    need a dataset (ValueError saying so)."""
    if dataset_dir:
        return dataset_heldout(dataset_dir, split, language, limit)
    if language in (None, "en"):
        return english_heldout(limit or 16)
    raise ValueError(
        f"no held-out speech for language {language!r}: give an evaluation dataset "
        "(--eval-dataset) whose test split holds that language"
    )
