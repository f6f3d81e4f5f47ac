"""English forgetting check: WER of a Whisper on real English speech (Debian's asterisk prompts,
8 kHz telephone recordings) before and after fine-tuning, so a run shows what it cost the
model's English.

The prompts are a fixed, deterministic choice among the installed ones (package
asterisk-core-sounds-en-wav); when they are missing the check is skipped, never failed.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPT_FILES = (
    SOUNDS / "core-sounds-en.txt",
    Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"),
    Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt"),
)
DEFAULT_COUNT = 8
MIN_SECONDS, MAX_SECONDS = 1.5, 6.0  # prompt durations kept: short, but more than a word
MIN_WORDS = 3
FORGETTING_NAME = "forgetting.json"  # RUN_DIR file keeping the "before" figure across resumes
METRIC_BEFORE, METRIC_AFTER = "english/wer_before", "english/wer_after"


class PromptsMissingError(FileNotFoundError):
    """The asterisk English prompts (or their transcripts) are not installed."""


@dataclass(frozen=True)
class Prompt:
    name: str
    path: Path  # the 8 kHz WAV file
    text: str  # the reference transcript


@dataclass(frozen=True)
class ForgettingReport:
    """English WER (fractions; 0.25 = 25 %) of the base model and of the fine-tuned model on
    the same `n_utterances` prompts. `wer_after` is None until the run has finished."""

    wer_before: float
    wer_after: float | None
    n_utterances: int
    prompts: tuple[str, ...]  # prompt names, in scoring order

    @property
    def change(self) -> float | None:
        """wer_after - wer_before (positive = English got worse), or None before the end."""
        return None if self.wer_after is None else self.wer_after - self.wer_before

    def metrics(self) -> dict[str, Any]:
        return {METRIC_BEFORE: self.wer_before, METRIC_AFTER: self.wer_after,
                "english/utterances": self.n_utterances}  # fmt: skip

    def describe(self) -> str:
        after = "n/a" if self.wer_after is None else f"{self.wer_after:.1%}"
        return (
            f"English WER on {self.n_utterances} asterisk prompts: "
            f"{self.wer_before:.1%} before, {after} after fine-tuning"
        )


def _transcript_lines() -> list[str]:
    for path in TRANSCRIPT_FILES:
        if path.is_file():
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
                return handle.read().splitlines()
    raise PromptsMissingError(
        "English prompts missing: install the Debian package asterisk-core-sounds-en-wav "
        f"(looked for {', '.join(str(p) for p in TRANSCRIPT_FILES)})"
    )


@functools.cache
def available_prompts() -> tuple[Prompt, ...]:
    """Every installed prompt of plain speech (no [tones]) between MIN_SECONDS and MAX_SECONDS
    with at least MIN_WORDS words, sorted by name. Raises PromptsMissingError."""
    import soundfile as sf

    prompts = []
    for line in _transcript_lines():
        name, sep, text = (part.strip() for part in line.partition(":"))
        path = SOUNDS / f"{name}.wav"
        if not sep or line.startswith(";") or "[" in text or "/" in name or not path.is_file():
            continue
        if len(re.findall(r"[A-Za-z]+", text)) < MIN_WORDS:
            continue
        if MIN_SECONDS <= sf.info(str(path)).duration <= MAX_SECONDS:
            prompts.append(Prompt(name, path, text))
    if not prompts:
        raise PromptsMissingError(f"no usable English prompts in {SOUNDS}")
    return tuple(sorted(prompts, key=lambda p: p.name))


def choose_prompts(n: int = DEFAULT_COUNT) -> tuple[Prompt, ...]:
    """`n` prompts spread evenly over the sorted list: the same ones on every call and machine
    with the same package. Raises PromptsMissingError."""
    pool = available_prompts()
    n = min(max(n, 1), len(pool))
    return tuple(pool[(i * len(pool)) // n] for i in range(n))


@functools.cache
def _audio(path: Path) -> np.ndarray:
    from utils.audio import load_audio

    return load_audio(path)  # resampled to 16 kHz mono float32


@torch.no_grad()
def transcribe_english(
    model: torch.nn.Module,
    processor: Any,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int = 96,
    batch_size: int = 8,
) -> list[str]:
    """Greedy English transcripts of `prompts` by `model` (a Whisper or its PEFT wrapper).
    The model is given back in the mode it had; the RNG is untouched."""
    from utils.training.heldout import transcribe

    audios = [_audio(p.path) for p in prompts]
    return transcribe(model, processor, audios, "en", batch_size=batch_size,
                      max_new_tokens=max_new_tokens)  # fmt: skip


def score_english(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER (fraction) under the English normalizer."""
    from evaluation.scoring import score

    return score(references, hypotheses, "en", bootstrap=0).wer


