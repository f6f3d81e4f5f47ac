"""Segments as they are decoded: the audio cut at pauses into blocks, decoded block by block.

Whisper emits a window's segments only once that whole window (up to 30 s) is decoded, so the
unit of streaming is the window. Here the audio is cut into blocks no longer than the engine's
window for the language (VAD spans packed together, cut in the middle of the pauses between
them) and each block goes through `engine.transcribe`, so it works for every engine kind
`load_engine` returns and that engine's VAD, temperature fallback, clamping and hallucination
guards all apply. A block's segments are yielded, with times from the start of the audio,
before the next block is decoded; a consumer that stops iterating stops the decoding.

On audio of one window or less the blocks are the whole file and the text is
`engine.transcribe`'s; on longer audio the windows fall at pauses rather than where the engine
would put them, so a word here or there can differ.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from utils.audio import SAMPLE_RATE
from utils.transcription.engine import Engine
from utils.transcription.options import DecodeOptions
from utils.transcription.results import Segment
from utils.transcription.windows import fixed_windows, max_window_seconds, snap
from utils.vad import SpeechSpan, detect_speech

PROMPT_CHARS = 1000  # conditioning text kept (characters); the decoder keeps <= 223 tokens of it
RESET_TEMPERATURE = 0.5  # faster-whisper's prompt_reset_on_temperature (windowed.py's too)


@dataclasses.dataclass(frozen=True)
class Block:
    """One stretch of audio decoded on its own, in seconds from the start of the audio."""

    start: float
    end: float

    def samples(self, audio: np.ndarray) -> np.ndarray:
        """This block's part of 16 kHz mono `audio` (n,)."""
        return audio[round(self.start * SAMPLE_RATE) : round(self.end * SAMPLE_RATE)]


def stream_language(
    engine: Engine, samples: np.ndarray, options: DecodeOptions
) -> tuple[str | None, float]:
    """The language and its probability as `engine.transcribe` finds them (from the first 30 s
    of speech of the whole audio): options.language with 1.0 when set; (None, 0.0) when there is
    no speech."""
    if options.language is not None:
        return options.language, 1.0
    return engine.detect_language(samples, options)


def _pack(spans: Sequence[SpeechSpan], window: float) -> list[list[SpeechSpan]]:
    """Consecutive spans grouped while a group's extent (first start to last end, seconds) stays
    within `window`; a longer span makes a group of its own."""
    groups: list[list[SpeechSpan]] = []
    for span in spans:
        if groups and span.end - groups[-1][0].start <= window:
            groups[-1].append(span)
        else:
            groups.append([span])
    return groups


def plan_blocks(samples: np.ndarray, options: DecodeOptions, window: float) -> list[Block]:
    """Blocks covering 16 kHz mono `samples` (n,) end to end, each holding speech (VAD spans of
    options.vad, split at `window` seconds) that spans at most `window` seconds, cut in the
    middle of the pauses between spans. Without speech: no blocks when options.vad_filter
    (nothing would be decoded), else fixed windows of `window` seconds."""
    duration = samples.size / SAMPLE_RATE
    vad = dataclasses.replace(options.vad, max_speech_duration_s=window)
    spans = detect_speech(samples, vad) if samples.size else []
    if not spans and options.vad_filter:
        return []
    if not spans:
        return [Block(start, end) for start, end in fixed_windows(duration, window)]
    pairs = itertools.pairwise(_pack(spans, window))
    cuts = [snap((before[-1].end + after[0].start) / 2) for before, after in pairs]
    edges = [0.0, *cuts, duration]
    return [Block(start, end) for start, end in itertools.pairwise(edges)]


def _next_prompt(
    options: DecodeOptions, prompt: str | None, found: Sequence[Segment]
) -> str | None:
    """The initial prompt for the block after one that gave `found` under `prompt`: with
    condition_on_previous_text, the text so far (its last PROMPT_CHARS characters, cut at a
    space), reset after a decode hotter than RESET_TEMPERATURE, as the engines reset theirs;
    without it, none (the request's prompt conditions the first window only, as in the engines)."""
    if not options.condition_on_previous_text:
        return None
    if any(segment.temperature > RESET_TEMPERATURE for segment in found):
        return None
    text = (prompt or "") + "".join(segment.text for segment in found)
    if len(text) > PROMPT_CHARS:
        tail = text[-PROMPT_CHARS:]
        text = tail[tail.find(" ") + 1 :] if " " in tail else tail
    return text.strip() or None


def iter_segments(
    engine: Engine,
    samples: np.ndarray,
    options: DecodeOptions | None = None,
    *,
    block_seconds: float | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[Segment]:
    """Segments of 16 kHz mono float32 `samples` (n,) in time order, yielded block by block as
    each is decoded, with times in seconds from the start of `samples`.

    The language is detected once, on the whole audio, unless options.language is set; without
    speech nothing is yielded. Blocks are at most `block_seconds` of speech (default: the
    engine's window for the language, 30 s for most). `should_stop` is asked before each block;
    when it answers True, decoding stops there (closing the iterator does the same).
    """
    options = options or DecodeOptions()
    language, _ = stream_language(engine, samples, options)
    if language is None:
        return
    options = dataclasses.replace(options, language=language)
    rates = getattr(engine, "token_rates", None)
    window = block_seconds or max_window_seconds(language, engine.window_token_limit, rates)
    prompt = options.initial_prompt
    for block in plan_blocks(samples, options, window):
        if should_stop is not None and should_stop():
            return
        block_options = dataclasses.replace(options, initial_prompt=prompt)
        found = engine.transcribe(block.samples(samples), block_options).segments
        yield from (segment.shifted(block.start) for segment in found)
        prompt = _next_prompt(options, prompt, found)
