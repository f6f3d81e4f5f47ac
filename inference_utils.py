"""Transcribe audio files from the command line; the engine's public entry points live here too.

    python inference_utils.py AUDIO [AUDIO ...] [--model NAME_OR_PATH] [--language LANG]
        [--task transcribe|translate] [--format txt|srt|vtt|json|tsv] [--output-dir DIR]
        [--beam-size N] [--batch-size N] [--device auto|cpu|cuda]

Writes one file per input, named after it (NAME.json for NAME.wav). A bad input gets one error
line and the others go on; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from utils.audio import SAMPLE_RATE, AudioDecodeError, decode_audio, load_audio
from utils.transcription import DecodeOptions, Segment, TranscriptionResult, Word
from utils.transcription.engine import choose_device, load_engine
from utils.transcription.writers import FORMATS, render, write_result

__all__ = [
    "SAMPLE_RATE",
    "AudioDecodeError",
    "DecodeOptions",
    "Segment",
    "TranscriptionResult",
    "Word",
    "choose_device",
    "decode_audio",
    "load_audio",
    "load_engine",
    "main",
    "render",
    "transcribe_files",
]


def transcribe_files(
    paths: Sequence[str],
    model: str | None = None,
    options: DecodeOptions | None = None,
    batch_size: int = 1,
    device: str = "auto",
    progress=None,
) -> list[TranscriptionResult | Exception]:
    """Transcribe many files: batched across files when `batch_size` > 1 and the model is a
    CTranslate2 one, else one after another. Failures come back as exceptions, in order."""
    engine = load_engine(model, device=device)
    options = options or DecodeOptions()
    if batch_size > 1 and engine.kind == "ctranslate2":
        from utils.transcription.batch import BatchTranscriber

        return BatchTranscriber(engine, batch_size).transcribe(list(paths), options, progress)
    outcomes: list[TranscriptionResult | Exception] = []
    for index, path in enumerate(paths):
        try:
            outcomes.append(engine.transcribe(path, options, source=str(path)))
        except (ValueError, OSError) as exc:
            outcomes.append(exc)
        if progress:
            progress(index + 1, len(paths))
    return outcomes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Transcribe or translate audio files with Whisper."
    )
    parser.add_argument(
        "audio", nargs="+", help="audio files (any format FFmpeg or libsndfile reads)"
    )
    parser.add_argument("--model", default=None, help="registry name, model directory or hub id")
    parser.add_argument("--language", default=None, help="language code; detected when omitted")
    parser.add_argument("--task", choices=("transcribe", "translate"), default="transcribe")
    parser.add_argument("--format", choices=FORMATS, default="txt")
    parser.add_argument("--output-dir", default=".", type=Path)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = DecodeOptions(task=args.task, language=args.language, beam_size=args.beam_size)
        outcomes = transcribe_files(args.audio, args.model, options, args.batch_size, args.device)
    except (ValueError, LookupError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for path, outcome in zip(args.audio, outcomes, strict=True):
        if isinstance(outcome, Exception):
            failed += 1
            message = str(outcome)
            print(
                f"error: {message if str(path) in message else f'{path}: {message}'}",
                file=sys.stderr,
            )
            continue
        written = write_result(outcome, args.format, args.output_dir, Path(path).stem)
        print(f"{path} -> {written}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
