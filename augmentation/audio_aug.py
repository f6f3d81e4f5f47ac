"""On-the-fly waveform augmentation for Whisper fine-tuning, seeded per sample.

`AudioAugmenter(config)(audio, sample_rate, seed)` takes mono float32 samples in [-1, 1], shape
(n_samples,), and returns an augmented copy at the same sample rate. The transforms run in a
fixed order: speed perturbation (resampling, as Kaldi's speed perturb: duration and pitch change
together), pitch shift, room reverb (impulse responses from a folder, or simulated shoebox rooms),
background noise from a folder, coloured noise, Gaussian noise, gain and a time mask. Each fires
with its own probability times `strength`.

The same (audio, seed) gives the same output in any process: audiomentations draws from the
global `random` and `np.random` generators, so each call seeds them from `seed` and restores
their previous states afterwards (callers see no change). Other threads drawing from those
generators while a call runs would see the seeded state; calls of this module are serialised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from audiomentations import AddColorNoise, AddGaussianSNR, Gain, PitchShift, TimeMask
from audiomentations.core.transforms_interface import BaseWaveformTransform

from augmentation.waveform_transforms import (
    AUDIO_EXTENSIONS,
    Background,
    Reverb,
    Speed,
    audio_files,
    seeded_global_rng,
    simulated_ir,
    speed_perturb,
)

__all__ = [
    "LABELS", "MIN_DURATION_S", "AudioAugmentConfig", "AudioAugmenter", "AugmentPreview",
    "describe", "preview", "simulated_ir", "speed_perturb",
]  # fmt: skip

MIN_DURATION_S = 0.05  # shorter inputs are returned unchanged

LABELS = {"speed": "speed perturbation", "pitch": "pitch shift", "reverb": "room reverb",
          "background_noise": "background noise", "color_noise": "coloured noise",
          "gaussian_noise": "Gaussian noise", "gain": "gain", "time_mask": "time mask"}  # fmt: skip


@dataclass(frozen=True)
class AudioAugmentConfig:
    """Which waveform transforms may fire, how often (probability per sample, times `strength`)
    and how hard. Ranges are (low, high) tuples; SNRs and gains in dB, durations in seconds."""

    strength: float = 0.5  # 0..1, scales every probability; 0 = augmenter is the identity
    speed_p: float = 0.5
    speed_range: tuple[float, float] = (0.9, 1.1)  # factor > 1 = faster, shorter, higher
    pitch_p: float = 0.2
    pitch_semitones: tuple[float, float] = (-2.0, 2.0)
    reverb_p: float = 0.3
    ir_dir: str = ""  # folder of impulse responses; empty = simulated shoebox rooms
    room_rt60_s: tuple[float, float] = (0.2, 0.7)  # reverberation time of simulated rooms
    ir_bank_size: int = 16  # simulated rooms to draw from (each simulated once per process)
    ir_seed: int = 0  # seeds the simulated rooms
    background_p: float = 0.5
    background_dir: str = ""  # folder of noise/music recordings; empty = off
    background_snr_db: tuple[float, float] = (5.0, 25.0)
    color_noise_p: float = 0.2
    color_snr_db: tuple[float, float] = (10.0, 35.0)
    gaussian_noise_p: float = 0.2
    gaussian_snr_db: tuple[float, float] = (15.0, 40.0)
    gain_p: float = 0.3
    gain_db: tuple[float, float] = (-6.0, 6.0)
    time_mask_p: float = 0.1
    time_mask_fraction: tuple[float, float] = (0.01, 0.05)  # share of the clip silenced

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # from JSON or a UI: store as a tuple
                object.__setattr__(self, f.name, tuple(value))
        for f in fields(self):
            _check_field(f.name, getattr(self, f.name))


_RANGE_LIMITS: dict[str, tuple[float, float]] = {
    "speed_range": (0.5, 2.0), "pitch_semitones": (-12.0, 12.0), "room_rt60_s": (0.05, 2.0),
    "background_snr_db": (-20.0, 100.0), "color_snr_db": (-20.0, 100.0),
    "gaussian_snr_db": (-20.0, 100.0), "gain_db": (-40.0, 40.0), "time_mask_fraction": (0.0, 0.5),
}  # fmt: skip
_INT_LIMITS = {"ir_bank_size": (1, 256), "ir_seed": (0, 2**63 - 1)}


def _check_field(name: str, value: Any) -> None:
    """Raise ValueError naming `name` when `value` is unusable."""
    if name == "strength" or name.endswith("_p"):
        if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    elif name in _RANGE_LIMITS:
        lo, hi = _RANGE_LIMITS[name]
        ok = (
            isinstance(value, tuple)
            and len(value) == 2
            and all(isinstance(v, int | float) and math.isfinite(v) for v in value)
        )
        if not ok:
            raise ValueError(f"{name} must be a (low, high) pair of numbers, got {value!r}")
        if value[0] > value[1]:
            raise ValueError(f"{name} must be ordered (low <= high), got {value!r}")
        if value[0] < lo or value[1] > hi:
            raise ValueError(f"{name} must lie within [{lo}, {hi}], got {value!r}")
    elif name in _INT_LIMITS:
        lo, hi = _INT_LIMITS[name]
        if not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    elif name in ("ir_dir", "background_dir") and value:
        if not Path(value).is_dir():
            raise ValueError(f"{name} {value!r} is not an existing folder")
        if not audio_files(value):
            raise ValueError(
                f"{name} {value!r} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})"
            )


def _transforms(c: AudioAugmentConfig) -> list[tuple[str, BaseWaveformTransform]]:
    s = c.strength
    return [
        ("speed", Speed(c, c.speed_p * s)),
        ("pitch", PitchShift(*c.pitch_semitones, p=c.pitch_p * s)),
        ("reverb", Reverb(c, c.reverb_p * s)),
        ("background_noise", Background(c, c.background_p * s if c.background_dir else 0.0)),
        ("color_noise", AddColorNoise(*c.color_snr_db, p=c.color_noise_p * s)),
        ("gaussian_noise", AddGaussianSNR(*c.gaussian_snr_db, p=c.gaussian_noise_p * s)),
        ("gain", Gain(*c.gain_db, p=c.gain_p * s)),
        ("time_mask", TimeMask(*c.time_mask_fraction, p=c.time_mask_p * s)),
    ]


_DETAILS: dict[str, Callable[[dict[str, Any]], str]] = {
    "speed": lambda p: f"×{p['factor']:.2f}",
    "pitch": lambda p: f"{p['num_semitones']:+.2f} semitones",
    "reverb": lambda p: f"(impulse response {p['ir_index']})",
    "background_noise": lambda p: f"{Path(p['file']).name} at {p['snr_db']:.1f} dB SNR",
    "gain": lambda p: f"{p['amplitude_ratio']:.2f}× amplitude",
    "time_mask": lambda p: f"of {p['t']} samples",
}


def _detail(name: str, params: dict[str, Any]) -> str:
    """One human-readable line for a transform that fired, with the drawn parameters."""
    return f"{LABELS[name]} {_DETAILS[name](params)}" if name in _DETAILS else LABELS[name]


def _sanitise(audio: np.ndarray) -> np.ndarray:
    """Float32 copy without NaN/inf, scaled down when its peak exceeds 1."""
    out = np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    return out / np.float32(peak) if peak > 1.0 else out.copy()


class AudioAugmenter:
    """Applies an `AudioAugmentConfig` to one clip at a time; picklable, cheap to construct
    (background files and impulse responses are read on first use and cached)."""

    def __init__(self, config: AudioAugmentConfig | None = None) -> None:
        self.config = config or AudioAugmentConfig()
        self._transforms = _transforms(self.config)

    def __reduce__(self) -> tuple[type, tuple[AudioAugmentConfig]]:
        return (AudioAugmenter, (self.config,))  # rebuilt in the worker; caches stay behind

    def __call__(self, audio: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
        """Augmented copy of `audio` (1-D float32, `sample_rate` Hz): float32 in [-1, 1], same
        rate; the length changes only by speed perturbation. Same (audio, seed), same output."""
        return self.apply(audio, sample_rate, seed)[0]

    def apply(
        self, audio: np.ndarray, sample_rate: int, seed: int
    ) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
        """(augmented audio, names of the transforms that fired, one description line each)."""
        audio = np.asarray(audio)
        if audio.ndim != 1:
            raise ValueError(f"audio must be 1-D (n_samples,), got shape {audio.shape}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        out = _sanitise(audio)
        if self.config.strength == 0 or out.size < MIN_DURATION_S * sample_rate:
            return out, (), ()
        applied: list[str] = []
        details: list[str] = []
        with seeded_global_rng(seed):
            for name, transform in self._transforms:
                out = transform(out, sample_rate)
                if transform.parameters["should_apply"]:
                    applied.append(name)
                    details.append(_detail(name, transform.parameters))
        return _sanitise(out), tuple(applied), tuple(details)


@dataclass(frozen=True, eq=False)
class AugmentPreview:
    """One clip before and after augmentation (1-D float32 at `sample_rate` Hz) and what fired."""

    sample_rate: int
    seed: int
    original: np.ndarray
    augmented: np.ndarray
    applied: tuple[str, ...] = ()  # transform names (keys of `LABELS`), in the order applied
    details: tuple[str, ...] = ()  # one readable line per applied transform


def preview(
    audio: np.ndarray, sample_rate: int, config: AudioAugmentConfig, seed: int = 0
) -> AugmentPreview:
    """Augment one clip as training would with `seed`, recording which transforms fired."""
    augmented, applied, details = AudioAugmenter(config).apply(audio, sample_rate, seed)
    original = np.asarray(audio, dtype=np.float32)
    return AugmentPreview(sample_rate, seed, original, augmented, applied, details)


def describe(config: AudioAugmentConfig) -> list[str]:
    """Human-readable lines, one per transform that can fire, with its share of samples."""
    c = config
    if c.strength == 0:
        return ["no augmentation (strength 0)"]
    reverb = f"from {c.ir_dir}" if c.ir_dir else f"simulated rooms, RT60 {_span(c.room_rt60_s)} s"
    lines = [
        ("speed_p", f"speed perturbation ×{_span(c.speed_range)}"),
        ("pitch_p", f"pitch shift {_span(c.pitch_semitones, '+.1f')} semitones"),
        ("reverb_p", f"room reverb ({reverb})"),
        ("background_p", f"background noise from {c.background_dir}, "
                         f"SNR {_span(c.background_snr_db, '.0f')} dB"),
        ("color_noise_p", f"coloured noise, SNR {_span(c.color_snr_db, '.0f')} dB"),
        ("gaussian_noise_p", f"Gaussian noise, SNR {_span(c.gaussian_snr_db, '.0f')} dB"),
        ("gain_p", f"gain {_span(c.gain_db, '+.0f')} dB"),
        ("time_mask_p", f"time mask, {_span(c.time_mask_fraction, '.0%')} of the clip"),
    ]  # fmt: skip
    out = []
    for p_name, text in lines:
        p = getattr(c, p_name) * c.strength
        if p > 0 and (p_name != "background_p" or c.background_dir):
            out.append(f"{text} — {p:.0%} of samples")
    return out or ["no augmentation (every probability is 0)"]


def _span(pair: tuple[float, float], fmt: str = ".2f") -> str:
    return f"{pair[0]:{fmt}}–{pair[1]:{fmt}}"
