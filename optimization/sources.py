"""What an export starts from: any model reference turned into one complete transformers Whisper
directory with every adapter merged in.

A source is a registry name or model directory (transformers or CTranslate2), a training run
directory (its `merged/` model, else its adapter merged into the base), a LoRA adapter directory
(`adapter_config.json`), or a Lightning checkpoint (`*.ckpt` inside a run's `checkpoints/`).
Unmerged LoRA weights are the commonest cause of a fine-tune that "breaks after conversion", so
adapters are always merged here and nothing downstream sees one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from utils.fileops import staged_directory
from utils.model_store import ModelNotFoundError, is_transformers_dir, resolve_model
from utils.workspace import Workspace, get_workspace

PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
MERGED_CACHE = ".merged"  # under the workspace's exports/: merged adapters and checkpoints


class SourceError(ValueError):
    """A source that cannot be turned into a transformers model; the message says why."""


@dataclass(frozen=True)
class ExportSource:
    """A transformers Whisper directory ready to convert, and where it came from."""

    name: str  # a short name for the export's default directory name
    hf_dir: Path  # complete transformers directory (model, processor, generation config)
    description: str  # e.g. "run 2026...-lora (adapter merged)"


def _is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "events.jsonl").is_file()


def _has_tokenizer(path: Path) -> bool:
    return (path / "tokenizer.json").is_file() or (path / "vocab.json").is_file()


def _check_weights(path: Path) -> None:
    """Open every safetensors file's header: a truncated or foreign file fails here, clearly."""
    from safetensors import SafetensorError, safe_open

    for weights in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt") as handle:
                handle.keys()
        except (SafetensorError, OSError, ValueError) as exc:
            raise SourceError(f"{weights}: corrupt or unreadable weights ({exc})") from exc


def _checked(path: Path, name: str, description: str) -> ExportSource:
    """The source after checking the files every export needs are there."""
    if not is_transformers_dir(path):
        raise SourceError(f"{path}: no model weights (config.json + model.safetensors)")
    _check_weights(path)
    if not _has_tokenizer(path):
        raise SourceError(f"{path}: no tokenizer (tokenizer.json); copy the base model's files")
    if not any((path / name).is_file() for name in PROCESSOR_FILES):
        raise SourceError(f"{path}: no preprocessor_config.json (the feature extractor settings)")
    return ExportSource(name, path, description)


def _merge_cache(workspace: Workspace, key: str) -> Path:
    return workspace.exports / MERGED_CACHE / key


def _save_merged(model: torch.nn.Module, processor_dir: Path, out: Path) -> None:
    """Merge a PEFT model and write it with the processor files of `processor_dir`."""
    from transformers import WhisperProcessor

    from utils.geez_vocab.design import copy_provenance

    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    merged.config.use_cache = True
    merged.save_pretrained(out)
    processor = WhisperProcessor.from_pretrained(processor_dir)
    processor.save_pretrained(out)
    processor.feature_extractor.save_pretrained(out)  # the standalone file converters copy
    copy_provenance(processor_dir, out)


def _merged_adapter(adapter_dir: Path, base_reference: str, workspace: Workspace) -> Path:
    """`adapter_dir` merged into its base model, cached under exports/.merged/."""
    from peft import PeftModel
    from transformers import WhisperForConditionalGeneration

    from utils.training.model import transformers_source

    target = _merge_cache(workspace, f"{adapter_dir.parent.name}-{adapter_dir.name}")
    if is_transformers_dir(target) and _newer(target, adapter_dir):
        return target
    base_dir = transformers_source(base_reference, workspace)
    try:
        base = WhisperForConditionalGeneration.from_pretrained(base_dir, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, adapter_dir)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise SourceError(
            f"{adapter_dir}: the adapter does not load onto {base_dir}: {exc}"
        ) from exc
    with staged_directory(target, is_transformers_dir, replace=True) as staging:
        _save_merged(model, base_dir, staging)
    return target


def _newer(path: Path, than: Path) -> bool:
    newest = max((p.stat().st_mtime_ns for p in than.rglob("*") if p.is_file()), default=0)
    return (path / "config.json").stat().st_mtime_ns >= newest


def _adapter_base(adapter_dir: Path) -> str:
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{adapter_dir}: unreadable adapter_config.json: {exc}") from exc
    base = config.get("base_model_name_or_path")
    if not base:
        raise SourceError(f"{adapter_dir}: adapter_config.json names no base model")
    return str(base)


