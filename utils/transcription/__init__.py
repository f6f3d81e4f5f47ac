"""The transcription engine: options, typed results, engines, windowing and writers."""

from utils.transcription.options import DecodeOptions, OptionNotSupportedError
from utils.transcription.results import Segment, Timings, TranscriptionResult, Word

__all__ = [
    "DecodeOptions",
    "OptionNotSupportedError",
    "Segment",
    "Timings",
    "TranscriptionResult",
    "Word",
]
