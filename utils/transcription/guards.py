"""Hallucination guards applied after decoding, on top of Whisper's own fallback rules.

Whisper skips a window as silence only when the no-speech probability is high *and* the average
log-probability is below `log_prob_threshold`; on digital silence and white noise the base model
still emits short confident-looking text ("You", "1.5kg") or numeric loops that no temperature
cures. A segment is dropped here when, with `no_speech_threshold` set:
- its audio is digital silence (RMS below -60 dBFS) or noise with no speech left in it
  (spectral flatness above 0.45), or
- the model thinks it is not speech (no-speech probability above the threshold) and either it
  is unsure of the segment's words (mean word probability below 0.5; without words, an average
  log-prob under the log-prob threshold), the segment's own text is a loop (its
  compression ratio above the threshold), or its audio is broadband noise (spectral flatness
  above 0.35, where speech stays below 0.2).
faster-whisper reports the no-speech probability, log-prob and compression ratio per window, so
real speech in a window of repetitive prompts can reach 0.6 and 2.4; the word probabilities and
the segment's own text keep such speech.
"""

from __future__ import annotations

import zlib

import numpy as np

from utils.audio import SAMPLE_RATE
from utils.transcription.options import DecodeOptions
from utils.transcription.results import Segment

SILENCE_RMS = 1e-3  # -60 dBFS
MIN_WORD_PROBABILITY = 0.5
NOISE_FLATNESS = 0.35  # spectral flatness of broadband noise, when the model doubts too
PURE_NOISE_FLATNESS = 0.45  # white noise is 0.56; speech in noise at 5 dB SNR measured 0.23


def _span(samples: np.ndarray, segment: Segment, min_seconds: float = 1.0) -> np.ndarray:
    """The segment's audio, widened to `min_seconds` around its middle: timestamps of
    hallucinated text are often squeezed to nothing."""
    middle = (segment.start + segment.end) / 2
    half = max(segment.end - segment.start, min_seconds) / 2
    start = max(0, int((middle - half) * SAMPLE_RATE))
    return samples[start : max(start, int((middle + half) * SAMPLE_RATE))]


def spectral_flatness(samples: np.ndarray, frame: int = 512) -> float:
    """Mean per-frame Wiener entropy (geometric over arithmetic mean of the power spectrum) of
    16 kHz samples: about 0.56 for white noise, below 0.2 for speech and music."""
    usable = samples[: samples.size // frame * frame].reshape(-1, frame).astype(np.float64)
    usable = usable[np.mean(usable**2, axis=1) > SILENCE_RMS**2]  # digital silence is no noise
    if usable.size == 0:
        return 0.0
    power = np.abs(np.fft.rfft(usable * np.hanning(frame), axis=1))[:, 1:] ** 2 + 1e-12
    flatness = np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)
    return float(flatness.mean())


def _rms(samples: np.ndarray, segment: Segment) -> float:
    piece = _span(samples, segment)
    return float(np.sqrt(np.mean(np.square(piece, dtype=np.float64)))) if piece.size else 0.0


def is_hallucination(segment: Segment, samples: np.ndarray, options: DecodeOptions) -> bool:
    if options.no_speech_threshold is None:
        return False
    if _rms(samples, segment) < SILENCE_RMS:
        return True
    flatness = spectral_flatness(_span(samples, segment))
    if flatness > PURE_NOISE_FLATNESS:
        return True
    if segment.no_speech_prob <= options.no_speech_threshold:
        return False
    if segment.words:
        mean_word = sum(w.probability for w in segment.words) / len(segment.words)
        unsure = mean_word < MIN_WORD_PROBABILITY
    else:  # Whisper's own rule, per segment
        unsure = (
            options.log_prob_threshold is not None
            and segment.avg_logprob < options.log_prob_threshold
        )
    threshold = options.compression_ratio_threshold
    looping = threshold is not None and compression_ratio(segment.text) > threshold
    return unsure or looping or flatness > NOISE_FLATNESS


def compression_ratio(text: str) -> float:
    """UTF-8 length over zlib-compressed length: high for looping text (Whisper's measure)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def drop_hallucinations(
    segments: list[Segment], samples: np.ndarray, options: DecodeOptions
) -> list[Segment]:
    """`segments` without those the guards above reject."""
    return [s for s in segments if not is_hallucination(s, samples, options)]
