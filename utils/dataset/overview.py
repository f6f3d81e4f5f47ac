"""The figures behind the dataset dashboard: per-utterance arrays for histograms, hours per
split and speaker, the character inventory with its Ge'ez coverage, and the worst samples.
Plain data (numpy arrays, dicts), so any plotting library can take it; one pass over the
manifest (the arrays hold a few numbers per utterance)."""

from __future__ import annotations

import heapq
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.dataset.manifest import MANIFEST_NAME, Utterance, iter_manifest

# The Ge'ez letters of the main Ethiopic block: the inventory a Ge'ez-script dataset can cover.
GEEZ_LETTERS = frozenset(
    chr(c) for c in range(0x1200, 0x135B) if unicodedata.category(chr(c)) == "Lo"
)


@dataclass(frozen=True)
class Sample:
    """One utterance as the worst-samples table shows it."""

    id: str
    audio: str  # absolute path
    text: str
    duration: float
    snr_db: float | None
    clipping_ratio: float | None
    chars_per_second: float | None


@dataclass(frozen=True)
class DatasetOverview:
    n: int
    durations: np.ndarray  # seconds, (n,)
    snr_db: np.ndarray  # (n,), NaN where unknown
    chars: np.ndarray  # characters per utterance, (n,)
    tokens: np.ndarray  # decoder tokens per utterance (n,); empty without a tokenizer
    hours_per_split: dict[str, float]
    hours_per_speaker: dict[str, float]
    characters: dict[str, int]  # character -> count, most frequent first
    geez_coverage: float  # share of GEEZ_LETTERS present
    worst: tuple[Sample, ...]  # lowest SNR first


def _badness(u: Utterance) -> float:
    snr = u.quality.get("snr_db")
    return float("inf") if snr is None else float(snr)


def overview(root: str | os.PathLike, tokenizer=None, worst: int = 20) -> DatasetOverview:
    """Figures of the dataset at `root`; `tokenizer` (anything with `encode(text)` giving ids or
    an Encoding) adds tokens per utterance."""
    root = Path(root)
    durations, snr, chars, tokens = [], [], [], []
    splits, speakers, characters = Counter(), Counter(), Counter()
    heap: list[tuple[float, int, Sample]] = []
    for index, u in enumerate(iter_manifest(root / MANIFEST_NAME)):
        durations.append(u.duration)
        snr.append(np.nan if u.quality.get("snr_db") is None else u.quality["snr_db"])
        chars.append(len(u.text))
        if tokenizer is not None:
            tokens.append(_count(tokenizer, u.text))
        splits[u.split or "unassigned"] += u.duration / 3600
        speakers[u.speaker or "unknown"] += u.duration / 3600
        characters.update(ch for ch in u.text if not ch.isspace())
        # a min-heap on -SNR: popping drops the highest SNR, so the `worst` lowest stay
        heapq.heappush(heap, (-_badness(u), index, _sample(u, root)))
        if len(heap) > worst:
            heapq.heappop(heap)
    return DatasetOverview(
        n=len(durations),
        durations=np.asarray(durations, dtype=float),
        snr_db=np.asarray(snr, dtype=float),
        chars=np.asarray(chars, dtype=int),
        tokens=np.asarray(tokens, dtype=int),
        hours_per_split=dict(splits),
        hours_per_speaker=dict(speakers.most_common()),
        characters=dict(characters.most_common()),
        geez_coverage=len(GEEZ_LETTERS & characters.keys()) / len(GEEZ_LETTERS),
        worst=tuple(s for _, _, s in sorted(heap, key=lambda t: (-t[0], t[1]))),
    )


def _sample(u: Utterance, root: Path) -> Sample:
    quality = u.quality
    return Sample(
        u.id, str(u.audio_path(root)), u.text, u.duration, quality.get("snr_db"),
        quality.get("clipping_ratio"), quality.get("chars_per_second"),
    )  # fmt: skip


def _count(tokenizer, text: str) -> int:
    encoded = tokenizer.encode(text)
    return len(getattr(encoded, "ids", encoded))
