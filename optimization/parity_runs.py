"""Running one model over a held-out set for the parity check: engines, outputs, references.

Every model runs greedy (beam 1, temperature 0, no VAD, no conditioning on previous text) with
the held-out language forced, so differences come from the weights and the runtime alone; the
language is also detected on each clip, which is what a config without `lang_ids` breaks.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimization.heldout_sets import HeldoutSet
from utils.model_store import ModelKind, _kind_of
from utils.transcription.options import DecodeOptions

EOT = 50257  # ids below it are text tokens in every Whisper vocabulary
FLOAT_PRECISIONS = ("float32", "float16", "bfloat16", "fp32", "fp16")
Progress = Callable[[str, float], None] | None


@dataclass(frozen=True)
class Candidate:
    """A model in the check: a directory, its display name and the precision it holds."""

    path: Path
    name: str
    precision: str
    compute_type: str = "default"  # CTranslate2: how to load it ("default": as saved)


@dataclass(frozen=True)
class SystemOutput:
    """One model's greedy outputs on a held-out set; `error` says why it could not run."""

    kind: str
    hypotheses: tuple[str, ...] = ()
    tokens: tuple[tuple[int, ...], ...] = ()  # text token ids per clip (no specials/timestamps)
    languages: tuple[str | None, ...] = ()  # detected per clip
    load_seconds: float = 0.0
    decode_seconds: float = 0.0
    error: str = ""


def parity_options(language: str) -> DecodeOptions:
    return DecodeOptions(
        language=language, beam_size=1, temperature=(0.0,), vad_filter=False,
        word_timestamps=False, condition_on_previous_text=False,
    )  # fmt: skip


def open_engine(candidate: Candidate, device: str = "cpu") -> Any:
    """A fresh engine (not the process-wide cache: load times are measured and the memory goes
    when the check ends). The source runs in float32; CTranslate2 as `compute_type` says."""
    from utils.transcription import engine

    kind: ModelKind | None = _kind_of(candidate.path)
    if kind is None:
        raise ValueError(f"{candidate.path}: not a model directory the check can run")
    compute = "float32" if kind == "transformers" else candidate.compute_type
    return engine.open_engine(str(candidate.path), kind, device, compute)


def _detected(engine: Any, audio: Any, options: DecodeOptions) -> str | None:
    try:
        return engine.detect_language(audio, options)[0]
    except (IndexError, KeyError, ValueError, RuntimeError) as exc:
        raise RuntimeError(
            f"language detection fails ({type(exc).__name__}: {exc}); "
            "a config.json without lang_ids does this"
        ) from exc


def _decode_all(engine: Any, heldout: HeldoutSet, progress: Progress) -> SystemOutput:
    options = parity_options(heldout.language)
    hypotheses, tokens, languages, started = [], [], [], time.perf_counter()
    for index, audio in enumerate(heldout.audios):
        result = engine.transcribe(audio, options)
        hypotheses.append(result.text)
        tokens.append(tuple(t for s in result.segments for t in s.tokens if t < EOT))
        languages.append(_detected(engine, audio, options))
        if progress:
            progress(f"clip {index + 1}/{heldout.n}", (index + 1) / heldout.n)
    return SystemOutput(engine.kind, tuple(hypotheses), tuple(tokens), tuple(languages),
                        engine.load_seconds, time.perf_counter() - started)  # fmt: skip


def run_system(
    candidate: Candidate, heldout: HeldoutSet, device: str = "cpu", progress: Progress = None
) -> SystemOutput:
    """Load `candidate` and decode every clip; a model that fails to load or decode gives an
    output whose `error` names the failure (a broken export is flagged, not a crash)."""
    kind = _kind_of(candidate.path) or "unknown"
    try:
        engine = open_engine(candidate, device)
        return _decode_all(engine, heldout, progress)
    except (ValueError, RuntimeError, OSError, IndexError, KeyError) as exc:
        return SystemOutput(kind, error=f"{type(exc).__name__}: {exc}")


def needs_matched_reference(kind: str, precision: str) -> bool:
    """Integer CTranslate2 weights drift a few tokens from float32 by design; their token
    agreement is measured against the source converted at the same quantization instead."""
    return kind == "ctranslate2" and precision not in FLOAT_PRECISIONS


class ReferenceBuilder:
    """The source converted by CTranslate2 at an export's quantization, once per quantization
    per check (temporary directories): what a correct integer export must reproduce. Not the
    float32 conversion quantized at load: CTranslate2 quantizes at conversion and at load by
    different code, and on a fine-tuned Ge'ez model 4 of 40 Amharic clips then differ by a
    token between the two."""

    def __init__(self, source_hf_dir: Path) -> None:
        self.source_hf_dir = source_hf_dir
        self._temporary: dict[str, tempfile.TemporaryDirectory] = {}

    def reference(self, candidate: Candidate) -> Candidate:
        from optimization.ct2_export import convert_to_ct2

        precision = candidate.precision
        if precision not in self._temporary:
            self._temporary[precision] = tempfile.TemporaryDirectory(prefix="parity-reference-")
            convert_to_ct2(self.source_hf_dir, Path(self._temporary[precision].name), precision)
        return Candidate(Path(self._temporary[precision].name), f"source as {precision}",
                         precision)  # fmt: skip

    def close(self) -> None:
        for temporary in self._temporary.values():
            temporary.cleanup()
        self._temporary.clear()
