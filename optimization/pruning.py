"""Structured pruning of a Whisper model that every export format can represent.

Two reductions, both leaving a plain transformers Whisper directory (config, safetensors weights,
generation config, tokenizer and preprocessor files) that CTranslate2's TransformersConverter and
a torch.onnx export take unchanged:

- **decoder layers dropped**: the kept layers are evenly spaced, the first and the last always
  kept (distil-whisper's student initialisation: ``np.linspace(0, n - 1, k, dtype=int)`` with the
  last index forced to ``n - 1``); the generation config's alignment heads are renumbered.
- **uniform FFN-width reduction**: every layer of a stack keeps the same number of fc1/fc2
  neurons, its most important ones, rounded to a multiple of 64 (GEMM kernels' tile size).
  Uniform, because transformers' WhisperConfig holds one FFN width per stack.

FFN neurons are ranked by their mean activation on calibration audio by default
(``ffn_importance="activations"``): on Whisper base, keeping 75% of the FFN neurons so ranked
gave WER 13.3% on six held-out English prompts (source 0%), while ranking by weight norms alone
(``"weights"``, still offered: it needs no audio) gave WER 100%, worse than random neurons
(docs/pruning.md). The calibration audio is the caller's (``prune_model(calibration=...)``;
command line: ``--calibration-dataset``'s train split, else ``--eval-dataset``'s), else real
English speech (Debian's asterisk prompts, offline), which suits Whisper's English-only and
multilingual checkpoints; a studio fine-tune on another language must be given its own clips.

Not offered: per-layer attention-head pruning (CTranslate2's WhisperSpec and WhisperConfig hold
one head count for all layers of a stack, so uneven heads would not export), and unstructured
magnitude pruning (weights are stored dense and neither CTranslate2 nor onnxruntime on CPU has
sparse kernels for these layers: zeros save neither bytes nor time; see docs/pruning.md).

This module is the command line (``python -m optimization.pruning``) and the public API, which
lives in: `optimization.pruning_core` (options, layer and neuron choice, `prune_whisper`,
`prune_model`, `PruneReport`), `optimization.pruning_calibration` (activations and the
calibration audio), `optimization.pruning_files` (loading and measuring model directories),
`optimization.pruning_eval` (`evaluate_tradeoff`: source against pruned model on held-out audio)
and `optimization.pruning_recovery` (`recover`: a short fine-tune through the training engine).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optimization.heldout_sets import HeldoutSet
from optimization.pruning_calibration import (
    CALIBRATION_TOKENS,
    DEFAULT_CALIBRATION_CLIPS,
    STACKS,
    Activations,
    Calibration,
    calibration_for,
    default_calibration,
    ffn_activations,
    fine_tune_language,
    resolve_calibration,
)
from optimization.pruning_core import (
    REPORT_NAME,
    Importance,
    Progress,
    PrunedWhisper,
    PruneOptions,
    PruneReport,
    ffn_width,
    kept_layers,
    neuron_importance,
    prune_model,
    prune_whisper,
    remap_alignment_heads,
)
from optimization.pruning_eval import (
    AudioItem,
    EngineFactory,
    ModelFigures,
    TradeoffReport,
    equal_work_seconds,
    evaluate_tradeoff,
    greedy_options,
)
from optimization.pruning_files import (
    PROCESSOR_FILES,
    WEIGHT_SUFFIXES,
    load_whisper,
    parameter_count,
    weights_bytes,
)
from optimization.pruning_recovery import recover, recovery_config

__all__ = [
    "CALIBRATION_TOKENS", "DEFAULT_CALIBRATION_CLIPS", "PROCESSOR_FILES", "REPORT_NAME", "STACKS",
    "WEIGHT_SUFFIXES", "Activations", "AudioItem", "Calibration", "EngineFactory", "Importance",
    "ModelFigures", "Progress", "PruneOptions", "PruneReport", "PrunedWhisper", "TradeoffReport",
    "calibration_for", "default_calibration", "equal_work_seconds", "evaluate_tradeoff",
    "ffn_activations", "ffn_width", "fine_tune_language", "greedy_options", "kept_layers",
    "load_whisper", "main", "neuron_importance", "parameter_count", "prune_model",
    "prune_whisper", "recover", "recovery_config", "remap_alignment_heads", "resolve_calibration",
    "weights_bytes",
]  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m optimization.pruning", description=__doc__.split(
        "\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model", required=True, help="model name or directory (CTranslate2 ok)")
    p.add_argument("--out", required=True, type=Path, help="new directory for the pruned model")
    p.add_argument("--decoder-layers", type=int, help="decoder layers to keep")
    p.add_argument("--ffn-keep", type=float, help="fraction of FFN neurons kept, in (0, 1]")
    p.add_argument("--ffn-stacks", default="encoder,decoder", help="stacks whose FFN narrows")
    p.add_argument(
        "--ffn-importance",
        choices=("activations", "weights"),
        default="activations",
        help="rank FFN neurons by activations on calibration audio (default) or by "
        "weight norms (no audio; far worse on Whisper base, see docs/pruning.md)",
    )
    p.add_argument(
        "--calibration-dataset",
        type=Path,
        help="dataset whose train split calibrates (default: --eval-dataset's, "
        "else English speech)",
    )
    p.add_argument(
        "--calibration-clips", type=int, default=DEFAULT_CALIBRATION_CLIPS, help="calibration clips"
    )
    p.add_argument("--eval-dataset", type=Path, help="dataset directory for the trade-off")
    p.add_argument("--split", default="test", help="held-out split of --eval-dataset")
    p.add_argument("--limit", type=int, help="at most this many held-out utterances")
    p.add_argument("--language", help="language code (default: the utterances' language)")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="token cap per window in the trade-off (bounds a looping pruned model)",
    )
    p.add_argument("--recover-steps", type=int, help="recovery fine-tune steps on the dataset")
    p.add_argument("--json", action="store_true", help="print the report(s) as JSON")
    return p  # fmt: skip


def _transformers_source(reference: str) -> Path:
    """A model reference as a transformers directory (a CTranslate2 model converted once)."""
    from utils.ct2_convert import ensure_transformers_model
    from utils.model_store import resolve_model

    resolved = resolve_model(reference)
    if resolved.kind == "ctranslate2":
        return ensure_transformers_model(resolved.path)
    return resolved.path


def _split_items(dataset: Path, split: str, limit: int | None) -> list[AudioItem]:
    """(16 kHz samples, text) of the first `limit` utterances of a dataset split."""
    from utils.training.heldout import split_utterances, utterance_audio

    utterances = split_utterances(dataset, split)[:limit]
    return [(utterance_audio(dataset, u), u.text) for u in utterances]


def _dataset_language(dataset: Path, split: str) -> str:
    from utils.training.heldout import split_utterances

    found = {u.language for u in split_utterances(dataset, split)}
    if len(found) != 1 or not next(iter(found)):
        raise ValueError(f"{dataset}: pass --language (utterances say {sorted(found)})")
    return found.pop()


def _calibration(
    args: argparse.Namespace, options: PruneOptions, source: Path
) -> HeldoutSet | None:
    """The clips FFN neurons are ranked on: --calibration-dataset's train split, else
    --eval-dataset's (never its held-out split), else English speech; None when not needed."""
    if not options.needs_calibration:
        return None
    if args.calibration_clips < 1:
        raise ValueError(f"--calibration-clips must be at least 1, not {args.calibration_clips}")
    dataset = args.calibration_dataset or args.eval_dataset
    if dataset:
        return calibration_for(dataset, args.calibration_clips)
    return default_calibration(source, args.calibration_clips)


