"""Audio constants and decoding to the 16 kHz mono float32 arrays Whisper expects.

Every module takes its audio facts from here: the sample rate, the window length and the hop are
defined once.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000  # Hz, what every Whisper model is trained on
N_FFT = 400
HOP_LENGTH = 160  # samples between log-mel frames (10 ms)
CHUNK_LENGTH = 30  # seconds in one encoder window
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 log-mel frames per window
MAX_DECODER_POSITIONS = 448  # Whisper's decoder context

AudioInput = str | os.PathLike | bytes | np.ndarray


class AudioDecodeError(ValueError):
    """An input that cannot be decoded as audio; the message names the input and the cause."""


@dataclass(frozen=True)
class AudioInfo:
    """Facts about a source before resampling."""

    duration: float  # seconds
    sample_rate: int  # Hz of the source
    channels: int
    codec: str


@dataclass(frozen=True)
class DecodedAudio:
    """Mono float32 samples in [-1, 1] at `SAMPLE_RATE`, shape (n_samples,), and source facts."""

    samples: np.ndarray
    info: AudioInfo


def _describe(source: AudioInput) -> str:
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    return str(source)


def _decode_soundfile(data: str | io.BytesIO) -> tuple[np.ndarray, int, str]:
    import soundfile as sf

    with sf.SoundFile(data) as handle:
        samples = handle.read(dtype="float32", always_2d=True)
        return samples, handle.samplerate, handle.format.lower()


def _decode_pyav(data: str | io.BytesIO) -> tuple[np.ndarray, int, str]:
    import av

    with av.open(data, mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise AudioDecodeError("it has no audio stream")
        stream = container.streams.audio[0]
        rate = stream.rate or stream.codec_context.sample_rate
        codec = stream.codec_context.name
        # Keep the native rate and layout; resampling happens once, in `_to_mono_16k`.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=rate)
        planes = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                planes.append(out.to_ndarray())
        for out in resampler.resample(None):
            planes.append(out.to_ndarray())
    if not planes:
        return np.zeros((0, 1), dtype=np.float32), rate, codec
    return np.concatenate(planes, axis=1).T.astype(np.float32), rate, codec


def _to_mono_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """(n, channels) at `rate` -> (m,) float32 at SAMPLE_RATE."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if rate != SAMPLE_RATE and mono.size:
        import soxr

        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return mono


def decode_audio(source: AudioInput, sample_rate: int | None = None) -> DecodedAudio:
    """Decode a path, encoded bytes or an array into 16 kHz mono float32.

    A numpy array is taken as samples: shape (n,) or (n, channels), at `sample_rate` (default
    16 kHz); integer arrays are scaled to [-1, 1]. Anything soundfile or PyAV (FFmpeg) reads is
    accepted as a file. Raises `AudioDecodeError` with the input's name and the reason.
    """
    if isinstance(source, np.ndarray):
        return _decode_array(source, sample_rate or SAMPLE_RATE)
    name = _describe(source)
    if isinstance(source, bytes):
        if not source:
            raise AudioDecodeError(f"{name}: the data is empty")
        opener = lambda: io.BytesIO(source)  # noqa: E731 - a fresh stream per decoder
    else:
        path = Path(source)
        if not path.exists():
            raise AudioDecodeError(f"{name}: no such file")
        if path.is_dir():
            raise AudioDecodeError(f"{name}: is a directory, not an audio file")
        if path.stat().st_size == 0:
            raise AudioDecodeError(f"{name}: the file is empty (0 bytes)")
        opener = lambda: str(path)  # noqa: E731
    errors = []
    for decoder in (_decode_soundfile, _decode_pyav):
        try:
            samples, rate, codec = decoder(opener())
            break
        except AudioDecodeError as exc:
            errors.append(str(exc))
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    else:
        reason = errors[-1] if errors else "unknown format"
        raise AudioDecodeError(f"{name}: not readable as audio ({reason})")
    info = AudioInfo(
        duration=samples.shape[0] / rate if rate else 0.0,
        sample_rate=int(rate),
        channels=int(samples.shape[1]) if samples.ndim == 2 else 1,
        codec=codec,
    )
    return DecodedAudio(_to_mono_16k(samples, rate), info)


def _decode_array(array: np.ndarray, rate: int) -> DecodedAudio:
    if array.ndim not in (1, 2):
        raise AudioDecodeError(f"array input must be 1-D or 2-D, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.integer):
        scale = float(np.iinfo(array.dtype).max) + 1.0
        array = array.astype(np.float32) / scale
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2 and array.shape[0] < array.shape[1] and array.shape[0] <= 8:
        array = array.T  # (channels, n) -> (n, channels)
    channels = array.shape[1] if array.ndim == 2 else 1
    info = AudioInfo(array.shape[0] / rate, rate, channels, "pcm_f32")
    return DecodedAudio(_to_mono_16k(array, rate), info)


def load_audio(source: AudioInput, sample_rate: int | None = None) -> np.ndarray:
    """Shorthand for `decode_audio(...).samples`: shape (n_samples,), float32, 16 kHz."""
    return decode_audio(source, sample_rate).samples
