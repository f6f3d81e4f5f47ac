"""Long recordings, block by block: memory stays that of one block however long the file is.

Each block is cut in the middle of its quietest half second near the end (rarely inside a word)
and the rest is carried into the next block. The language is detected once, on the first block
with speech.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import time
from collections.abc import Callable

import numpy as np

from utils.audio import SAMPLE_RATE
from utils.audio_stream import iter_audio_blocks, probe_audio
from utils.transcription.options import DecodeOptions
from utils.transcription.results import Segment, Timings, TranscriptionResult

CUT_SEARCH_SECONDS = 30.0  # the cut is sought in the last 30 s of a block
QUIET_SECONDS = 0.5  # ... as the middle of its quietest half second
FRAME = SAMPLE_RATE // 50  # 20 ms


def quietest_cut(
    samples: np.ndarray,
    search_seconds: float = CUT_SEARCH_SECONDS,
    quiet_seconds: float = QUIET_SECONDS,
) -> int:
    """Sample index at the middle of the quietest `quiet_seconds` within the last
    `search_seconds` of `samples` (16 kHz mono). Cutting mid-pause, rather than at its first quiet
    frame, leaves both blocks some silence at the cut: speech that starts right at a window's
    first frame is often missed."""
    start = max(0, samples.size - int(search_seconds * SAMPLE_RATE))
    tail = samples[start:]
    usable = tail[: tail.size // FRAME * FRAME].reshape(-1, FRAME)
    if usable.size == 0:
        return samples.size
    energy = (usable.astype(np.float64) ** 2).mean(axis=1)
    width = max(1, min(energy.size, round(quiet_seconds * SAMPLE_RATE / FRAME)))
    summed = np.convolve(energy, np.ones(width), mode="valid")  # energy of each `width` frames
    quietest = summed <= summed.min() * (1 + 1e-6) + 1e-12
    first, last = _longest_run(quietest)
    middle = (first + last) // 2 + width // 2  # frame at the middle of the quietest stretch
    return start + middle * FRAME + FRAME // 2


def _longest_run(flags: np.ndarray) -> tuple[int, int]:
    """(first, last) index of the longest run of True in a boolean array with at least one."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int(np.argmax(ends - starts))
    return int(starts[longest]), int(ends[longest]) - 1


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc), so peaks do not stack up across blocks."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def transcribe_long(
    engine,
    path: str | os.PathLike,
    options: DecodeOptions,
    progress: Callable[[float], None] | None,
    source: str,
) -> TranscriptionResult:
    """`engine.transcribe_samples` over the blocks of `path`, with times made absolute."""
    started = time.perf_counter()
    info = probe_audio(path)
    total = info.duration if info else 0.0
    segments: list[Segment] = []
    language, probability = options.language, 1.0
    carry = np.zeros(0, dtype=np.float32)
    offset = 0.0  # seconds of audio before `carry`
    for block, last in iter_audio_blocks(path):
        audio = np.concatenate([carry, block]) if carry.size else block
        del block
        cut = audio.size if last else quietest_cut(audio)
        piece, carry = audio[:cut], audio[cut:].copy()  # the copy lets `audio` be freed
        del audio
        found, detected, chance = engine.transcribe_samples(
            piece, dataclasses.replace(options, language=language)
        )
        if language is None and detected is not None:
            language, probability = detected, chance
        segments.extend(s.shifted(offset) for s in found)
        offset += piece.size / SAMPLE_RATE
        del piece
        release_free_memory()
        if progress and total:
            progress(min(0.99, offset / total))
    if progress:
        progress(1.0)
    return TranscriptionResult.from_segments(
        segments,
        language,
        probability,
        offset,
        Timings(load=engine.load_seconds, decode=time.perf_counter() - started),
        info,
        source,
    )