def _run_config(run_dir: Path):
    from utils.training.config import TrainConfig

    try:
        return TrainConfig.load(run_dir / "config.json")
    except (OSError, ValueError, TypeError) as exc:
        raise SourceError(f"{run_dir}: unreadable run config.json: {exc}") from exc


def _merged_checkpoint(checkpoint: Path, workspace: Workspace) -> Path:
    """A Lightning checkpoint of a run, rebuilt as its run built the model, then merged."""
    from utils.training.model import load_base_model, make_trainable

    run_dir = checkpoint.parent.parent
    if not _is_run_dir(run_dir):
        raise SourceError(
            f"{checkpoint}: not inside a run's checkpoints/ (no run config beside it)"
        )
    config = _run_config(run_dir)
    target = _merge_cache(workspace, f"{run_dir.name}-{checkpoint.stem}")
    if is_transformers_dir(target) and _newer(target, checkpoint.parent):
        return target
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    except (OSError, RuntimeError, KeyError, EOFError, ValueError) as exc:
        raise SourceError(f"{checkpoint}: not a readable Lightning checkpoint: {exc}") from exc
    base = load_base_model(config.model, workspace)
    model = make_trainable(base.model, config, base.new_token_ids)
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or (config.method != "lora" and missing):
        example = (unexpected or missing)[:2]
        raise SourceError(
            f"{checkpoint}: its weights do not fit the run's model "
            f"({len(missing)} missing, {len(unexpected)} unexpected, e.g. {example})"
        )
    with staged_directory(target, is_transformers_dir, replace=True) as staging:
        _save_merged(model.eval(), base.source, staging)
    return target


def _from_run(run_dir: Path, workspace: Workspace) -> ExportSource:
    merged = run_dir / "merged"
    if is_transformers_dir(merged):
        return _checked(merged, run_dir.name, f"run {run_dir.name} (merged model)")
    adapter = run_dir / "adapter"
    if (adapter / "adapter_config.json").is_file():
        base = _run_config(run_dir).model
        path = _merged_adapter(adapter, base, workspace)
        return _checked(path, run_dir.name, f"run {run_dir.name} (adapter merged into {base})")
    checkpoints = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    best = (
        next((c for c in checkpoints if c.name == "best.ckpt"), None) or (checkpoints or [None])[-1]
    )
    if best is None:
        raise SourceError(f"{run_dir}: the run left no model, adapter or checkpoint to export")
    return _from_checkpoint(best, workspace)


def _from_checkpoint(checkpoint: Path, workspace: Workspace) -> ExportSource:
    path = _merged_checkpoint(checkpoint, workspace)
    name = f"{checkpoint.parent.parent.name}-{checkpoint.stem}"
    return _checked(path, name, f"checkpoint {checkpoint} (merged)")


def resolve_source(
    reference: str | os.PathLike, workspace: Workspace | None = None
) -> ExportSource:
    """The transformers directory to export for `reference` (see the module docstring)."""
    workspace = workspace or get_workspace()
    path = Path(reference).expanduser()
    if not path.exists() and (workspace.runs / str(reference)).is_dir():
        path = workspace.runs / str(reference)
    if path.is_file() and path.suffix == ".ckpt":
        return _from_checkpoint(path.resolve(), workspace)
    if path.is_dir() and _is_run_dir(path):
        return _from_run(path.resolve(), workspace)
    if path.is_dir() and (path / "adapter_config.json").is_file():
        merged = _merged_adapter(path.resolve(), _adapter_base(path), workspace)
        return _checked(merged, path.name, f"adapter {path} (merged)")
    try:
        resolved = resolve_model(reference, workspace)
    except ModelNotFoundError as exc:
        raise SourceError(str(exc)) from exc
    if resolved.kind == "ctranslate2":
        from utils.ct2_convert import ensure_transformers_model

        hf_dir = ensure_transformers_model(resolved.path, workspace.models)
        return _checked(hf_dir, resolved.name, f"{resolved.name} (CTranslate2, read back)")
    if resolved.kind != "transformers":
        raise SourceError(f"{reference}: a {resolved.kind} model cannot be exported again")
    return _checked(resolved.path, resolved.name, f"{resolved.name} (transformers)")