def _print_progress(fraction: float, stage: str) -> None:
    print(f"[{fraction:4.0%}] {stage}", file=sys.stderr, flush=True)


def _tradeoff(args: argparse.Namespace, source: Path, final: Path, language: str) -> TradeoffReport:
    items = _split_items(args.eval_dataset, args.split, args.limit)
    decode = dataclasses.replace(greedy_options(language), max_new_tokens=args.max_new_tokens)
    return evaluate_tradeoff(source, final, items, language, _print_progress, options=decode)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    stacks = tuple(args.ffn_stacks.split(","))
    options = PruneOptions(args.decoder_layers, args.ffn_keep, stacks,
                           ffn_importance=args.ffn_importance)  # fmt: skip
    if args.recover_steps and not args.eval_dataset:
        raise ValueError("--recover-steps trains on --eval-dataset's train split: pass it")
    source = _transformers_source(args.model)
    calibration = _calibration(args, options, source)
    report = prune_model(source, args.out, options, _print_progress, calibration=calibration)
    out: dict[str, Any] = {"prune": report.to_dict()}
    final, language = args.out, args.language
    if args.eval_dataset:
        language = language or _dataset_language(args.eval_dataset, args.split)
    if args.recover_steps:
        final = recover(args.out, args.eval_dataset, max_steps=args.recover_steps,
                        progress=_print_progress, language=language)  # fmt: skip
        out["recovered"] = str(final)
    if args.eval_dataset:
        out["tradeoff"] = _tradeoff(args, source, final, language).to_dict()
    return out


def _tradeoff_lines(t: dict[str, Any]) -> list[str]:
    lines = []
    for name in ("source", "pruned"):
        m = t[name]
        lines.append(f"{name}: WER {m['wer']:.1%} CER {m['cer']:.1%} RTF {m['rtf']:.3f}")
    equal = t["equal_work_speedup"]
    lines.append(
        f"speedup {t['speedup']:.2f}x end to end"
        + (f", {equal:.2f}x at equal output" if equal else "")
        + f" ({t['n']} utterances)"
    )
    return lines


def _summary(out: dict[str, Any]) -> str:
    r = out["prune"]
    lines = [
        f"pruned model: {r['output']} ({r['seconds']:.1f} s)",
        f"parameters {r['parameters_before']:,} -> {r['parameters_after']:,}",
        f"weights {r['size_bytes_before']:,} -> {r['size_bytes_after']:,} bytes",
        f"decoder layers kept {r['decoder_layers_kept']}",
        f"FFN widths {r['ffn_widths_before']} -> {r['ffn_widths_after']}",
    ]
    if r["calibration_clips"]:
        lines.append(f"FFN neurons ranked on {r['calibration_source']}")
    if "recovered" in out:
        lines.append(f"recovered model: {out['recovered']}")
    if t := out.get("tradeoff"):
        lines.extend(_tradeoff_lines(t))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; 0 on success, 1 with an `error:` line on stderr."""
    args = _parser().parse_args(argv)
    try:
        out = _run(args)
    # LookupError: no such model; OSError includes PromptsMissingError (no English prompts)
    except (ValueError, OSError, RuntimeError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=1, ensure_ascii=False) if args.json else _summary(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
