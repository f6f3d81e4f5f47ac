"""Run history for the Training tab: one table row per run of the workspace, a run's details
(state, config, curves), and the checks done before a run is resumed. Plain Python."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from ui_components.training_figures import dashboard_figure
from ui_components.training_monitor import advance, follow
from utils.training.artifacts import CHECKPOINTS, CONFIG_NAME, new_run_dir, read_json
from utils.training.config import ConfigError, TrainConfig
from utils.training.history import RunSummary, list_runs
from utils.training.jobs import job_state
from utils.workspace import get_workspace

COLUMNS = [
    "run",
    "state",
    "started",
    "step",
    "val WER",
    "val CER",
    "model",
    "dataset",
    "method",
    "learning rate",
    "max steps",
]
LAST_CHECKPOINT = "last.ckpt"  # callbacks.LAST_CHECKPOINT, without importing Lightning here
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")


def _fraction(value: Any) -> float | None:
    return round(float(value), 4) if isinstance(value, int | float) else None


def _short(path: Any) -> str:
    return Path(str(path)).name if path else ""


def _row(summary: RunSummary) -> list[Any]:
    config, metrics = summary.config, summary.metrics
    started = (summary.started or "").replace("T", " ")[:19]
    return [
        summary.name,
        summary.state,
        started,
        summary.step,
        _fraction(metrics.get("val/wer")),
        _fraction(metrics.get("val/cer")),
        _short(config.get("model")),
        _short(config.get("dataset")),
        config.get("method", ""),
        config.get("learning_rate"),
        config.get("max_steps"),
    ]


def history_rows() -> list[list[Any]]:
    """The runs of the workspace, newest first."""
    return [_row(summary) for summary in list_runs()]


def run_names() -> list[str]:
    return [summary.name for summary in list_runs()]


def run_directory(name: str) -> Path:
    """The run directory of `name` under the workspace's runs/ (ConfigError when unknown)."""
    name = (name or "").strip()
    if not RUN_NAME.fullmatch(name):
        raise ConfigError("pick a run first" if not name else f"{name!r} is not a run name")
    path = get_workspace().runs / name
    if not path.is_dir():
        raise ConfigError(f"there is no run named {name!r}")
    return path


def new_run_directory(name: str, dataset: str, method: str) -> Path:
    """A fresh run directory: `name` when given (it must not exist), else time-dataset-method."""
    runs = get_workspace().runs
    name = (name or "").strip()
    if name:
        if not RUN_NAME.fullmatch(name):
            raise ConfigError(f"run name {name!r}: use letters, digits, '.', '_' and '-'")
        if (runs / name).exists():
            raise ConfigError(f"a run named {name!r} exists: pick another name or resume it")
        return runs / name
    return new_run_dir(runs, dataset, method)


def resume_arguments(run_dir: Path, until_step: float | None) -> list[str]:
    """Arguments of the training script that resume `run_dir`, checked here first."""
    config = TrainConfig.load(run_dir / CONFIG_NAME)
    if not (run_dir / CHECKPOINTS / LAST_CHECKPOINT).is_file():
        raise ConfigError(f"{run_dir.name} has no checkpoint to resume from yet")
    state = job_state(run_dir)
    if state.state == "running":
        raise ConfigError(f"{run_dir.name} is still running")
    args = ["--resume", str(run_dir)]
    if until_step:
        config.with_overrides([f"max_steps={int(until_step)}"])  # ConfigError when invalid
        args += ["--max-steps", str(int(until_step))]
    return args


def run_details(name: str) -> tuple[str, dict[str, Any], go.Figure]:
    """A run's state line, config and curves (from its whole event log)."""
    run_dir = run_directory(name)
    state = job_state(run_dir)
    monitor, _ = advance(follow(run_dir))
    step = f", step {state.step}" + (f"/{state.max_steps}" if state.max_steps else "")
    summary = (
        f"**{name}**: {state.state}{step if state.step is not None else ''}. "
        + (state.message.split("\n\n")[0])
    )
    return (
        summary,
        read_json(run_dir / CONFIG_NAME),
        dashboard_figure(monitor.steps, monitor.vals, title=name),
    )
