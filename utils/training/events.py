"""A run's event log, `RUN_DIR/events.jsonl`: one JSON object per line, appended by the training
process and tailed by the UI (which may be another process, or restarted: the file is the truth).

Every event has `kind` and `time` (seconds since the epoch). Kinds and their fields:
- "start": max_steps, config (dict), resumed_from_step (int or null), devices (text)
- "step": step, epoch, loss, lr, grad_norm, samples_per_second, eta_seconds, max_steps
- "val": step, and the logged validation figures ("val/wer", "val/cer", "val/loss")
- "log": level ("info" | "warning" | "error"), message
- "forgetting": wer_before, wer_after (English WER fractions), n_utterances, message
  (`utils.training.forgetting`; after the final validation, before "end")
- "end": state ("finished" | "stopped" | "failed"), message, and for "finished" the metrics
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENTS_NAME = "events.jsonl"
STOP_NAME = "STOP"  # its presence asks the run to save a checkpoint and end ("stopped")
END_STATES = ("finished", "stopped", "failed")


def _plain(value: Any) -> Any:
    """JSON-safe: non-finite floats become null, tensors and numpy scalars become numbers."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class EventWriter:
    """Appends events to `run_dir/events.jsonl`; each line is written and flushed whole."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / EVENTS_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"kind": kind, "time": time.time(), **_plain(fields)}
        line = json.dumps(event, ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
        return event

    def log(self, message: str, level: str = "info") -> None:
        self.write("log", level=level, message=message)


@dataclass(frozen=True)
class EventChunk:
    events: tuple[dict[str, Any], ...]
    offset: int  # byte offset to pass to the next read


def read_events(run_dir: str | os.PathLike, offset: int = 0) -> EventChunk:
    """Complete events appended since byte `offset`; a partial last line waits for the next read,
    and a line that is not JSON is skipped (a killed writer can leave one)."""
    path = Path(run_dir) / EVENTS_NAME
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return EventChunk((), offset)
    complete = data[: data.rfind(b"\n") + 1]
    events = []
    for line in complete.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and "kind" in event:
            events.append(event)
    return EventChunk(tuple(events), offset + len(complete))


def stop_requested(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / STOP_NAME).exists()


def request_stop(run_dir: str | os.PathLike) -> None:
    """Ask the run in `run_dir` to save a checkpoint and end; it notices at its next step."""
    (Path(run_dir) / STOP_NAME).touch()
