"""Calibration for FFN pruning: mean FFN activations of a Whisper on audio, and that audio.

`ffn_activations` runs the unpruned model over calibration clips while it greedily transcribes
them and averages |GELU(fc1(x))| per neuron; `optimization.pruning_core.neuron_importance` ranks
the neurons by it. On Whisper base this ranking kept the model usable (FFN 75% kept: WER 13%)
where ranking by weights alone was worse than random (WER 100%; docs/pruning.md).

The clips come from the caller, else from `resolve_calibration`'s default: real English speech
(`optimization.heldout_sets.english_heldout`, Debian's asterisk prompts, offline), which suits
Whisper's own English-only and multilingual checkpoints. A studio fine-tune on another language
is refused there: its neurons would be ranked on speech it was not tuned for.

The plain KV-cached decoding here (`encode`, `transcribe_prompt`, `decode_steps`) is shared with
the equal-work timing of `optimization.pruning_eval`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from transformers import WhisperForConditionalGeneration
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutput

from optimization.heldout_sets import HeldoutSet, dataset_heldout, english_heldout
from utils.audio import N_SAMPLES, SAMPLE_RATE, AudioInput, load_audio

STACKS = ("encoder", "decoder")  # Whisper's two transformer stacks, each with its own FFN width
CALIBRATION_TOKENS = 96  # greedy tokens per calibration clip: utterances are short
DEFAULT_CALIBRATION_CLIPS = 16
Activations = Mapping[str, Sequence[Tensor]]  # stack -> per source layer, mean |act| (ffn,)
# Clips (paths or 16 kHz float32 samples), or a described set of them (its audios are used).
Calibration = Sequence[AudioInput] | HeldoutSet


def stack_layers(model: WhisperForConditionalGeneration, stack: str) -> torch.nn.ModuleList:
    """The transformer layers of one stack ("encoder" or "decoder")."""
    return getattr(model.model, stack).layers


# -- plain KV-cached decoding ------------------------------------------------------------------
# Used instead of transformers' generate(), which spends most of a small model's time in its
# logits processors (torch.isin over the suppressed tokens, slower still on a busy CPU): that
# would swamp what calibration and the equal-work timing measure.
def encode(model: WhisperForConditionalGeneration, features: Tensor) -> BaseModelOutput:
    """Encoder states (1, 1500, d_model) of log-mel features (1, mels, 3000)."""
    states = model.model.encoder(features.to(model.dtype)).last_hidden_state
    return BaseModelOutput(last_hidden_state=states)


def transcribe_prompt(
    model: WhisperForConditionalGeneration, encoded: BaseModelOutput
) -> list[int]:
    """<|startoftranscript|>, the likeliest language, <|transcribe|>, <|notimestamps|> (an
    English-only model: <|startoftranscript|>, <|notimestamps|>)."""
    generation, sot = model.generation_config, model.generation_config.decoder_start_token_id
    languages = list((getattr(generation, "lang_to_id", None) or {}).values())
    if not languages:
        return [sot, generation.no_timestamps_token_id]
    logits = model(encoder_outputs=encoded, decoder_input_ids=torch.tensor([[sot]])).logits
    language = languages[int(logits[0, -1, languages].argmax())]
    return [sot, language, generation.task_to_id["transcribe"], generation.no_timestamps_token_id]


@torch.inference_mode()
def decode_steps(
    model: WhisperForConditionalGeneration,
    encoded: BaseModelOutput,
    prompt: Sequence[int],
    forced: Sequence[int] | None = None,
    limit: int = CALIBRATION_TOKENS,
) -> None:
    """Generation's work after `prompt`: one KV-cached decoder step per token, each projected
    to the vocabulary and its likeliest token picked; the steps feed `forced` when given, else
    the picks until <|endoftext|> or `limit` tokens."""
    out = model(encoder_outputs=encoded, decoder_input_ids=torch.tensor([list(prompt)]),
                use_cache=True)  # fmt: skip
    for step in range(limit if forced is None else len(forced)):
        token = int(out.logits[0, -1].argmax())  # generation's pick, made either way
        if forced is not None:
            token = forced[step]
        elif token == model.generation_config.eos_token_id:
            return
        out = model(encoder_outputs=encoded, decoder_input_ids=torch.tensor([[token]]),
                    past_key_values=out.past_key_values, use_cache=True)  # fmt: skip


# -- activations -------------------------------------------------------------------------------
@torch.inference_mode()
def ffn_activations(
    model: WhisperForConditionalGeneration,
    extractor: Any,
    clips: Sequence[AudioInput],
    max_tokens: int = CALIBRATION_TOKENS,
) -> dict[str, list[Tensor]]:
    """Mean |activation| of every FFN neuron, per stack and layer (ffn,), over every encoder
    frame and every decoder step while the model greedily transcribes `clips` (first 30 s each,
    language detected, at most `max_tokens` tokens): the decoder is measured on its own output,
    so no transcripts are needed."""
    if not clips:
        raise ValueError("calibration needs at least one audio clip")
    act = ACT2FN[model.config.activation_function]
    sums: dict[tuple[str, int], Tensor] = {}
    counts: dict[tuple[str, int], int] = {}

    def hook(key: tuple[str, int]) -> Callable[..., None]:
        def record(module: torch.nn.Module, inputs: Any, output: Tensor) -> None:
            rows = act(output).abs().flatten(0, -2).float()  # (frames or steps, ffn)
            sums[key] = sums.get(key, 0) + rows.sum(0)
            counts[key] = counts.get(key, 0) + rows.shape[0]

        return record

    layers = {(s, i): layer for s in STACKS for i, layer in enumerate(stack_layers(model, s))}
    handles = [layer.fc1.register_forward_hook(hook(key)) for key, layer in layers.items()]
    try:
        for clip in clips:
            samples = load_audio(clip)[:N_SAMPLES]
            features = extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            encoded = encode(model, features.input_features)
            decode_steps(model, encoded, transcribe_prompt(model, encoded), limit=max_tokens)
    finally:
        for handle in handles:
            handle.remove()
    return {s: [sums[(s, i)] / counts[(s, i)] for i in range(len(stack_layers(model, s)))]
            for s in STACKS}  # fmt: skip


# -- where the calibration audio comes from ----------------------------------------------------
def fine_tune_language(model_dir: str | os.PathLike) -> str | None:
    """The language a studio training run fine-tuned `model_dir` on ("?" when its run's config
    cannot be read), or None for a model no studio run produced (a Whisper checkpoint)."""
    from utils.registry import METADATA_FILE
    from utils.training.artifacts import CONFIG_NAME, read_json

    record = read_json(Path(model_dir) / METADATA_FILE)
    if not (record.get("run") or record.get("base_model")):
        return None
    run_config = read_json(Path(record["run"]) / CONFIG_NAME) if record.get("run") else {}
    return run_config.get("language") or "?"


def default_calibration(
    model_dir: str | os.PathLike, count: int = DEFAULT_CALIBRATION_CLIPS
) -> HeldoutSet:
    """`count` clips of real English speech, for Whisper's English-only and multilingual
    checkpoints and English fine-tunes. ValueError for a studio fine-tune on another language
    (give clips in its language); PromptsMissingError when the English prompts are missing."""
    language = fine_tune_language(model_dir)
    if language not in (None, "en"):
        raise ValueError(
            f"{model_dir}: fine-tuned on language {language!r}, so English speech would rank its "
            "FFN neurons on the wrong language: give calibration clips in its language "
            "(calibration=..., or --calibration-dataset on the command line)"
        )
    return english_heldout(count)


def calibration_for(
    dataset_dir: str | os.PathLike | None, count: int = DEFAULT_CALIBRATION_CLIPS
) -> HeldoutSet | None:
    """The first `count` utterances of a dataset's train split (ValueError when it has none),
    or None without a dataset (`prune_model` then uses `default_calibration`). The train split,
    so the ranking never sees the held-out audio the trade-off is measured on."""
    if dataset_dir is None:
        return None
    chosen = dataset_heldout(dataset_dir, "train", limit=count)
    if not chosen.n:
        raise ValueError(f"{dataset_dir}: no train utterances to calibrate on")
    return chosen


def resolve_calibration(
    calibration: Calibration | None, model_dir: str | os.PathLike
) -> tuple[tuple[AudioInput, ...], str]:
    """The clips to calibrate on and their description: `calibration`'s, else the default
    (`default_calibration`). ValueError for an empty set or a single clip."""
    if calibration is None:
        calibration = default_calibration(model_dir)
    if isinstance(calibration, str | bytes | os.PathLike | np.ndarray):
        # one clip would otherwise be iterated as characters or samples
        raise ValueError("calibration takes a sequence of clips, not a single clip")
    if isinstance(calibration, HeldoutSet):
        clips, description = calibration.audios, calibration.description
    else:
        clips, description = tuple(calibration), f"{len(calibration)} given clips"
    if not clips:
        raise ValueError("ffn_importance='activations' needs calibration audio clips")
    return tuple(clips), description
