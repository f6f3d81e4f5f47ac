"""SpecAugment on Whisper log-mel features, seeded per sample.

`SpecAugment(config)(features, seed, speech_frames)` masks bands of mel bins (frequency masks) and
runs of frames (time masks) of one (n_mels, n_frames) log-mel array: 80 or 128 mel bins x 3000
frames of 10 ms for Whisper. The speech may fill only the first `speech_frames` frames (the rest
is padding); time masks then fall inside the speech, and each is at most `time_mask_max_fraction`
of it, so short clips are not wiped out. Masked cells take the mean of the (speech part of the)
log-mel, or 0. Randomness comes from a generator seeded with `seed` alone: no global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Fill = Literal["mean", "zero"]


@dataclass(frozen=True)
class SpecAugmentConfig:
    """How many masks of which widths; widths are drawn uniformly from 0 to the maximum."""

    p: float = 0.8  # probability that a sample is masked at all
    freq_masks: int = 2
    freq_mask_width: int = 15  # mel bins, at most
    time_masks: int = 2
    time_mask_width: int = 50  # frames (10 ms each), at most
    time_mask_max_fraction: float = 0.05  # each time mask <= this share of the speech frames
    fill: Fill = "mean"

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {self.p!r}")
        for name in ("freq_masks", "freq_mask_width", "time_masks", "time_mask_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if not 0.0 <= self.time_mask_max_fraction <= 1.0:
            raise ValueError(
                f"time_mask_max_fraction must be in [0, 1], got {self.time_mask_max_fraction!r}"
            )
        if self.fill not in ("mean", "zero"):
            raise ValueError(f"fill must be 'mean' or 'zero', got {self.fill!r}")


@dataclass(frozen=True)
class Masks:
    """Masked spans as (start, width) pairs: mel bins for `freq`, frames for `time`."""

    freq: tuple[tuple[int, int], ...] = ()
    time: tuple[tuple[int, int], ...] = ()


class SpecAugment:
    """Applies a `SpecAugmentConfig` to one log-mel array at a time; picklable."""

    def __init__(self, config: SpecAugmentConfig | None = None) -> None:
        self.config = config or SpecAugmentConfig()

    def __reduce__(self) -> tuple[type, tuple[SpecAugmentConfig]]:
        return (SpecAugment, (self.config,))

    def draw(self, n_mels: int, n_frames: int, seed: int, speech_frames: int | None) -> Masks:
        """The masks for a (n_mels, n_frames) array and `seed`; time masks within the first
        `speech_frames` frames (all frames when None)."""
        c = self.config
        rng = np.random.default_rng(seed % 2**64)
        if rng.random() >= c.p:
            return Masks()
        speech = n_frames if speech_frames is None else min(max(int(speech_frames), 0), n_frames)
        time_width = min(c.time_mask_width, math.floor(c.time_mask_max_fraction * speech))
        return Masks(
            freq=_spans(rng, c.freq_masks, min(c.freq_mask_width, n_mels), n_mels),
            time=_spans(rng, c.time_masks, time_width, speech),
        )

    def __call__(
        self, features: np.ndarray, seed: int, speech_frames: int | None = None
    ) -> np.ndarray:
        """Masked copy of `features` (n_mels, n_frames), same shape and dtype; the same
        (features, seed, speech_frames) always gives the same result."""
        features = np.asarray(features)
        if features.ndim != 2:
            raise ValueError(f"features must be (n_mels, n_frames), got shape {features.shape}")
        out = features.copy()
        masks = self.draw(*features.shape, seed, speech_frames)
        if not masks.freq and not masks.time:
            return out
        fill = self._fill_value(features, speech_frames)
        for start, width in masks.freq:
            out[start : start + width, :] = fill
        for start, width in masks.time:
            out[:, start : start + width] = fill
        return out

    def _fill_value(self, features: np.ndarray, speech_frames: int | None) -> float:
        if self.config.fill == "zero":
            return 0.0
        speech = features[:, :speech_frames] if speech_frames else features
        return float(np.mean(speech)) if speech.size else 0.0


def _spans(
    rng: np.random.Generator, count: int, max_width: int, length: int
) -> tuple[tuple[int, int], ...]:
    """`count` (start, width) spans within [0, length), widths uniform in 0..max_width."""
    spans = []
    for _ in range(count):
        width = int(rng.integers(0, max(max_width, 0) + 1))
        start = int(rng.integers(0, max(length - width, 0) + 1))
        if width > 0 and length > 0:
            spans.append((start, width))
    return tuple(spans)
