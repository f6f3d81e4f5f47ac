"""Turning form values into engine options and engine results into what the UI shows.

Pure functions (no gradio), so they are tested without a browser.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from utils.transcription import DecodeOptions, TranscriptionResult
from utils.transcription.writers import write_result
from utils.vad import VadOptions

AUTO_LANGUAGE = "auto"
DOWNLOAD_FORMATS = ("srt", "vtt", "json", "txt")
CONFIDENCE_COLORS = {"high": "#22c55e", "medium": "#f59e0b", "low": "#ef4444"}


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in str(text).replace(" ", "").split(",") if part)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in str(text).replace(" ", "").split(",") if part)


def _optional(value: Any, cast=float):
    return None if value in (None, "", 0, 0.0) else cast(value)


def options_from_form(values: dict[str, Any]) -> DecodeOptions:
    """DecodeOptions from the Transcribe tab's controls, keyed by option name.

    Text fields carry lists (temperatures "0,0.2,0.4", suppress tokens "-1", one vocabulary word
    per line). Raises ValueError with the offending field named.
    """
    defaults = DecodeOptions()
    try:
        vad = dataclasses.replace(
            VadOptions(),
            threshold=float(values.get("vad_threshold", VadOptions().threshold)),
            min_silence_duration_ms=int(
                values.get("vad_min_silence_ms", VadOptions().min_silence_duration_ms)
            ),
        )
        language = values.get("language") or AUTO_LANGUAGE
        vocabulary = tuple(str(values.get("vocabulary") or "").splitlines())
        return DecodeOptions(
            task=values.get("task", defaults.task),
            language=None if language == AUTO_LANGUAGE else language,
            beam_size=int(values.get("beam_size", defaults.beam_size)),
            best_of=int(values.get("best_of", defaults.best_of)),
            patience=float(values.get("patience", defaults.patience)),
            length_penalty=float(values.get("length_penalty", defaults.length_penalty)),
            temperature=_floats(values.get("temperature", "0,0.2,0.4,0.6")),
            repetition_penalty=float(values.get("repetition_penalty", 1.0)),
            no_repeat_ngram_size=int(values.get("no_repeat_ngram_size", 0)),
            initial_prompt=values.get("initial_prompt") or None,
            hotwords=values.get("hotwords") or None,
            suppress_tokens=_ints(values.get("suppress_tokens", "-1")),
            vocabulary=vocabulary,
            vocabulary_mode=values.get("vocabulary_mode", "bias"),
            vad_filter=bool(values.get("vad_filter", True)),
            vad=vad,
            condition_on_previous_text=bool(values.get("condition_on_previous_text", False)),
            hallucination_silence_threshold=_optional(
                values.get("hallucination_silence_threshold")
            ),
            word_timestamps=bool(values.get("word_timestamps", True)),
            max_new_tokens=_optional(values.get("max_new_tokens"), int),
        )
    except ValueError as exc:
        raise ValueError(f"invalid decoding setting: {exc}") from exc


def confidence_label(probability: float) -> str:
    if probability >= 0.85:
        return "high"
    return "medium" if probability >= 0.5 else "low"


def highlighted_words(result: TranscriptionResult) -> list[tuple[str, str | None]]:
    """(word, confidence label) pairs for gr.HighlightedText; segment text when no words."""
    if not result.words:
        return [(segment.text, None) for segment in result.segments]
    return [(word.word, confidence_label(word.probability)) for word in result.words]


SEGMENT_COLUMNS = ["file", "start", "end", "text", "avg_logprob", "no_speech_prob"]


def segment_rows(result: TranscriptionResult) -> list[list[Any]]:
    name = Path(result.source).name if result.source else ""
    return [
        [
            name,
            round(s.start, 2),
            round(s.end, 2),
            s.text.strip(),
            round(s.avg_logprob, 3),
            round(s.no_speech_prob, 3),
        ]
        for s in result.segments
    ]


def audio_facts(result: TranscriptionResult) -> dict[str, Any]:
    info = result.audio_info
    facts: dict[str, Any] = {
        "file": Path(result.source).name if result.source else "",
        "duration_s": round(result.duration, 2),
        "language": result.language,
        "language_probability": round(result.language_probability, 3),
        "decode_s": round(result.timings.decode, 2),
        "rtf": round(result.timings.rtf(result.duration), 3),
    }
    if info is not None:
        facts |= {"sample_rate": info.sample_rate, "channels": info.channels, "codec": info.codec}
    return facts


def write_downloads(result: TranscriptionResult, directory: Path) -> list[Path]:
    """The result as SRT, VTT, JSON and TXT files under `directory`, named after the source."""
    stem = Path(result.source).stem if result.source else "transcript"
    return [write_result(result, fmt, directory, stem) for fmt in DOWNLOAD_FORMATS]
