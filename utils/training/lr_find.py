"""Learning-rate finder: Lightning's range test (`Tuner.lr_find`) over the same model and data a
run of the config trains, with the loss-vs-learning-rate curve as a plotly figure.

  python -m utils.training.lr_find --dataset DIR --model PATH [--preset NAME] [--set k=v ...]
      [--num-steps N] [--json] [--plot FILE.html] [--output FILE.json] [--progress]

The learning rate grows exponentially from min_lr to max_lr over num_steps optimizer steps
(stopping early once the smoothed loss exceeds 4x its best); the suggestion is the rate at the
steepest fall of the loss. Nothing is written outside a temporary directory (Lightning's
temporary checkpoint included) but the --plot / --output files; the weights are not kept.
`LrFinderResult` and `lr_finder_figure` live in `utils.training.lr_result` (no torch import).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.tuner import Tuner

from utils.model_store import ModelNotFoundError
from utils.training.config import (
    ConfigError,
    TrainConfig,
    add_config_arguments,
    compose_config,
)
from utils.training.device_lock import write_json
from utils.training.lr_result import PROGRESS_PREFIX, LrFinderResult, lr_finder_figure
from utils.training.module import WhisperFineTuner
from utils.workspace import Workspace, get_workspace

Progress = Callable[[int, int], None]  # (optimizer steps done, num_steps)


class _ReportingFineTuner(WhisperFineTuner):
    """Calls `progress` after each optimizer step (the tuner replaces the trainer's callbacks
    while it runs, but not the module's hooks)."""

    progress: Progress | None = None
    progress_total: int = 0
    _reported: int = -1

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = int(self.trainer.global_step)
        if self.progress is not None and step != self._reported:  # not mid-accumulation
            self._reported = step
            self.progress(step, self.progress_total)


def find_learning_rate(
    config: TrainConfig,
    *,
    workspace: Workspace | None = None,
    min_lr: float = 1e-7,
    max_lr: float = 1.0,
    num_steps: int = 100,
    progress: Progress | None = None,
    early_stop_threshold: float | None = 4.0,
) -> LrFinderResult:
    """Run the range test for `config` (model, method, LoRA, batch size, data and precision as a
    run would use them, in one process). Learning rates grow exponentially from `min_lr` to
    `max_lr` over `num_steps` optimizer steps, stopping early once the smoothed loss passes
    `early_stop_threshold` times its best (None: never). `progress(done, total)` is called
    after each step. Raises ConfigError for an unusable config or range."""
    from utils.training.model import load_base_model
    from utils.training.run import build_module, build_trainer, dataset_dir
    from utils.training.strategies import plan_hardware

    if not 0 < min_lr < max_lr:
        raise ConfigError(f"learning-rate range: need 0 < min_lr < max_lr, got {min_lr}, {max_lr}")
    if num_steps < 2:
        raise ConfigError("num_steps must be at least 2")
    config = _finder_config(config, num_steps)
    data_dir = dataset_dir(config)
    plan = plan_hardware(config)
    base = load_base_model(config.model, workspace or get_workspace())
    module, data = build_module(config, base, data_dir, module_class=_ReportingFineTuner)
    module.progress, module.progress_total = progress, num_steps
    with tempfile.TemporaryDirectory(prefix="lr-find-") as scratch:
        trainer = build_trainer(config, Path(scratch), plan, callbacks=[])
        finder = Tuner(trainer).lr_find(
            module, datamodule=data, min_lr=min_lr, max_lr=max_lr, num_training=num_steps,
            early_stop_threshold=early_stop_threshold, attr_name="learning_rate",
        )  # fmt: skip
    if finder is None:
        raise ConfigError("the learning-rate finder did not run")
    lrs = tuple(float(v) for v in finder.results.get("lr", ()))
    losses = tuple(float(v) for v in finder.results.get("loss", ()))
    suggestion = finder.suggestion(skip_begin=min(10, len(lrs) // 5), skip_end=1)
    return LrFinderResult(lrs, losses, None if suggestion is None else float(suggestion), num_steps)


def _finder_config(config: TrainConfig, num_steps: int) -> TrainConfig:
    """`config` for the range test: one process, no validation or checkpoint in its steps."""
    return dataclasses.replace(
        config,
        strategy="auto",
        devices=1,
        num_nodes=1,
        max_steps=max(config.max_steps, num_steps + 1),
        val_every_steps=num_steps + 1,
        checkpoint_every_steps=num_steps + 1,
        forgetting_check=0,
    )


# -- command line --------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Suggest a learning rate with a range test.")
    p.add_argument("--dataset", required=True, help="dataset folder or name")
    p.add_argument("--model", required=True, help="base model: a name or a path")
    add_config_arguments(p)
    p.add_argument("--num-steps", type=int, default=100, help="optimizer steps (default 100)")
    p.add_argument("--min-lr", type=float, default=1e-7)
    p.add_argument("--max-lr", type=float, default=1.0)
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.add_argument("--plot", type=Path, metavar="FILE.html", help="write the curve as HTML")
    p.add_argument("--output", type=Path, metavar="FILE.json",
                   help="write the whole result as JSON to FILE (whole or not at all)")  # fmt: skip
    p.add_argument("--progress", action="store_true",
                   help=f"print '{PROGRESS_PREFIX} N/TOTAL' to stderr after each step")  # fmt: skip
    return p


def _print_progress(done: int, total: int) -> None:
    print(f"{PROGRESS_PREFIX} {done}/{total}", file=sys.stderr, flush=True)


def build_config(args: argparse.Namespace) -> TrainConfig:
    extra = [f"dataset={args.dataset}", f"model={args.model}"]
    return compose_config(args.preset, args.config, [*args.assignments, *extra])


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        progress = _print_progress if args.progress else None
        result = find_learning_rate(build_config(args), min_lr=args.min_lr, max_lr=args.max_lr,
                                    num_steps=args.num_steps, progress=progress)  # fmt: skip
    except (ConfigError, ModelNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.plot:
        lr_finder_figure(result).write_html(args.plot)  # plotly.js embedded: opens offline
    if args.output:
        write_json(args.output, result.to_dict())
    if args.json:
        print(json.dumps(result.to_dict()))
    elif result.suggestion is None:
        print(f"no suggestion: only {len(result.lrs)} steps ran; try more --num-steps")
    else:
        print(f"suggested learning rate: {result.suggestion:.3g} "
              f"({len(result.lrs)} steps from {args.min_lr:g} to {args.max_lr:g})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
