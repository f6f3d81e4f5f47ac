"""The waveform transforms of `augmentation.audio_aug` that audiomentations lacks: speed
perturbation by resampling, room reverb (simulated shoebox rooms or impulse-response files) and
background noise from a folder; plus the seeded global generators they draw from.

All take and return mono float32 samples, shape (n_samples,), at the caller's sample rate.
"""

from __future__ import annotations

import functools
import math
import random
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from audiomentations.core.transforms_interface import BaseWaveformTransform
from scipy.signal import fftconvolve, resample_poly

if TYPE_CHECKING:
    from augmentation.audio_aug import AudioAugmentConfig

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
_CACHE_WHOLE_FILE_S = 30.0  # background files up to this long are decoded once and kept
_MAX_IR_S = 1.5  # impulse responses are cut to this length
_RNG_LOCK = threading.RLock()  # the global generators are process-wide: one seeded call at a time


def audio_files(folder: str) -> tuple[str, ...]:
    """Audio files under `folder` (recursively, hidden ones left out), sorted so that every
    process sees one order."""
    root = Path(folder)
    found = (p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    return tuple(sorted(str(p) for p in found if not p.name.startswith(".")))


@contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
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
    with seeded_global_rng(index):  # in case the simulation draws from np.random
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
            warnings.warn(f"{type(self).__name__} skipped: {error}", stacklevel=2)
            self.parameters["should_apply"] = False
            return samples


class Speed(_Transform):
    def draw(self) -> dict[str, Any]:
        return {"factor": round(random.uniform(*self.config.speed_range), 2)}

    def apply(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        return speed_perturb(samples, self.parameters["factor"])


class Reverb(_Transform):
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


class Background(_Transform):
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
