"""Audio frames as a stream sends them: raw little-endian mono samples at any rate, turned into
16 kHz float32 by a resampler that keeps its state across frames (no clicks at frame edges)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from utils.audio import SAMPLE_RATE

Encoding = Literal["pcm16", "float32"]
ENCODINGS: tuple[Encoding, ...] = ("pcm16", "float32")
MIN_RATE, MAX_RATE = 8_000, 192_000  # Hz a stream may declare
SAMPLE_BYTES = {"pcm16": 2, "float32": 4}


class StreamFormatError(ValueError):
    """A frame or a stream setting that does not fit the declared format; says what is wrong."""


def decode_frame(data: bytes, encoding: Encoding) -> np.ndarray:
    """Little-endian mono samples -> float32 in [-1, 1], shape (n,). A length that is not a
    whole number of samples, or float samples that are not finite, raise StreamFormatError."""
    if encoding not in SAMPLE_BYTES:
        raise StreamFormatError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}")
    width = SAMPLE_BYTES[encoding]
    if len(data) % width:
        raise StreamFormatError(
            f"a {encoding} frame holds whole {width}-byte samples; got {len(data)} bytes"
        )
    if encoding == "pcm16":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.isfinite(samples).all():
        raise StreamFormatError("float32 frame holds NaN or infinite samples")
    return np.clip(samples, -1.0, 1.0)


class StreamResampler:
    """Any rate -> 16 kHz float32, chunk by chunk, with soxr's streaming resampler carrying its
    filter state across chunks (resampling each chunk alone would click at every edge)."""

    def __init__(self, sample_rate: int) -> None:
        if not isinstance(sample_rate, int) or not MIN_RATE <= sample_rate <= MAX_RATE:
            raise StreamFormatError(
                f"sample_rate must be a whole number of Hz in {MIN_RATE}..{MAX_RATE}, "
                f"not {sample_rate!r}"
            )
        self.sample_rate = sample_rate
        self._stream = None
        if sample_rate != SAMPLE_RATE:
            import soxr

            self._stream = soxr.ResampleStream(sample_rate, SAMPLE_RATE, 1, dtype="float32")

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Samples at the stream's rate (n,) -> what is ready at 16 kHz (m,), float32."""
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(samples, last=False)

    def flush(self) -> np.ndarray:
        """The samples the filter still holds, at the end of the stream."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
