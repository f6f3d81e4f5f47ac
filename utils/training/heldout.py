"""Held-out evaluation of a transformers Whisper on one split of a dataset: corpus WER and CER
under the language-aware normalizer, the share of output letters in the expected script, and
repetition loops. Used by the training benchmark and its slow test, before and after training."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluation.scoring import score
from utils.amharic.script import script_shares
from utils.audio import N_SAMPLES, SAMPLE_RATE, load_audio
from utils.dataset.manifest import Utterance
from utils.training.data import read_utterances
from utils.transcription.guards import compression_ratio

LOOP_COMPRESSION = 2.4  # above this gzip ratio a transcript repeats itself (Whisper's threshold)
EXAMPLES_KEPT = 6


@dataclass(frozen=True)
class HeldoutReport:
    """Figures of one model on one split; rates are fractions (0.25 = 25%)."""

    split: str
    n: int
    wer: float
    cer: float
    script_share: float  # share of output letters in the language's script (Ethiopic for "am")
    loops: int  # transcripts that repeat themselves or run far past the reference's length
    audio_seconds: float
    decode_seconds: float
    examples: tuple[tuple[str, str], ...]  # (reference, hypothesis)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_utterances(dataset_dir: str | os.PathLike, split: str) -> list[Utterance]:
    """The utterances of `split`; ValueError naming the splits there are when it is empty."""
    utterances = read_utterances(dataset_dir)
    chosen = [u for u in utterances if u.split == split]
    if not chosen:
        present = sorted({u.split or "(none)" for u in utterances})
        raise ValueError(f"{dataset_dir}: no {split!r} utterances (splits: {', '.join(present)})")
    return chosen


def utterance_audio(root: Path, utterance: Utterance) -> np.ndarray:
    """(samples,) float32 at 16 kHz, cut to the utterance's start/end and to 30 s."""
    audio = load_audio(root / utterance.audio)
    begin = round((utterance.start or 0.0) * SAMPLE_RATE)
    end = len(audio) if utterance.end is None else round(utterance.end * SAMPLE_RATE)
    return audio[begin:end][:N_SAMPLES]


def script_suppression(model: torch.nn.Module, tokenizer: Any, language: str) -> dict[str, Any]:
    """`generate` arguments that keep a Ge'ez vocabulary's Ethiopic tokens out of another
    language's transcript (see `foreign_script_suppression`); none for other models."""
    from utils.geez_vocab.alphabet import GEEZ_LANGUAGES, ethiopic_token_ids

    if language in GEEZ_LANGUAGES:
        return {}
    extra = list(ethiopic_token_ids(tokenizer.get_vocab()))
    if not extra:
        return {}
    return {"suppress_tokens": list(model.generation_config.suppress_tokens or []) + extra}


@torch.no_grad()
def transcribe(
    model: torch.nn.Module,
    processor: Any,
    audios: Sequence[np.ndarray],
    language: str,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 224,
    task: str = "transcribe",
) -> list[str]:
    """Greedy transcripts of 16 kHz clips (each at most 30 s), `batch_size` at a time, by a
    Whisper or its PEFT wrapper. The model is given back in the mode it had, and the global RNG
    state is untouched (a run measuring mid-training stays exactly resumable)."""
    parameter = next(model.parameters())
    forked = [parameter.device.index or 0] if parameter.device.type == "cuda" else []
    was_training = model.training
    texts: list[str] = []
    suppress = script_suppression(model, processor.tokenizer, language)
    with torch.random.fork_rng(devices=forked):
        model.eval()
        try:
            for first in range(0, len(audios), batch_size):
                features = processor.feature_extractor(
                    list(audios[first : first + batch_size]), sampling_rate=SAMPLE_RATE,
                    return_tensors="pt",
                ).input_features  # fmt: skip
                ids = model.generate(
                    input_features=features.to(parameter.device, parameter.dtype),
                    language=language, task=task, max_new_tokens=max_new_tokens,
                    num_beams=1, do_sample=False, use_cache=True, **suppress,
                )  # fmt: skip
                decoded = processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
                texts += [text.strip() for text in decoded]
        finally:
            model.train(was_training)
    return texts


def is_loop(hypothesis: str, reference: str) -> bool:
    """A repetition loop: the transcript compresses like a repeated phrase, or runs on to more
    than twice its reference's length (plus slack for short references)."""
    if len(hypothesis) < 20:
        return False
    too_long = len(hypothesis) > 2 * len(reference) + 20
    return too_long or compression_ratio(hypothesis) > LOOP_COMPRESSION


def script_share(texts: Sequence[str], language: str) -> float:
    """Share of the non-space characters of `texts` in the language's script: Ethiopic for
    Amharic (and Tigrinya), else Latin letters; NaN when there are no characters."""
    shares = [script_shares(t) for t in texts]
    total = sum(s.characters for s in shares)
    if total == 0:
        return float("nan")
    ethiopic = language in ("am", "ti")
    return sum((s.ethiopic if ethiopic else s.latin) * s.characters for s in shares) / total


def heldout_report(
    model: torch.nn.Module,
    processor: Any,
    dataset_dir: str | os.PathLike,
    *,
    split: str = "test",
    language: str = "am",
    batch_size: int = 8,
    limit: int | None = None,
    max_new_tokens: int = 224,
    progress: Callable[[int, int], None] | None = None,
) -> HeldoutReport:
    """Transcribe `split` of the dataset greedily and score it (see `HeldoutReport`)."""
    root = Path(dataset_dir)
    utterances = split_utterances(root, split)[:limit]
    audios = [utterance_audio(root, u) for u in utterances]
    references = [u.text for u in utterances]
    started = time.perf_counter()
    hypotheses: list[str] = []
    for first in range(0, len(audios), batch_size):
        hypotheses += transcribe(model, processor, audios[first : first + batch_size], language,
                                 batch_size=batch_size, max_new_tokens=max_new_tokens)  # fmt: skip
        if progress:
            progress(len(hypotheses), len(audios))
    decode_seconds = time.perf_counter() - started
    scores = score(references, hypotheses, language, bootstrap=0)
    return HeldoutReport(
        split=split,
        n=len(utterances),
        wer=scores.wer,
        cer=scores.cer,
        script_share=script_share(hypotheses, language),
        loops=sum(is_loop(h, r) for h, r in zip(hypotheses, references, strict=True)),
        audio_seconds=sum(len(a) for a in audios) / SAMPLE_RATE,
        decode_seconds=decode_seconds,
        examples=tuple(zip(references, hypotheses, strict=True))[:EXAMPLES_KEPT],
    )
