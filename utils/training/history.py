"""Run history: every run under the workspace's `runs/`, newest first, with its state (from
`utils.training.jobs.job_state`), config and final metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.training.device_lock import read_json
from utils.training.events import EVENTS_NAME
from utils.training.jobs import JOB_NAME, State, job_state
from utils.workspace import Workspace, get_workspace


@dataclass(frozen=True)
class RunSummary:
    run_dir: Path
    name: str
    state: State
    started: str | None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. "val/wer", "val/cer"
    step: int | None = None


def list_runs(workspace: Workspace | None = None) -> list[RunSummary]:
    """The runs under `workspace.runs` (directories with job.json, events.jsonl or config.json),
    newest first; unreadable or half-written files leave their fields empty."""
    root = (workspace or get_workspace()).runs
    found = []
    for run_dir in root.iterdir() if root.is_dir() else ():
        if run_dir.name.startswith(".") or not any(
            (run_dir / name).is_file() for name in (JOB_NAME, EVENTS_NAME, "config.json")
        ):
            continue
        found.append((_started_at(run_dir), _summary(run_dir)))
    return [summary for _, summary in sorted(found, key=lambda item: item[0], reverse=True)]


def _started_at(run_dir: Path) -> float:
    job = read_json(run_dir / JOB_NAME) or {}
    if isinstance(job.get("started_at"), int | float):
        return float(job["started_at"])
    try:
        return run_dir.stat().st_mtime
    except OSError:
        return 0.0


def _summary(run_dir: Path) -> RunSummary:
    state = job_state(run_dir)
    metrics = read_json(run_dir / "metrics.json") or {}
    numbers = {
        str(k): float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return RunSummary(
        run_dir=run_dir,
        name=run_dir.name,
        state=state.state,
        started=state.started,
        config=read_json(run_dir / "config.json") or {},
        metrics=numbers,
        step=state.step,
    )