def english_wer(
    model: torch.nn.Module, processor: Any, n: int = DEFAULT_COUNT, *, max_new_tokens: int = 96
) -> float:
    """WER (fraction) of `model` on `n` fixed English asterisk prompts, greedy decoding; for
    benchmarks and the forgetting check. Raises PromptsMissingError when not installed."""
    prompts = choose_prompts(n)
    hypotheses = transcribe_english(model, processor, prompts, max_new_tokens=max_new_tokens)
    return score_english([p.text for p in prompts], hypotheses)


# -- the check inside a run ---------------------------------------------------------------------
def stored_before(run_dir: str | os.PathLike) -> ForgettingReport | None:
    """The "before" figure a previous start of this run kept in RUN_DIR/forgetting.json (a
    resumed run keeps it: same base model, same prompts), or None."""
    from utils.training.artifacts import read_json

    saved = read_json(Path(run_dir) / FORGETTING_NAME)
    prompts = tuple(saved.get("prompts", ()))
    if not isinstance(saved.get("wer_before"), float) or not prompts:
        return None
    return ForgettingReport(saved["wer_before"], None, len(prompts), prompts)


def measure_before(
    model: torch.nn.Module,
    processor: Any,
    run_dir: str | os.PathLike,
    *,
    n: int = DEFAULT_COUNT,
    max_new_tokens: int = 96,
) -> ForgettingReport:
    """The base model's English WER on `n` prompts, kept in RUN_DIR/forgetting.json.
    Raises PromptsMissingError."""
    prompts = choose_prompts(n)
    wer = english_wer(model, processor, n, max_new_tokens=max_new_tokens)
    report = ForgettingReport(wer, None, len(prompts), tuple(p.name for p in prompts))
    _save(Path(run_dir) / FORGETTING_NAME, report)
    return report


def measure_after(
    before: ForgettingReport,
    model: torch.nn.Module,
    processor: Any,
    run_dir: str | os.PathLike,
    *,
    max_new_tokens: int = 96,
) -> ForgettingReport:
    """`before` completed with the fine-tuned model's WER on the same prompts (also stored)."""
    wer = english_wer(model, processor, before.n_utterances, max_new_tokens=max_new_tokens)
    report = ForgettingReport(before.wer_before, wer, before.n_utterances, before.prompts)
    _save(Path(run_dir) / FORGETTING_NAME, report)
    return report


def _save(path: Path, report: ForgettingReport) -> None:
    from utils.training.artifacts import write_json

    fields = {"wer_before": report.wer_before, "wer_after": report.wer_after,
              "n_utterances": report.n_utterances, "prompts": list(report.prompts)}  # fmt: skip
    write_json(path, fields)


# -- inside a run: never fails it ---------------------------------------------------------------
Log = Callable[[str, str], None]  # (message, level) -> None, e.g. EventWriter.log
RUN_ERRORS = (RuntimeError, ValueError, OSError)  # a failed check is reported, not fatal


def check_before(
    model: torch.nn.Module,
    processor: Any,
    run_dir: str | os.PathLike,
    *,
    n: int,
    resume: bool,
    device: str,
    log: Log,
    max_new_tokens: int = 96,
) -> ForgettingReport | None:
    """The run's "before" figure: kept from the first start on resume, else measured on
    `device` ("cpu" or "cuda"; the model goes back to where it was). None when off (`n` 0),
    the prompts are missing or the check failed (each logged)."""
    if not n:
        return None
    kept = stored_before(run_dir) if resume else None
    if kept is not None:
        return kept
    try:
        choose_prompts(n)  # PromptsMissingError before the model moves
        with _on_device(model, device):
            report = measure_before(model, processor, run_dir, n=n, max_new_tokens=max_new_tokens)
    except PromptsMissingError as exc:
        log(f"English forgetting check skipped: {exc}", "info")
        return None
    except RUN_ERRORS as exc:
        log(f"English forgetting check failed before training: {exc}", "warning")
        return None
    log(f"English WER of the base model: {report.wer_before:.1%} on "
        f"{report.n_utterances} asterisk prompts", "info")  # fmt: skip
    return report


def check_after(
    before: ForgettingReport | None,
    model: torch.nn.Module,
    processor: Any,
    run_dir: str | os.PathLike,
    *,
    device: str,
    log: Log,
    max_new_tokens: int = 96,
) -> ForgettingReport | None:
    """`before` completed by the fine-tuned `model` (None when there is no `before` or the
    check failed, logged)."""
    if before is None:
        return None
    try:
        with _on_device(model, device):
            return measure_after(before, model, processor, run_dir, max_new_tokens=max_new_tokens)
    except (PromptsMissingError, *RUN_ERRORS) as exc:
        log(f"English forgetting check failed after training: {exc}", "warning")
        return None


@contextlib.contextmanager
def _on_device(model: torch.nn.Module, device: str) -> Iterator[None]:
    home = next(model.parameters()).device
    model.to(device)
    try:
        yield
    finally:
        model.to(home)
