"""What a run leaves in its directory, and how a finished run becomes a model in the registry.

RUN_DIR/
  config.json         the TrainConfig (resume reads it back)
  dataset.json        the dataset path and fingerprint at the start
  events.jsonl        the live event log (utils.training.events)
  metrics.json        final figures: val/wer, val/cer (fractions) of the exported model, and
                      english/wer_before, english/wer_after (the forgetting check)
  checkpoints/        last.ckpt (resume), best.ckpt (lowest val/cer)
  tensorboard/        TensorBoard event files
  forgetting.json     English WER before/after on asterisk prompts (utils.training.forgetting)
  trackers.json       W&B / MLflow run ids, so a resume continues them (utils.training.tracking)
  adapter/            the LoRA adapter (LoRA runs)
  merged/             the merged transformers model, registered as models/<run name>
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from utils.registry import link_into_models, register_model
from utils.workspace import Workspace

CONFIG_NAME = "config.json"
DATASET_NAME = "dataset.json"
METRICS_NAME = "metrics.json"
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
MERGED = "merged"
TENSORBOARD = "tensorboard"


def new_run_dir(runs: Path, dataset: str, method: str) -> Path:
    """A run directory under `runs` that does not exist yet: time-dataset-method[-n]."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(dataset).name}-{method}"
    path, suffix = runs / stem, 1
    while path.exists():
        suffix += 1
        path = runs / f"{stem}-{suffix}"
    return path


def write_json(path: Path, value: Any) -> Path:
    """Written whole or not at all (temporary file + rename)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def register_run_model(
    run_dir: Path, workspace: Workspace, *, base_model: str, dataset: str, metrics: dict[str, Any]
) -> Path:
    """Link `run_dir/merged` into the workspace's models/ under the run's name and record its
    facts, so the Transcribe tab lists it at once. Returns the link."""
    merged = run_dir / MERGED
    figures = {k: v for k, v in metrics.items() if k.startswith("val/") and v is not None}
    register_model(merged, source=f"fine-tuned run {run_dir.name} of {base_model} on {dataset}",
                   metrics=figures, run=str(run_dir), base_model=base_model)  # fmt: skip
    return workspace.models / link_into_models(merged, workspace, run_dir.name)
