"""A short recovery fine-tune of a pruned Whisper through the studio's training engine.

A model with dropped decoder layers is not usable without retraining (docs/pruning.md); this
trains it on a dataset's train split like any run, so the result lands in the workspace's runs
and models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L

from optimization.pruning_core import Progress

if TYPE_CHECKING:
    from utils.training.config import TrainConfig


class _StepProgress(L.Callback):
    """Reports optimizer steps done as a fraction of `max_steps`."""

    def __init__(self, progress: Callable[[float, str], None], max_steps: int) -> None:
        self.progress, self.max_steps = progress, max_steps

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        self.progress(min(1.0, step / self.max_steps), f"recovery step {step}/{self.max_steps}")


def recovery_config(pruned_dir: str | Path, dataset_dir: str | Path, max_steps: int,
                    **train_overrides: Any) -> TrainConfig:  # fmt: skip
    """The TrainConfig of a recovery run: a full fine-tune from the pruned model at a moderate
    learning rate (not tuned here), validation and checkpoints fitted to short runs; any
    TrainConfig field may be overridden (e.g. method="lora")."""
    from utils.training.config import ConfigError, TrainConfig

    unknown = sorted(set(train_overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ConfigError(f"unknown TrainConfig keys: {', '.join(unknown)}")
    base = TrainConfig(
        model=str(pruned_dir), dataset=str(dataset_dir), method="full", learning_rate=5e-5,
        max_steps=max_steps, warmup_steps=min(50, max_steps // 10),
        val_every_steps=min(200, max_steps), checkpoint_every_steps=min(100, max_steps),
    )  # fmt: skip
    return dataclasses.replace(base, **train_overrides)


def recover(
    pruned_dir: str | Path,
    dataset_dir: str | Path,
    *,
    max_steps: int,
    out_runs_dir: str | Path | None = None,
    progress: Progress = None,
    **train_overrides: Any,
) -> Path:
    """Fine-tune the pruned model for `max_steps` on the dataset (see `recovery_config`) through
    `utils.training.run.train`, in a new run directory under `out_runs_dir` (default: the
    workspace's runs/). Returns the merged transformers model (RUN_DIR/merged, registered in the
    workspace's models like any run's); RuntimeError when the run does not finish."""
    from utils.training import artifacts
    from utils.training.run import train
    from utils.workspace import get_workspace

    config = recovery_config(pruned_dir, dataset_dir, max_steps, **train_overrides)
    runs = Path(out_runs_dir) if out_runs_dir else get_workspace().runs
    run_dir = artifacts.new_run_dir(runs, str(dataset_dir), f"prune-recovery-{config.method}")
    callbacks = [_StepProgress(progress, config.max_steps)] if progress else []
    result = train(config, run_dir, callbacks=callbacks)
    if result.state != "finished":
        raise RuntimeError(f"recovery fine-tune {result.state} ({run_dir}): {result.message}")
    return run_dir / artifacts.MERGED
