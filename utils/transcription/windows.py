"""How much audio one decoder window can hold, per language.

The decoder holds 448 positions and CTranslate2 generates at most half of them per window. A
language whose script the byte-level BPE covers poorly costs many tokens per second of speech, so
a 30 s window of it overflows and text is cut. We cap the window from the token rate instead.
"""

from __future__ import annotations

import numpy as np

from utils.audio import CHUNK_LENGTH, MAX_DECODER_POSITIONS, SAMPLE_RATE

WINDOW_TOKEN_LIMIT = MAX_DECODER_POSITIONS // 2  # tokens CTranslate2 generates per window
_SAFETY = 0.9  # keep headroom for prompt tokens and fast speakers
MIN_WINDOW_SECONDS = 2.0  # below this, re-splitting stops

# Tokens per second of fluent speech. Amharic: about 3 tokens per Ethiopic character (NOTES.md)
# at about 7 characters per second. Latin-script languages stay near 5.
TOKENS_PER_SECOND: dict[str, float] = {"am": 20.0}
DEFAULT_TOKENS_PER_SECOND = 5.0


def max_window_seconds(language: str | None, token_limit: int = WINDOW_TOKEN_LIMIT) -> float:
    """Longest audio window (seconds) whose transcript fits `token_limit` tokens; at most 30 s."""
    rate = TOKENS_PER_SECOND.get(language or "", DEFAULT_TOKENS_PER_SECOND)
    return float(min(CHUNK_LENGTH, max(MIN_WINDOW_SECONDS, _SAFETY * token_limit / rate)))


def token_budget(language: str | None, seconds: float, headroom: float = 3.0) -> int:
    """Decoder tokens to allow for `seconds` of audio: `headroom` times the fluent rate plus a
    little, at most a window's limit. A decode that loops stops there instead of at 224."""
    rate = TOKENS_PER_SECOND.get(language or "", DEFAULT_TOKENS_PER_SECOND)
    return int(min(WINDOW_TOKEN_LIMIT, np.ceil(16 + headroom * rate * seconds)))


def snap(seconds: float) -> float:
    """`seconds` on the 10 ms grid faster-whisper rounds clip edges to, so spans and the
    segments decoded from them compare exactly."""
    return round(seconds, 2)


def fixed_windows(duration: float, window: float) -> list[tuple[float, float]]:
    """Consecutive (start, end) windows of at most `window` seconds covering [0, duration]."""
    edges = []
    start = 0.0
    while start < duration:
        end = min(duration, snap(start + window))  # the last edge is the exact end
        edges.append((start, end))
        start = end
    return edges


def split_at_quietest(samples: np.ndarray, span: tuple[float, float]) -> list[tuple[float, float]]:
    """Cut a (start, end) span of 16 kHz `samples` in two at its quietest 20 ms in the middle third,
    so the cut rarely falls inside a word."""
    start, end = span
    third = (end - start) / 3
    lo, hi = int((start + third) * SAMPLE_RATE), int((end - third) * SAMPLE_RATE)
    frame = SAMPLE_RATE // 50
    middle = samples[lo:hi]
    if middle.size < frame:
        cut = (start + end) / 2
    else:
        usable = middle[: middle.size // frame * frame].reshape(-1, frame)
        quietest = int(np.argmin((usable.astype(np.float64) ** 2).mean(axis=1)))
        cut = (lo + quietest * frame + frame // 2) / SAMPLE_RATE
    return [(start, snap(cut)), (snap(cut), end)]
