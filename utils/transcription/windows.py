"""How much audio one decoder window can hold, per language.

The decoder holds 448 positions and CTranslate2 generates at most half of them per window. A
language whose script the byte-level BPE covers poorly costs many tokens per second of speech, so
a 30 s window of it overflows and text is cut. We cap the window from the token rate instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from utils.audio import CHUNK_LENGTH, MAX_DECODER_POSITIONS, SAMPLE_RATE

WINDOW_TOKEN_LIMIT = MAX_DECODER_POSITIONS // 2  # tokens CTranslate2 generates per window
_SAFETY = 0.9  # keep headroom for prompt tokens and fast speakers
MIN_WINDOW_SECONDS = 2.0  # below this, re-splitting stops

# Tokens per second of fluent speech with Whisper's own vocabulary. Amharic: about 3 tokens per
# Ethiopic character (NOTES.md) at about 6.7 characters per second. Latin-script languages stay
# near 5. A model's own tokenizer gives its own rates (`model_token_rates`).
TOKENS_PER_SECOND: dict[str, float] = {"am": 20.0}
DEFAULT_TOKENS_PER_SECOND = 5.0
AMHARIC_CHARACTERS_PER_SECOND = 6.7
# Everyday Amharic (news and conversation), the yardstick of a tokenizer's Amharic rate.
_AMHARIC_SAMPLE = (
    "ኢትዮጵያ በአፍሪካ ቀንድ የምትገኝ ሀገር ናት። ዋና ከተማዋ አዲስ አበባ ነው። ዛሬ ጠዋት ዝናብ ዘነበ፤ "
    "ልጆቹ ወደ ትምህርት ቤት ሄዱ። እባክህ ውሃ ስጠኝ። የገበያ ዋጋ በዚህ ሳምንት ጨምሯል ብለዋል።"
)


def model_token_rates(tokenizer: Any) -> dict[str, float]:
    """Per-language tokens per second for a model's tokenizer (a `tokenizers.Tokenizer` or a
    transformers tokenizer): Amharic from the tokenizer's own tokens per Ethiopic character, so
    a Ge'ez-aware vocabulary (about 1 per character) gets about 3x longer windows."""
    encoded = tokenizer.encode(" " + _AMHARIC_SAMPLE, add_special_tokens=False)
    ids = getattr(encoded, "ids", encoded)
    characters = sum(0x1200 <= ord(c) < 0x1380 for c in _AMHARIC_SAMPLE)
    return {"am": round(AMHARIC_CHARACTERS_PER_SECOND * len(ids) / characters, 1)}


def tokens_per_second(language: str | None, rates: Mapping[str, float] | None = None) -> float:
    """The fluent token rate of `language`: from `rates` (a model's own) when they name it."""
    table = {**TOKENS_PER_SECOND, **(rates or {})}
    return table.get(language or "", DEFAULT_TOKENS_PER_SECOND)


def max_window_seconds(
    language: str | None,
    token_limit: int = WINDOW_TOKEN_LIMIT,
    rates: Mapping[str, float] | None = None,
) -> float:
    """Longest audio window (seconds) whose transcript fits `token_limit` tokens; at most 30 s.
    `rates`: the model's own tokens per second (`model_token_rates`)."""
    rate = tokens_per_second(language, rates)
    seconds = max(MIN_WINDOW_SECONDS, _SAFETY * token_limit / rate)
    # Within a second of a full window the headroom covers it: decode the whole 30 s.
    return float(CHUNK_LENGTH if seconds >= CHUNK_LENGTH - 1.0 else seconds)


def token_budget(
    language: str | None,
    seconds: float,
    headroom: float = 3.0,
    rates: Mapping[str, float] | None = None,
) -> int:
    """Decoder tokens to allow for `seconds` of audio: `headroom` times the fluent rate plus a
    little, at most a window's limit. A decode that loops stops there instead of at 224."""
    rate = tokens_per_second(language, rates)
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
