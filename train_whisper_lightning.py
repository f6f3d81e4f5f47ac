"""Fine-tune Whisper from the command line (LoRA or full, on CPU, one GPU, DDP or DeepSpeed).

  python train_whisper_lightning.py --dataset DIR --model NAME_OR_PATH [--preset NAME]
      [--config FILE] [--set key=value ...] [--max-steps N] [--output-dir RUN_DIR]
  python train_whisper_lightning.py --resume RUN_DIR [--max-steps N]

The config is built in this order: the preset (or the defaults), the --config file's values,
each --set, then --dataset/--model/--max-steps. A bare dataset name is looked up under the
workspace's datasets/; the run goes to --output-dir or runs/<time>-<dataset>-<method>.
RUN_DIR/metrics.json holds the final val/wer and val/cer (and English WER before/after
fine-tuning, see TrainConfig.forgetting_check). Exit status: 0 finished or
stopped, 1 failed (the reason is printed and is the last event in RUN_DIR/events.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from utils.training.artifacts import new_run_dir
from utils.training.config import (
    ConfigError,
    TrainConfig,
    add_config_arguments,
    compose_config,
)
from utils.training.run import RunResult, resume_config, train
from utils.workspace import get_workspace

# DDP re-runs this script once per extra process: they must all find the same run directory.
RUN_DIR_ENV = "WHISPER_STUDIO_RUN_DIR"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", help="dataset folder or name under the workspace's datasets/")
    p.add_argument("--model", help="base model: a name in the workspace's models/ or a path")
    add_config_arguments(p)
    p.add_argument("--max-steps", type=int, help="optimizer steps to train (in all)")
    p.add_argument("--output-dir", type=Path, help="the run directory")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run")
    return p


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The run's config from the arguments (see the module docstring for the order)."""
    if args.resume:
        return resume_config(args.resume, args.max_steps)
    config = compose_config(args.preset, args.config, args.assignments)
    extra = {"dataset": args.dataset, "model": args.model, "max_steps": args.max_steps}
    given = [f"{k}={v}" for k, v in extra.items() if v is not None]
    config = config.with_overrides(given)
    if not config.dataset:
        raise ConfigError("no dataset: pass --dataset DIR (or set it in --config)")
    return config


def run_directory(args: argparse.Namespace, config: TrainConfig) -> Path:
    if args.resume:
        return args.resume
    chosen = args.output_dir or os.environ.get(RUN_DIR_ENV)
    if not chosen:
        chosen = new_run_dir(get_workspace().runs, config.dataset, config.method)
    os.environ[RUN_DIR_ENV] = str(chosen)
    return Path(chosen)


def report(result: RunResult) -> int:
    print(f"{result.state}: {result.message}")
    if result.metrics:
        figures = {k: v for k, v in result.metrics.items() if k.startswith(("val/", "english/"))}
        print(json.dumps(figures, indent=1))
    print(f"run directory: {result.run_dir}")
    return 1 if result.state == "failed" else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = build_config(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result = train(config, run_directory(args, config), resume=bool(args.resume))
    return report(result)


if __name__ == "__main__":
    sys.exit(main())
