"""Hallucination guards applied after decoding, on top of Whisper's own fallback rules.

Whisper skips a window as silence only when the no-speech probability is high *and* the average
log-probability is below `log_prob_threshold`; on digital silence and white noise the base model
still emits short confident-looking text ("You", "1.5kg") or numeric loops that no temperature
cures. A segment is dropped here when, with `no_speech_threshold` set:
- its audio is digital silence (RMS below -60 dBFS), or
- the model thinks it is not speech (no-speech probability above the threshold) and either it
  is unsure of the text (average log-prob below half the log-prob threshold, or mean word
  probability below 0.5) or the text is a loop (compression ratio above its threshold).
Real speech rarely has a no-speech probability above 0.6, so it is left alone.
"""

from __future__ import annotations

import numpy as np

from utils.audio import SAMPLE_RATE
from utils.transcription.options import DecodeOptions
from utils.transcription.results import Segment

SILENCE_RMS = 1e-3  # -60 dBFS
MIN_WORD_PROBABILITY = 0.5


def _rms(samples: np.ndarray, segment: Segment) -> float:
    piece = samples[int(segment.start * SAMPLE_RATE) : int(segment.end * SAMPLE_RATE)]
    return float(np.sqrt(np.mean(np.square(piece, dtype=np.float64)))) if piece.size else 0.0


def is_hallucination(segment: Segment, samples: np.ndarray, options: DecodeOptions) -> bool:
    if options.no_speech_threshold is None:
        return False
    if _rms(samples, segment) < SILENCE_RMS:
        return True
    if segment.no_speech_prob <= options.no_speech_threshold:
        return False
    unsure = (
        options.log_prob_threshold is not None
        and segment.avg_logprob < options.log_prob_threshold / 2
    )
    if segment.words:
        mean_word = sum(w.probability for w in segment.words) / len(segment.words)
        unsure = unsure or mean_word < MIN_WORD_PROBABILITY
    threshold = options.compression_ratio_threshold
    looping = threshold is not None and segment.compression_ratio > threshold
    return unsure or looping


def drop_hallucinations(
    segments: list[Segment], samples: np.ndarray, options: DecodeOptions
) -> list[Segment]:
    """`segments` without those the guards above reject."""
    return [s for s in segments if not is_hallucination(s, samples, options)]
