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

import functools
import math
import random
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from audiomentations import AddColorNoise, AddGaussianSNR, Gain, PitchShift, TimeMask
from audiomentations.core.transforms_interface import BaseWaveformTransform
from scipy.signal import fftconvolve, resample_poly

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
MIN_DURATION_S = 0.05  # shorter inputs are returned unchanged
_CACHE_WHOLE_FILE_S = 30.0  # background files up to this long are decoded once and kept
_MAX_IR_S = 1.5  # impulse responses are cut to this length
_RNG_LOCK = threading.RLock()  # the global generators are process-wide: one seeded call at a time

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


def audio_files(folder: str) -> tuple[str, ...]:
    """Audio files under `folder` (recursively, hidden ones left out), sorted so that every
    process sees one order."""
    root = Path(folder)
    found = (p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    return tuple(sorted(str(p) for p in found if not p.name.startswith(".")))


@contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    """Seed `random` and `np.random` from `seed` inside the block; restore their states after."""
    with _RNG_LOCK:
        py_state, np_state = random.getstate(), np.random.get_state()
        py_seed, np_seed = np.random.SeedSequence(seed % 2**64).generate_state(2)
        random.seed(int(py_seed))
        np.random.seed(int(np_seed))
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate:
        return audio
    g = math.gcd(from_rate, to_rate)
    return resample_poly(audio, to_rate // g, from_rate // g)


def speed_perturb(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play `audio` `factor` times faster (rounded to 0.01): length becomes n / factor samples and
    the pitch rises by the same factor (resampling, as Kaldi's speed perturbation)."""
    return _resample(audio, round(factor * 100), 100).astype(np.float32)


def _read_mono(path: str, start: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, rate = sf.read(path, start=start, frames=frames, dtype="float32", always_2d=True)
    return data.mean(axis=1), rate


def _prepare_ir(ir: np.ndarray, sample_rate: int) -> np.ndarray:
    """Start at the direct-path peak (no added delay), cut to `_MAX_IR_S`, peak 1; read-only."""
    ir = np.asarray(ir, dtype=np.float64)
    peak = int(np.argmax(np.abs(ir))) if ir.size else 0
    ir = ir[peak : peak + int(_MAX_IR_S * sample_rate)]
    scale = np.max(np.abs(ir)) if ir.size else 0.0
    ir = ir / scale if scale > 0 else np.ones(1)
    ir.setflags(write=False)
    return ir


@functools.lru_cache(maxsize=256)
def simulated_ir(
    bank_seed: int, index: int, sample_rate: int, rt60_range: tuple[float, float]
) -> np.ndarray:
    """Impulse response number `index` of the simulated bank `bank_seed`: a random shoebox room
    (3-10 m x 3-8 m x 2.4-4 m, RT60 in `rt60_range` seconds) by the image-source method of
    pyroomacoustics. Deterministic; cached, so each room is simulated once per process. Returns
    a read-only float64 array starting at the direct-path peak, peak value 1."""
    import pyroomacoustics as pra

    rng = np.random.default_rng([bank_seed, index])
    dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
    rt60 = float(rng.uniform(*rt60_range))
    source = rng.uniform(0.5, dims - 0.5)
    mic = rng.uniform(0.5, dims - 0.5)
    try:
        absorption, max_order = pra.inverse_sabine(rt60, dims)
    except ValueError:  # RT60 too short for this room: make it as dry as allowed
        absorption, max_order = 0.99, 3
    with _seeded_global_rng(index):  # in case the simulation draws from np.random
        room = pra.ShoeBox(
            dims, fs=sample_rate, materials=pra.Material(float(absorption)),
            max_order=min(int(max_order), 50),
        )  # fmt: skip
        room.add_source(source)
        room.add_microphone(mic)
        room.compute_rir()
    return _prepare_ir(np.asarray(room.rir[0][0]), sample_rate)


class _Transform(BaseWaveformTransform):
    """A mono audiomentations transform of this module: draws from the global `random`, lists
    and decodes the files of its folder (`folder_field` of the config) on first use."""

    supports_multichannel = False
    folder_field = ""

    def __init__(self, config: AudioAugmentConfig, p: float) -> None:
        super().__init__(p)
        self.config = config
        self.folder: str = getattr(config, self.folder_field) if self.folder_field else ""
        self.cache: dict[tuple[str, int], np.ndarray] = {}  # (path, rate) -> decoded samples
        self._files: tuple[str, ...] | None = None

    @property
    def files(self) -> tuple[str, ...]:
        if self._files is None:
            self._files = audio_files(self.folder)
        return self._files

    def draw(self) -> dict[str, Any]:
        """Extra parameters of one call (subclasses pick a file, offset, ...); none by default."""
        return {}

    def randomize_parameters(self, samples: np.ndarray, sample_rate: int) -> None:
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.parameters.update(self.draw())

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """As audiomentations', but an unreadable file skips the transform (with a warning)
        instead of failing a training run; `should_apply` then reads False."""
        try:
            return super().__call__(samples, sample_rate)
        except (OSError, RuntimeError, ValueError) as error:  # soundfile's errors are these
            if not self.folder:
                raise
            warnings.warn(f"{type(self).__name__[1:]} skipped: {error}", stacklevel=2)
            self.parameters["should_apply"] = False
            return samples


class _Speed(_Transform):
    def draw(self) -> dict[str, Any]:
        return {"factor": round(random.uniform(*self.config.speed_range), 2)}

    def apply(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        return speed_perturb(samples, self.parameters["factor"])


class _Reverb(_Transform):
    """Convolve with an impulse response (files from `ir_dir`, else the simulated bank); the
    output keeps the input's length and RMS."""

    folder_field = "ir_dir"

    def draw(self) -> dict[str, Any]:
        n = len(self.files) if self.folder else self.config.ir_bank_size
        return {"ir_index": random.randrange(n)}

    def impulse_response(self, index: int, sample_rate: int) -> np.ndarray:
        c = self.config
        if not c.ir_dir:
            return simulated_ir(c.ir_seed, index, sample_rate, c.room_rt60_s)
        path = self.files[index]
        if (path, sample_rate) not in self.cache:
            ir, rate = _read_mono(path)
            self.cache[path, sample_rate] = _prepare_ir(
                _resample(ir, rate, sample_rate), sample_rate
            )
        return self.cache[path, sample_rate]

    def apply(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        ir = self.impulse_response(self.parameters["ir_index"], sample_rate)
        wet = fftconvolve(samples.astype(np.float64), ir)[: samples.size]
        return (wet * _rms(samples) / max(_rms(wet), 1e-12)).astype(np.float32)


class _Background(_Transform):
    """Mix in a random stretch of a random file from `background_dir` at an SNR in dB. Files up
    to `_CACHE_WHOLE_FILE_S` long are decoded once and kept; longer ones are read in parts."""

    folder_field = "background_dir"

    def __init__(self, config: AudioAugmentConfig, p: float) -> None:
        super().__init__(config, p)
        self.frames: dict[str, tuple[int, int]] = {}  # path -> (frames, sample rate)

    def draw(self) -> dict[str, Any]:
        return {
            "file": self.files[random.randrange(len(self.files))],
            "snr_db": random.uniform(*self.config.background_snr_db),
            "offset": random.random(),  # where in the file, as a share of the free room
        }

    def noise(self, path: str, n: int, sample_rate: int, offset: float) -> np.ndarray:
        """`n` samples of `path` at `sample_rate`, starting at `offset` of the room; looped."""
        import soundfile as sf

        if path not in self.frames:
            info = sf.info(path)
            self.frames[path] = (info.frames, info.samplerate)
        total, rate = self.frames[path]
        if total <= _CACHE_WHOLE_FILE_S * rate:
            if (path, sample_rate) not in self.cache:
                self.cache[path, sample_rate] = _resample(_read_mono(path)[0], rate, sample_rate)
            source = self.cache[path, sample_rate]
            start = int(offset * max(source.size - n, 0))
            return _fit(source[start : start + n] if source.size else source, n)
        need = math.ceil(n * rate / sample_rate) + 1
        start = int(offset * max(total - need, 0))
        return _fit(_resample(_read_mono(path, start, need)[0], rate, sample_rate), n)

    def apply(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        p = self.parameters
        noise = self.noise(p["file"], samples.size, sample_rate, p["offset"])
        signal_rms, noise_rms = _rms(samples), _rms(noise)
        if signal_rms == 0.0 or noise_rms == 0.0:
            return samples
        scale = signal_rms / (noise_rms * 10 ** (p["snr_db"] / 20))
        return (samples + scale * noise).astype(np.float32)


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    """Loop or cut `audio` to exactly `n` samples (zeros when `audio` is empty)."""
    if audio.size == 0:
        return np.zeros(n, dtype=np.float32)
    return np.resize(audio, n).astype(np.float32)


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0


def _transforms(c: AudioAugmentConfig) -> list[tuple[str, BaseWaveformTransform]]:
    s = c.strength
    return [
        ("speed", _Speed(c, c.speed_p * s)),
        ("pitch", PitchShift(*c.pitch_semitones, p=c.pitch_p * s)),
        ("reverb", _Reverb(c, c.reverb_p * s)),
        ("background_noise", _Background(c, c.background_p * s if c.background_dir else 0.0)),
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
        with _seeded_global_rng(seed):
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
