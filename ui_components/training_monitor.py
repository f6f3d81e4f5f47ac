"""Following one training run from its event log: a `Monitor` value (kept per browser session in
a `gr.State`) holds the byte offset read so far and the figures gathered; `advance` reads only
what was appended since. Plain Python: the tab turns it into components."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.training.events import read_events
from utils.training.jobs import CONSOLE_NAME

STEP_KEYS = (
    "step",
    "epoch",
    "loss",
    "lr",
    "grad_norm",
    "samples_per_second",
    "eta_seconds",
    "max_steps",
)
MAX_LOG_LINES = 200
CONSOLE_LINES = 15
CONSOLE_TAIL_BYTES = 16 * 1024


@dataclass(frozen=True)
class Monitor:
    """What one session knows of the run it follows ("" = none)."""

    run_dir: str = ""
    offset: int = 0
    steps: tuple[dict[str, Any], ...] = ()
    vals: tuple[dict[str, Any], ...] = ()
    logs: tuple[str, ...] = ()
    max_steps: int | None = None

    @property
    def name(self) -> str:
        return Path(self.run_dir).name if self.run_dir else ""

    @property
    def latest(self) -> dict[str, Any]:
        return self.steps[-1] if self.steps else {}


def device_choices() -> list[str]:
    """ "cpu", then each CUDA device CTranslate2 sees (and "cuda", all of them, when several)."""
    import ctranslate2

    try:
        count = ctranslate2.get_cuda_device_count()
    except (RuntimeError, OSError):
        count = 0
    return ["cpu", *(f"cuda:{i}" for i in range(count)), *(["cuda"] if count > 1 else [])]


def follow(run_dir: str | Path) -> Monitor:
    """A monitor at the start of `run_dir`'s event log (the next `advance` replays it all)."""
    return Monitor(run_dir=str(run_dir))


def _clock(event: dict[str, Any]) -> str:
    moment = event.get("time")
    return time.strftime("%H:%M:%S", time.localtime(moment)) if isinstance(moment, float) else ""


def _percent(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "n/a"


def log_line(event: dict[str, Any]) -> str | None:
    """One readable line for start, log, val, end and other events with a message (None for
    step events)."""
    kind, clock = event.get("kind"), _clock(event)
    if kind == "start":
        resumed = " (resumed)" if event.get("resumed") else ""
        return f"{clock} start{resumed}: {event.get('devices', '')} {event.get('parameters', '')}"
    if kind == "log":
        return f"{clock} {event.get('level', 'info')}: {event.get('message', '')}"
    if kind == "val":
        return (
            f"{clock} validation at step {event.get('step')}: WER "
            f"{_percent(event.get('val/wer'))}, CER {_percent(event.get('val/cer'))}"
        )
    if kind == "end":
        return f"{clock} {event.get('state', 'ended')}: {event.get('message', '')}"
    if kind != "step" and event.get("message"):  # later kinds, e.g. the forgetting check
        return f"{clock} {kind}: {event['message']}"
    return None


def advance(monitor: Monitor) -> tuple[Monitor, bool]:
    """`monitor` with the events appended since its offset; True when figures changed."""
    if not monitor.run_dir:
        return monitor, False
    chunk = read_events(monitor.run_dir, monitor.offset)
    steps, vals, logs = list(monitor.steps), list(monitor.vals), list(monitor.logs)
    max_steps = monitor.max_steps
    for event in chunk.events:
        if event.get("kind") == "step":
            steps.append({k: event.get(k) for k in STEP_KEYS})
        elif event.get("kind") == "val":
            vals.append({k: v for k, v in event.items() if k == "step" or k.startswith("val/")})
        if isinstance(event.get("max_steps"), int):
            max_steps = event["max_steps"]
        line = log_line(event)
        if line:
            logs.append(line)
    changed = len(steps) != len(monitor.steps) or len(vals) != len(monitor.vals)
    updated = dataclasses.replace(
        monitor,
        offset=chunk.offset,
        steps=tuple(steps),
        vals=tuple(vals),
        logs=tuple(logs[-MAX_LOG_LINES:]),
        max_steps=max_steps,
    )
    return updated, changed


def console_tail(run_dir: str | Path, lines: int = CONSOLE_LINES) -> list[str]:
    """The last lines of the run's console.log (stdout and stderr of its process)."""
    path = Path(run_dir) / CONSOLE_NAME
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - CONSOLE_TAIL_BYTES))
            data = handle.read()
    except OSError:
        return []
    text = [line for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]
    return text[-lines:]


def log_text(monitor: Monitor) -> str:
    """The run's log events, then the tail of its console."""
    if not monitor.run_dir:
        return ""
    tail = console_tail(monitor.run_dir)
    console = ["", "--- console.log (last lines) ---", *tail] if tail else []
    return "\n".join([*monitor.logs, *console])
