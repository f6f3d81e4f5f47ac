"""Reading long recordings block by block, so memory does not grow with their length.

A two-hour file is 460 MB as 16 kHz float32 and about as much again as Whisper features;
reading it in blocks keeps a process at the memory of a ten-minute file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from utils.audio import SAMPLE_RATE, AudioDecodeError, AudioInfo

LONG_AUDIO_SECONDS = 15 * 60  # longer files are transcribed block by block
BLOCK_SECONDS = 5 * 60  # per-block cost (features, VAD) scales with it


def probe_audio(path: str | os.PathLike) -> AudioInfo | None:
    """Duration, rate and channels read from the header; None when the header does not say."""
    try:
        import soundfile as sf

        info = sf.info(str(path))
        return AudioInfo(info.duration, info.samplerate, info.channels, info.format.lower())
    except (RuntimeError, OSError, ValueError):
        pass  # not a libsndfile format: ask FFmpeg
    try:
        import av

        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio or container.duration is None:
                return None
            stream = container.streams.audio[0]
            return AudioInfo(
                container.duration / 1_000_000,
                stream.rate,
                stream.channels,
                stream.codec_context.name,
            )
    except (OSError, ValueError, av.error.FFmpegError):
        return None


def is_long_audio(path: str | os.PathLike) -> bool:
    if not Path(path).is_file():
        return False
    info = probe_audio(path)
    return info is not None and info.duration > LONG_AUDIO_SECONDS


def _mono(block: np.ndarray) -> np.ndarray:
    return block.mean(axis=1) if block.ndim == 2 else block


def _soundfile_blocks(path: str, frames: int) -> Iterator[tuple[np.ndarray, int]]:
    import soundfile as sf

    with sf.SoundFile(path) as handle:
        for block in handle.blocks(blocksize=frames, dtype="float32", always_2d=True):
            yield _mono(block), handle.samplerate


def _pyav_blocks(path: str, frames: int) -> Iterator[tuple[np.ndarray, int]]:
    import av

    with av.open(path, metadata_errors="ignore") as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
        pending: list[np.ndarray] = []
        size = 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                pending.append(out.to_ndarray().reshape(-1))
                size += pending[-1].size
            if size >= frames:
                yield np.concatenate(pending), stream.rate
                pending, size = [], 0
        if pending:
            yield np.concatenate(pending), stream.rate


def _soundfile_reads(path: str) -> bool:
    try:
        import soundfile as sf

        sf.info(path)
        return True
    except (RuntimeError, OSError):
        return False


def iter_audio_blocks(
    path: str | os.PathLike, block_seconds: float | None = None
) -> Iterator[tuple[np.ndarray, bool]]:
    """(block, is_last): 16 kHz mono float32 blocks of about `block_seconds`, shape (n,).

    Resampling is streamed, so block edges leave no clicks or gaps. One source block is read
    ahead, to know which block is the last.
    """
    import soxr

    block_seconds = block_seconds or BLOCK_SECONDS
    name = str(path)
    info = probe_audio(name)
    if info is None:
        raise AudioDecodeError(f"{name}: not readable as audio (no audio stream or duration)")
    reader = _soundfile_blocks if _soundfile_reads(name) else _pyav_blocks
    resampler = None
    if info.sample_rate != SAMPLE_RATE:
        resampler = soxr.ResampleStream(info.sample_rate, SAMPLE_RATE, 1, dtype="float32")
    previous = None
    for block, _rate in reader(name, int(block_seconds * info.sample_rate)):
        if previous is not None:
            yield (resampler.resample_chunk(previous) if resampler else previous), False
        previous = block
    if previous is not None:
        yield (resampler.resample_chunk(previous, last=True) if resampler else previous), True
