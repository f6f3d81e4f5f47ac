"""Long recordings with one transcript and no timestamps, cut into decoder-sized utterances.

1. Silero VAD finds the speech; its spans are grouped into pieces of at most `max_seconds`,
   cut in the middle of the pause between two spans.
2. The model transcribes the recording with word timestamps, and the reference words are
   aligned to its words (word-level Levenshtein on a light normalization), so each reference
   word gets the time of the word it matched; unmatched words take times interpolated between
   their matched neighbours, and with no match at all (a model that does not know the
   language) the words are spread over the speech in proportion to their length.
3. Each reference word goes to the piece its time falls in. Pieces without words are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from utils.audio import SAMPLE_RATE
from utils.vad import VadOptions, detect_speech

# Short pauses separate sentences in read speech: a lighter VAD than transcription uses.
SEGMENT_VAD = VadOptions(min_silence_duration_ms=300, speech_pad_ms=100)
PAD = 0.3  # seconds of pause kept around a piece's speech
_WORD = re.compile(r"[^\w']+")


@dataclass(frozen=True)
class SegmentOptions:
    max_seconds: float = 25.0  # below 30 s: room for the padding Whisper's window adds
    vad: VadOptions = SEGMENT_VAD


@dataclass(frozen=True)
class Piece:
    """A part of the recording, in seconds, with the reference words it holds."""

    start: float
    end: float
    text: str


def group_spans(
    spans: Sequence[tuple[float, float]], max_seconds: float
) -> list[tuple[float, float]]:
    """VAD spans (seconds) grouped into consecutive runs whose extent (first start to last end)
    is at most `max_seconds`; returns (start, end) per group."""
    groups: list[tuple[float, float]] = []
    for start, end in spans:
        if groups and end - groups[-1][0] <= max_seconds:
            groups[-1] = (groups[-1][0], end)
        else:
            groups.append((start, end))
    return groups


def cut_points(groups: Sequence[tuple[float, float]]) -> list[float]:
    """Where consecutive groups are cut apart: the middle of the pause between them."""
    return [(a[1] + b[0]) / 2 for a, b in pairwise(groups)]


def _key(word: str) -> str:
    return _WORD.sub("", word.lower()) or "·"


def word_times(
    reference: Sequence[str], hypothesis: Sequence[tuple[str, float]], speech: tuple[float, float]
) -> np.ndarray:
    """Time (seconds) of each reference word: that of the hypothesis word it aligns to
    (`hypothesis` holds (word, time) pairs), else interpolated; shape (len(reference),)."""
    import jiwer

    times = np.full(len(reference), np.nan)
    if hypothesis:
        out = jiwer.process_words(
            " ".join(_key(w) for w in reference), " ".join(_key(w) for w, _ in hypothesis)
        )
        for chunk in out.alignments[0]:
            if chunk.type in ("equal", "substitute"):
                for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
                    times[chunk.ref_start_idx + k] = hypothesis[chunk.hyp_start_idx + k][1]
    known = np.flatnonzero(~np.isnan(times))
    if known.size < 2:  # spread by length over the speech
        lengths = np.array([len(w) + 1 for w in reference], dtype=float)
        middles = np.cumsum(lengths) - lengths / 2  # each word at the middle of its share
        return speech[0] + (speech[1] - speech[0]) * middles / lengths.sum()
    order = np.arange(len(reference))
    return np.interp(order, known, times[known])


def segment_recording(
    samples: np.ndarray, transcript: str, engine, language: str, options: SegmentOptions
) -> list[Piece]:
    """Pieces of a 16 kHz mono recording (n,) with their share of `transcript`."""
    from utils.transcription.options import DecodeOptions

    duration = samples.size / SAMPLE_RATE
    vad = VadOptions(**{**options.vad.__dict__, "max_speech_duration_s": options.max_seconds})
    spans = [(s.start, s.end) for s in detect_speech(samples, vad)]
    reference = transcript.split()
    if not spans or not reference:
        return []
    groups = group_spans(spans, options.max_seconds)
    cuts = cut_points(groups)
    decode = DecodeOptions(language=language or None, word_timestamps=True, beam_size=1)
    result = engine.transcribe(samples, decode)
    heard = [(w.word.strip(), (w.start + w.end) / 2) for w in result.words]
    times = word_times(reference, heard, (spans[0][0], spans[-1][1]))
    group_of = np.searchsorted(cuts, times, side="right")
    bounds = [0.0, *cuts, duration]
    pieces = []
    for k, (start, end) in enumerate(groups):
        words = [w for w, g in zip(reference, group_of, strict=True) if g == k]
        if words:  # a little of the pause on each side, never past the cuts
            pieces.append(
                Piece(max(bounds[k], start - PAD), min(bounds[k + 1], end + PAD), " ".join(words))
            )
    return pieces
