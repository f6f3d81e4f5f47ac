"""Transcript writers: txt, srt, vtt, json, tsv."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from utils.transcription.results import TranscriptionResult

FORMATS = ("txt", "srt", "vtt", "json", "tsv")


def format_timestamp(seconds: float, decimal_marker: str = ".", always_hours: bool = False) -> str:
    """`seconds` as [HH:]MM:SS.mmm (SRT uses ',' as the decimal marker)."""
    milliseconds = max(0, round(seconds * 1000))
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    secs, milliseconds = divmod(milliseconds, 1000)
    prefix = f"{hours:02d}:" if always_hours or hours else ""
    return f"{prefix}{minutes:02d}:{secs:02d}{decimal_marker}{milliseconds:03d}"


def to_txt(result: TranscriptionResult) -> str:
    return "\n".join(segment.text.strip() for segment in result.segments) + "\n"


def to_srt(result: TranscriptionResult) -> str:
    blocks = []
    for index, segment in enumerate(result.segments, 1):
        start = format_timestamp(segment.start, ",", always_hours=True)
        end = format_timestamp(segment.end, ",", always_hours=True)
        blocks.append(f"{index}\n{start} --> {end}\n{segment.text.strip()}\n")
    return "\n".join(blocks)


def to_vtt(result: TranscriptionResult) -> str:
    blocks = ["WEBVTT\n"]
    for segment in result.segments:
        start, end = format_timestamp(segment.start), format_timestamp(segment.end)
        blocks.append(f"{start} --> {end}\n{segment.text.strip()}\n")
    return "\n".join(blocks)


def to_tsv(result: TranscriptionResult) -> str:
    """start and end in integer milliseconds, as openai-whisper writes them."""
    rows = ["start\tend\ttext"]
    for segment in result.segments:
        text = segment.text.strip().replace("\t", " ")
        rows.append(f"{round(segment.start * 1000)}\t{round(segment.end * 1000)}\t{text}")
    return "\n".join(rows) + "\n"


def to_json(result: TranscriptionResult) -> str:
    return json.dumps(result.to_dict(), ensure_ascii=False, indent=2)


WRITERS: dict[str, Callable[[TranscriptionResult], str]] = {
    "txt": to_txt,
    "srt": to_srt,
    "vtt": to_vtt,
    "json": to_json,
    "tsv": to_tsv,
}


def render(result: TranscriptionResult, fmt: str) -> str:
    if fmt not in WRITERS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return WRITERS[fmt](result)


def write_result(result: TranscriptionResult, fmt: str, output_dir: Path, stem: str) -> Path:
    """Write `result` as `output_dir/stem.fmt` (UTF-8) and return the path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{stem}.{fmt}"
    path.write_text(render(result, fmt), encoding="utf-8")
    return path
