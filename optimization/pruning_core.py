"""Structural pruning of a Whisper: what to prune, which layers and neurons, and the pruned model.

`prune_whisper` prunes a model in memory; `prune_model` prunes a transformers directory into a
new one (calibrating on audio first when FFN neurons are ranked by activations) and writes
pruning.json with the options and the `PruneReport`. See `optimization.pruning` for the whole
picture and docs/pruning.md for the measurements behind the defaults.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from transformers import WhisperForConditionalGeneration

from optimization.pruning_calibration import (
    CALIBRATION_TOKENS,
    STACKS,
    Activations,
    Calibration,
    ffn_activations,
    resolve_calibration,
)
from optimization.pruning_files import (
    copy_processor_files,
    load_whisper,
    weights_bytes,
)
from utils.audio import AudioInput
from utils.ct2_convert import build_whisper
from utils.fileops import staged_directory
from utils.model_store import is_transformers_dir

Progress = Callable[[float, str], None] | None  # fraction done in [0, 1], the current stage
Importance = Literal["weights", "activations"]
REPORT_NAME = "pruning.json"


@dataclass(frozen=True)
class PruneOptions:
    """What to prune; vary it with `dataclasses.replace`.

    decoder_layers: decoder layers kept (None: all); checked against the model at prune time.
    ffn_keep: fraction of FFN neurons kept in each layer, in (0, 1] (None: all).
    ffn_stacks: the stacks whose FFN width is reduced.
    ffn_multiple: kept widths are rounded to the nearest multiple of this (at least one multiple,
    at most the original width).
    ffn_importance: how neurons are ranked (see `neuron_importance`): "activations" (the
    default) needs calibration audio; "weights" needs none but ranked worse than random on
    Whisper base (docs/pruning.md).
    """

    decoder_layers: int | None = None
    ffn_keep: float | None = None
    ffn_stacks: tuple[str, ...] = STACKS
    ffn_multiple: int = 64
    ffn_importance: Importance = "activations"

    def __post_init__(self) -> None:
        problems = [*self._layer_problems(), *self._ffn_problems()]
        if problems:
            raise ValueError("invalid PruneOptions: " + "; ".join(problems))
        object.__setattr__(self, "ffn_stacks", tuple(self.ffn_stacks))

    def _layer_problems(self) -> list[str]:
        layers = self.decoder_layers
        if layers is None and self.ffn_keep is None:
            return ["nothing to prune: set decoder_layers, ffn_keep or both"]
        if layers is not None and (isinstance(layers, bool) or not isinstance(layers, int)):
            return [f"decoder_layers must be an integer, not {layers!r}"]
        if layers is not None and layers < 1:
            return [f"decoder_layers must be at least 1, not {layers}"]
        return []

    def _ffn_problems(self) -> list[str]:
        problems = []
        if self.ffn_keep is not None and not 0 < self.ffn_keep <= 1:
            problems.append(f"ffn_keep must be in (0, 1], not {self.ffn_keep}")
        if not self.ffn_stacks or set(self.ffn_stacks) - set(STACKS):
            problems.append(f"ffn_stacks must name some of {STACKS}, not {self.ffn_stacks!r}")
        if self.ffn_multiple < 1:
            problems.append(f"ffn_multiple must be at least 1, not {self.ffn_multiple}")
        if self.ffn_importance not in ("weights", "activations"):
            problems.append(f"ffn_importance must be 'weights' or 'activations', not "
                            f"{self.ffn_importance!r}")  # fmt: skip
        return problems

    @property
    def needs_calibration(self) -> bool:
        """Whether pruning with these options measures activations on calibration audio (not
        when every neuron is kept: nothing is ranked)."""
        narrowing = self.ffn_keep is not None and self.ffn_keep < 1
        return narrowing and self.ffn_importance == "activations"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ffn_stacks": list(self.ffn_stacks)}


@dataclass(frozen=True)
class PruneReport:
    """What pruning did. Sizes are bytes of the weight files; widths are neurons per layer."""

    source: str
    output: str
    parameters_before: int
    parameters_after: int
    size_bytes_before: int
    size_bytes_after: int
    decoder_layers_kept: tuple[int, ...]  # source indices, in order
    ffn_widths_before: Mapping[str, int]  # stack -> width
    ffn_widths_after: Mapping[str, int]
    alignment_heads: tuple[tuple[int, int], ...]  # (layer, head) after renumbering
    calibration_clips: int  # clips the FFN activations were measured on (0: none measured)
    calibration_source: str  # what those clips were ("" when none were measured)
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples become lists


@dataclass(frozen=True)
class PrunedWhisper:
    """A pruned model in memory, with the choices made."""

    model: WhisperForConditionalGeneration
    decoder_layers_kept: tuple[int, ...]
    ffn_widths: Mapping[str, int]


# -- choices -----------------------------------------------------------------------------------
def kept_layers(total: int, keep: int) -> tuple[int, ...]:
    """Source indices of `keep` of `total` layers: evenly spaced (floored, as distil-whisper),
    the first and the last kept; a single layer is the last one."""
    if not 1 <= keep <= total:
        raise ValueError(f"decoder_layers must be between 1 and {total}, not {keep}")
    chosen = np.linspace(0, total - 1, keep, dtype=int)
    chosen[-1] = total - 1
    return tuple(int(index) for index in chosen)


def ffn_width(dim: int, keep: float | None, multiple: int) -> int:
    """Neurons kept of `dim`: ``dim * keep`` rounded half up to a multiple of `multiple`,
    clamped to [multiple, dim] (a layer narrower than `multiple` keeps its width)."""
    if keep is None or keep >= 1:
        return dim
    rounded = math.floor(dim * keep / multiple + 0.5) * multiple
    return min(dim, max(multiple, rounded))


def neuron_importance(
    fc1_weight: Tensor, fc1_bias: Tensor, fc2_weight: Tensor, activation: Tensor | None = None
) -> Tensor:
    """Importance (ffn,) of each FFN neuron (fc1_weight (ffn, d), fc1_bias (ffn,), fc2_weight
    (d, ffn)): how strongly it responds times the L2 norm of its fc2 column (how strongly it
    writes back to the residual stream). The response is the mean |activation| on calibration
    audio when `activation` (ffn,) is given, else the L2 norm of its fc1 row with the bias
    appended. On Whisper base the weight-only ranking chose worse than random (docs/pruning.md):
    a large fc1 row says nothing about whether the neuron ever fires."""
    if activation is None:
        response = torch.cat([fc1_weight, fc1_bias[:, None]], dim=1).float().norm(dim=1)
    else:
        response = activation.float()
    return response * fc2_weight.float().norm(dim=0)


def remap_alignment_heads(
    heads: Sequence[Sequence[int]], kept: Sequence[int], num_heads: int
) -> list[list[int]]:
    """[layer, head] pairs renumbered to the kept layers; heads of dropped layers go. When none
    remain, every head of the last half of the kept layers (transformers' own default)."""
    new_index = {old: new for new, old in enumerate(kept)}
    remapped = [[new_index[layer], head] for layer, head in heads if layer in new_index]
    if remapped:
        return remapped
    count = len(kept)
    return [[layer, head] for layer in range(count // 2, count) for head in range(num_heads)]


# -- pruning a state dict ----------------------------------------------------------------------
def _keep_decoder_layers(state: dict[str, Tensor], kept: Sequence[int]) -> None:
    """Drop the decoder layers not in `kept` and renumber the others 0..len(kept)-1."""
    prefix, new_index = "model.decoder.layers.", {old: new for new, old in enumerate(kept)}
    for key in [k for k in state if k.startswith(prefix)]:
        index, rest = key.removeprefix(prefix).split(".", 1)
        tensor = state.pop(key)
        if int(index) in new_index:
            state[f"{prefix}{new_index[int(index)]}.{rest}"] = tensor


def _narrow_ffn(state: dict[str, Tensor], stack: str, width: int,
                activations: Sequence[Tensor | None]) -> None:  # fmt: skip
    """Keep the `width` most important neurons (in their original order) of each layer's FFN;
    `activations[i]` belongs to the layer now numbered i (None: rank by weights)."""
    for i, activation in enumerate(activations):
        prefix = f"model.{stack}.layers.{i}."
        w1, b1 = state[prefix + "fc1.weight"], state[prefix + "fc1.bias"]
        w2 = state[prefix + "fc2.weight"]
        keep = neuron_importance(w1, b1, w2, activation).topk(width).indices.sort().values
        state[prefix + "fc1.weight"] = w1[keep].contiguous()
        state[prefix + "fc1.bias"] = b1[keep].contiguous()
        state[prefix + "fc2.weight"] = w2[:, keep].contiguous()


def _narrow_stacks(
    config: Any,
    state: dict[str, Tensor],
    options: PruneOptions,
    kept: Sequence[int],
    activations: Activations | None,
) -> dict[str, int]:
    """Narrow each chosen stack's FFNs in `state` and `config`; the widths per stack."""
    widths = {}
    for stack in STACKS:
        dim = getattr(config, f"{stack}_ffn_dim")
        keep = options.ffn_keep if stack in options.ffn_stacks else None
        widths[stack] = ffn_width(dim, keep, options.ffn_multiple)
        if widths[stack] < dim:
            # activations were measured on the unpruned model: index them by source layer
            sources = kept if stack == "decoder" else range(config.encoder_layers)
            by_layer = [activations[stack][i] if activations else None for i in sources]
            _narrow_ffn(state, stack, widths[stack], by_layer)
            setattr(config, f"{stack}_ffn_dim", widths[stack])
    return widths


def prune_whisper(
    model: WhisperForConditionalGeneration,
    options: PruneOptions,
    activations: Activations | None = None,
) -> PrunedWhisper:
    """A pruned version of `model`, which is left unchanged; the tensors kept whole are shared
    with it, not copied (deep-copy one of the two before training either in place).
    `activations` (see `ffn_activations`, measured on the unpruned model) are needed for
    ffn_importance="activations". ValueError when decoder_layers exceeds the model's layer
    count or activations are missing."""
    if options.needs_calibration and not activations:
        raise ValueError("ffn_importance='activations' needs calibration activations")
    config = copy.deepcopy(model.config)
    kept = kept_layers(config.decoder_layers, options.decoder_layers or config.decoder_layers)
    state = dict(model.state_dict())
    _keep_decoder_layers(state, kept)
    config.decoder_layers = len(kept)
    by_activations = activations if options.needs_calibration else None
    widths = _narrow_stacks(config, state, options, kept, by_activations)
    pruned = build_whisper(config, state)
    generation = copy.deepcopy(model.generation_config)
    if getattr(generation, "alignment_heads", None):
        heads = config.decoder_attention_heads
        generation.alignment_heads = remap_alignment_heads(generation.alignment_heads, kept, heads)
    pruned.generation_config = generation
    return PrunedWhisper(pruned, kept, widths)


# -- pruning a directory -----------------------------------------------------------------------
def report_progress(progress: Progress, fraction: float, stage: str) -> None:
    if progress:
        progress(fraction, stage)


def _calibrate(model: WhisperForConditionalGeneration, source: Path,
               clips: Sequence[AudioInput], described: str, max_tokens: int,
               progress: Progress) -> Activations:  # fmt: skip
    from transformers import WhisperFeatureExtractor

    report_progress(progress, 0.1, f"calibrating on {len(clips)} clips: {described}")
    extractor = WhisperFeatureExtractor.from_pretrained(source)
    return ffn_activations(model, extractor, clips, max_tokens)


def _load_and_prune(source: Path, options: PruneOptions, clips: Sequence[AudioInput],
                    described: str, max_tokens: int,
                    progress: Progress) -> tuple[PrunedWhisper, dict[str, int], int]:  # fmt: skip
    """The pruned model, the source's FFN widths and its parameter count (tied embeddings once),
    calibrating on `clips` first when there are any."""
    report_progress(progress, 0.0, "loading the model")
    model = load_whisper(source)
    widths = {stack: getattr(model.config, f"{stack}_ffn_dim") for stack in STACKS}
    activations = None
    if clips:
        activations = _calibrate(model, source, clips, described, max_tokens, progress)
    report_progress(progress, 0.5, "pruning")
    return prune_whisper(model, options, activations), widths, model.num_parameters()


def _write_pruned(pruned: PrunedWhisper, staging: Path, source: Path,
                  options: PruneOptions, report: PruneReport) -> None:  # fmt: skip
    """The pruned model's files in `staging`, readable by others like any model directory."""
    copy_processor_files(source, staging)
    record = {"options": options.to_dict(), "report": report.to_dict()}
    (staging / REPORT_NAME).write_text(json.dumps(record, indent=1), encoding="utf-8")
    for path in [staging, *staging.iterdir()]:  # mkdtemp and safetensors make them private
        path.chmod(0o755 if path.is_dir() else 0o644)


def prune_model(
    model_dir: str | Path,
    out_dir: str | Path,
    options: PruneOptions,
    progress: Progress = None,
    *,
    calibration: Calibration | None = None,
    calibration_tokens: int = CALIBRATION_TOKENS,
) -> PruneReport:
    """Prune the transformers Whisper in `model_dir` into the new directory `out_dir` (weights
    as safetensors, updated config and generation config, the tokenizer and preprocessor files,
    and pruning.json with the options and the report). Written atomically: on any error nothing
    is left at `out_dir`.

    `calibration`: audio clips (paths or 16 kHz samples, or a HeldoutSet) on which FFN neurons
    are ranked when `options.needs_calibration`, each decoded greedily for at most
    `calibration_tokens` tokens (see `ffn_activations`); best not the evaluation's. None: real
    English speech (`pruning_calibration.default_calibration`; refused for a studio fine-tune on
    another language). FileExistsError when `out_dir` exists; ValueError for a bad model, too
    many decoder layers or an empty calibration set."""
    started, source, out = time.perf_counter(), Path(model_dir), Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out} exists already; pruning writes a new directory")
    clips, described = (), ""
    if options.needs_calibration:  # before loading: a missing clip set fails fast
        clips, described = resolve_calibration(calibration, source)
    pruned, before, parameters_before = _load_and_prune(
        source, options, clips, described, calibration_tokens, progress
    )
    report_progress(progress, 0.7, "saving")
    with staged_directory(out, is_transformers_dir) as staging:
        pruned.model.save_pretrained(staging)
        heads = getattr(pruned.model.generation_config, "alignment_heads", None) or ()
        report = PruneReport(
            source=str(source), output=str(out),
            parameters_before=parameters_before,
            parameters_after=pruned.model.num_parameters(),
            size_bytes_before=weights_bytes(source), size_bytes_after=weights_bytes(staging),
            decoder_layers_kept=pruned.decoder_layers_kept, ffn_widths_before=before,
            ffn_widths_after=dict(pruned.ffn_widths),
            alignment_heads=tuple((int(a), int(b)) for a, b in heads),
            calibration_clips=len(clips), calibration_source=described,
            seconds=time.perf_counter() - started,
        )  # fmt: skip
        _write_pruned(pruned, staging, source, options, report)
    report_progress(progress, 1.0, "done")
    return report
