"""Per-utterance audio quality figures for a speech dataset: level, clipping, silence, SNR, speech
share and speaking rate of 16 kHz (`utils.audio.SAMPLE_RATE`) mono float32 audio of shape (n,).

Conventions (all documented choices live here):

- dBFS is relative to a full-scale value of 1.0: a full-scale sine has peak 0 dBFS and RMS
  -3.01 dBFS (not the AES-17 convention that reads such a sine as 0 dBFS RMS). Every power is
  floored at 1e-12 before taking logs, so silence, all-zero and empty audio read `DB_FLOOR`
  (-120.0 dBFS), a finite number that JSON can carry, and never -inf.
- NaN and ±inf samples are treated as 0 (a decoder glitch is counted as silence, not clipping).
- Level frames are 20 ms (320 samples), non-overlapping; a last partial frame counts, its power
  averaged over the samples it has.
- The VAD is Silero (`utils.vad.speech_probabilities`), run once per utterance: a 512-sample
  (32 ms) window is speech when its probability is >= 0.5. The raw per-window mask is used, with
  no padding or span merging, so pauses between phrases do not count as speech.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from utils.audio import SAMPLE_RATE
from utils.vad import WINDOW_SAMPLES, speech_probabilities

DB_FLOOR = -120.0  # dBFS written for silence / empty audio, and the lower bound of every level
SNR_LIMIT = 120.0  # |snr_db| is clipped to this: finite (JSON-safe) even for digital silence
CLIP_LEVEL = 0.999  # |x| at or above this counts as a clipped sample
SILENCE_DBFS = -50.0  # a 20 ms frame whose RMS is below this is silent
FRAME_SAMPLES = SAMPLE_RATE * 20 // 1000  # 320 samples = 20 ms
SPEECH_THRESHOLD = 0.5  # VAD probability at or above which a window is speech
GUARD_WINDOWS = 1  # non-speech windows next to speech left out of the noise estimate
MIN_NOISE_SAMPLES = SAMPLE_RATE // 10  # under 100 ms of non-speech: use the quiet-frame fallback
QUIET_SHARE = 0.10  # share of quietest frames whose mean power is the fallback noise floor
_POWER_FLOOR = 10.0 ** (DB_FLOOR / 10.0)


@dataclass(frozen=True)
class QualityFigures:
    """Quality figures of one utterance.

    duration_s: length in seconds. rms_dbfs / peak_dbfs: RMS and peak level, dBFS (>= -120).
    clipping_ratio: share of samples with |x| >= 0.999, in [0, 1].
    silence_ratio: share of 20 ms frames whose RMS is below -50 dBFS, in [0, 1] (0 when empty).
    snr_db: estimated speech-to-noise ratio in dB, clipped to [-120, 120]; None when the VAD
    finds no speech, or when `measure(vad=False)`. speech_ratio: share of the duration in VAD
    speech windows, in [0, 1] (0 when empty); None when `vad=False`. chars_per_second: speaking
    rate, non-whitespace characters of the text per second of speech (per second of duration when
    there is no speech or no VAD); None without text or when the audio is empty.
    """

    duration_s: float
    rms_dbfs: float
    peak_dbfs: float
    clipping_ratio: float
    silence_ratio: float
    snr_db: float | None
    speech_ratio: float | None
    chars_per_second: float | None

    def to_dict(self) -> dict[str, float | None]:
        """JSON-ready dict: field name -> float rounded to 4 decimals, or None."""
        return {k: None if v is None else round(float(v), 4) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityFigures:
        """Inverse of `to_dict`; keys other than the field names are ignored, a missing key
        raises KeyError."""
        return cls(**{f.name: _optional_float(data[f.name]) for f in fields(cls)})


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _power_db(power: float) -> float:
    """10 log10 of a power (mean square, full scale 1.0), floored at DB_FLOOR."""
    return 10.0 * math.log10(max(power, _POWER_FLOOR))


def _clean(samples: np.ndarray) -> np.ndarray:
    """(n,) float64 copy of `samples` with NaN and ±inf set to 0; raises ValueError unless 1-D."""
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"expected 1-D 16 kHz mono audio, got shape {array.shape}")
    array = array.astype(np.float64)
    array[~np.isfinite(array)] = 0.0
    return array


def _frame_powers(audio: np.ndarray, size: int) -> np.ndarray:
    """Mean square of consecutive `size`-sample frames of (n,) audio: shape (ceil(n / size),);
    the last partial frame is averaged over the samples it has."""
    squares = np.pad(audio * audio, (0, -len(audio) % size)).reshape(-1, size).sum(axis=1)
    counts = np.full(len(squares), size, dtype=np.float64)
    if len(audio) % size:
        counts[-1] = len(audio) % size
    return squares / counts


def _speech_windows(audio: np.ndarray) -> np.ndarray:
    """Boolean (ceil(n / 512),) mask of VAD speech windows of (n,) audio (one Silero pass)."""
    return speech_probabilities(audio.astype(np.float32)) >= SPEECH_THRESHOLD


def _to_samples(windows: np.ndarray, n: int) -> np.ndarray:
    """Per-window (ceil(n / 512),) mask -> per-sample (n,) mask."""
    return np.repeat(windows, WINDOW_SAMPLES)[:n]


def _guarded_noise_windows(speech: np.ndarray) -> np.ndarray:
    """Non-speech windows at least GUARD_WINDOWS windows away from speech, shape like `speech`;
    the guard keeps onsets and decays the 32 ms window grid misses out of the noise estimate."""
    near = speech.copy()
    for shift in range(1, GUARD_WINDOWS + 1):
        near[shift:] |= speech[:-shift]
        near[:-shift] |= speech[shift:]
    return ~near


def _noise_power(audio: np.ndarray, speech: np.ndarray) -> float:
    """Mean square of the noise in (n,) audio given its speech windows: over the guarded
    non-speech windows when they hold at least 100 ms, else over all non-speech windows when they
    do, otherwise the mean power of the quietest 10% (at least one) of the 20 ms frames."""
    for windows in (_guarded_noise_windows(speech), ~speech):
        mask = _to_samples(windows, len(audio))
        if mask.sum() >= MIN_NOISE_SAMPLES:
            return float(np.mean(audio[mask] ** 2))
    frames = np.sort(_frame_powers(audio, FRAME_SAMPLES))
    return float(frames[: max(1, math.ceil(QUIET_SHARE * len(frames)))].mean())


def _snr_db(audio: np.ndarray, speech: np.ndarray) -> float | None:
    """Speech-to-noise ratio in dB of (n,) audio given its speech windows, None without speech.
    Speech power is the mean square over the speech windows less the noise power (noise is in
    the speech windows too), floored at 1e-12; the ratio is clipped to [-SNR_LIMIT, SNR_LIMIT]."""
    if not speech.any():
        return None
    noise = _noise_power(audio, speech)
    signal = float(np.mean(audio[_to_samples(speech, len(audio))] ** 2)) - noise
    snr = _power_db(signal) - _power_db(noise)
    return float(np.clip(snr, -SNR_LIMIT, SNR_LIMIT))


def _chars_per_second(text: str | None, seconds: float) -> float | None:
    """Non-whitespace characters of `text` per second; None without text or time."""
    if text is None or seconds <= 0:
        return None
    return sum(not ch.isspace() for ch in text) / seconds


def measure(samples: np.ndarray, text: str | None = None, *, vad: bool = True) -> QualityFigures:
    """Quality figures of 16 kHz mono audio of shape (n,) (float; float32 expected), with its
    transcript `text` for the speaking rate. `vad=False` skips the Silero pass: snr_db and
    speech_ratio are then None and the speaking rate is per second of duration. Never raises
    on empty, all-zero, NaN-containing or very short audio; raises ValueError unless 1-D."""
    audio = _clean(samples)
    n = len(audio)
    duration = n / SAMPLE_RATE
    if n == 0:
        ratio = 0.0 if vad else None
        return QualityFigures(0.0, DB_FLOOR, DB_FLOOR, 0.0, 0.0, None, ratio, None)
    magnitude = np.abs(audio)
    frames_db = 10.0 * np.log10(np.maximum(_frame_powers(audio, FRAME_SAMPLES), _POWER_FLOOR))
    snr, speech_ratio, speech_s = None, None, 0.0
    if vad:
        speech = _speech_windows(audio)
        speech_s = int(_to_samples(speech, n).sum()) / SAMPLE_RATE
        snr, speech_ratio = _snr_db(audio, speech), speech_s / duration
    return QualityFigures(
        duration_s=duration,
        rms_dbfs=_power_db(float(np.mean(audio * audio))),
        peak_dbfs=_power_db(float(magnitude.max()) ** 2),
        clipping_ratio=float(np.mean(magnitude >= CLIP_LEVEL)),
        silence_ratio=float(np.mean(frames_db < SILENCE_DBFS)),
        snr_db=snr,
        speech_ratio=speech_ratio,
        chars_per_second=_chars_per_second(text, speech_s if speech_s > 0 else duration),
    )
