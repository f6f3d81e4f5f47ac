"""Training runs as child processes, so a crash or an out-of-memory kill never takes the UI down.

A run is started in its own session (`start_new_session=True`): it survives the UI, a UI crash
never kills it, and `kill` signals its whole process group (DataLoader workers, DDP ranks).
Everything about a run lives in its directory, so a restarted UI can reattach:
- `job.json`: pid, pid create time, command, device, start time; the exit code once the starting
  process has seen the end.
- `console.log`: stdout and stderr of the run.
- `events.jsonl` / `STOP`: the event log and stop request of `utils.training.events`.

One run at a time per device (`utils.training.device_lock`). The device is released by a
reaper thread of the starting process when the run ends, by `job_state` when it sees the
process gone (after a UI restart), and taken over by the next start when its process is gone or
its pid was reused: a dead process can never keep a device. POSIX only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import psutil

from utils.training.device_lock import (
    DeviceBusyError,
    check_device,
    claim,
    live_holder,
    lock_path,
    process_alive,
    read_json,
    release,
    write_json,
    zombie_child,
)
from utils.training.events import EVENTS_NAME, STOP_NAME, read_events, request_stop
from utils.workspace import Workspace

__all__ = [  # DeviceBusyError is re-exported: callers need only this module
    "DeviceBusyError", "JobState", "RunHandle", "active_run", "job_state", "kill",
    "start_process", "start_training", "stop", "wait",
]  # fmt: skip
JOB_NAME = "job.json"
CONSOLE_NAME = "console.log"
TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "train_whisper_lightning.py"
TAIL_BYTES = 64 * 1024  # how much of the end of events.jsonl / console.log is read
TAIL_LINES = 20
CONSOLE_HEADER = "=== run started "  # console.log line written before each process's output
RECENT_SECONDS = 120.0  # a run without job.json whose log changed this recently is running
State = Literal["running", "finished", "stopped", "failed", "killed"]


@dataclass(frozen=True)
class RunHandle:
    run_dir: Path
    pid: int
    device: str


@dataclass(frozen=True)
class JobState:
    state: State
    pid: int | None
    step: int | None
    max_steps: int | None
    started: str | None  # ISO time
    message: str
    console_tail: tuple[str, ...] = ()  # last lines of console.log when the run failed or died
    returncode: int | None = None  # when known (seen by the starting process)


def _now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _tail_lines(path: Path, lines: int = TAIL_LINES) -> tuple[str, ...]:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - TAIL_BYTES))
            data = handle.read()
    except OSError:
        return ()
    text = [line for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]
    headers = [i for i, line in enumerate(text) if line.startswith(CONSOLE_HEADER)]
    return tuple(text[headers[-1] + 1 if headers else 0 :][-lines:])  # this process's lines


def _reap(process: subprocess.Popen, run_dir: Path, lock: Path, create_time: float) -> None:
    """Wait for the run to end, then record its exit code and release the device."""
    returncode = process.wait()
    job_path = run_dir / JOB_NAME
    job = read_json(job_path)
    if job is not None and job.get("pid") == process.pid:
        write_json(job_path, {**job, "returncode": returncode, "ended": _now_iso()})
    release(lock, process.pid, create_time)


# starting


def start_process(
    command: list[str],
    run_dir: Path,
    *,
    device: str = "cpu",
    workspace: Workspace | None = None,
    env: dict[str, str] | None = None,
) -> RunHandle:
    """Start `command` as the run in `run_dir` on `device` (DeviceBusyError when another run
    holds it). `env` entries are added to this process's environment. The output is appended to
    `run_dir/console.log`; a STOP file left by an earlier run in `run_dir` is removed."""
    run_dir = Path(run_dir).resolve()
    lock = lock_path(workspace, device)
    run_dir.mkdir(parents=True, exist_ok=True)
    with claim(lock, device):
        (run_dir / STOP_NAME).unlink(missing_ok=True)
        started = _now_iso()
        with (run_dir / CONSOLE_NAME).open("ab") as console:
            console.write(f"{CONSOLE_HEADER}{started}: {' '.join(command)}\n".encode())
            console.flush()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        create_time = psutil.Process(process.pid).create_time()  # readable even as a zombie
        record = {"run_dir": str(run_dir), "pid": process.pid, "create_time": create_time,
                  "device": device, "started": started}  # fmt: skip
        write_json(lock, record)
        write_json(
            run_dir / JOB_NAME,
            {**record, "command": command, "started_at": time.time(), "lock": str(lock)},
        )
    threading.Thread(
        target=_reap,
        args=(process, run_dir, lock, create_time),
        name=f"reaper-{process.pid}",
        daemon=True,
    ).start()
    return RunHandle(run_dir=run_dir, pid=process.pid, device=device)


def start_training(
    args: list[str],
    run_dir: Path,
    *,
    device: str = "cpu",
    workspace: Workspace | None = None,
) -> RunHandle:
    """Run `train_whisper_lightning.py ARGS --output-dir RUN_DIR` as a child process. On "cpu"
    the GPUs are hidden (CUDA_VISIBLE_DEVICES empty); "cuda:N" shows only GPU N; "cuda" all."""
    check_device(device)
    run_dir = Path(run_dir).resolve()
    command = [sys.executable, str(TRAIN_SCRIPT), *args, "--output-dir", str(run_dir)]
    env = {"PYTHONUNBUFFERED": "1"}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif device.startswith("cuda:"):
        env["CUDA_VISIBLE_DEVICES"] = device.partition(":")[2]
    return start_process(command, run_dir, device=device, workspace=workspace, env=env)


# observing and controlling


@dataclass(frozen=True)
class _Progress:
    step: int | None = None
    max_steps: int | None = None
    start: dict[str, Any] | None = None
    end: dict[str, Any] | None = None


def _progress(run_dir: Path, since: float | None) -> _Progress:
    """The latest step, max_steps, "start" and "end" events from the end of events.jsonl; an
    "end" written before `since` (an earlier process in the same directory) is ignored."""
    path = run_dir / EVENTS_NAME
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read()
    except OSError:
        return _Progress()
    offset = max(0, size - TAIL_BYTES)
    if offset:
        offset += data.find(b"\n") + 1  # start at a whole line
    step = max_steps = start = end = None
    for event in read_events(run_dir, offset).events:
        kind = event.get("kind")
        if kind == "start":
            start, end, step = event, None, event.get("resumed_from_step")
        elif kind == "end" and (since is None or _number(event.get("time")) >= since - 1):
            end = event
        elif kind == "step":
            step = event.get("step", step)
        max_steps = event.get("max_steps", max_steps)
    return _Progress(_int_or_none(step), _int_or_none(max_steps), start, end)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _resume_hint(run_dir: Path) -> str:
    checkpoints = [p for p in (*run_dir.glob("*.ckpt"), *run_dir.glob("checkpoints/*.ckpt"))
                   if p.is_file()]  # fmt: skip
    if not checkpoints:
        return "No checkpoint was saved yet; a new run starts from the beginning."
    last = max(checkpoints, key=lambda p: (p.name == "last.ckpt", p.stat().st_mtime))
    return f"The last checkpoint ({last.relative_to(run_dir)}) can be resumed (--resume {run_dir})."


def _with_tail(message: str, tail: tuple[str, ...]) -> str:
    if not tail:
        return message
    return message + "\n\nLast lines of console.log:\n" + "\n".join(tail)


def _ended_without_end_event(run_dir: Path, job: dict[str, Any]) -> tuple[State, str, tuple]:
    """Classify a process that is gone without writing an "end" event."""
    tail = _tail_lines(run_dir / CONSOLE_NAME)
    code = job.get("returncode")
    crashed = code is None and any(line.startswith("Traceback") for line in tail)
    if (isinstance(code, int) and code > 0) or crashed:
        last = tail[-1] if tail else "no output"
        status = f"exit code {code}" if code is not None else "it crashed"
        return "failed", _with_tail(f"Training failed ({status}): {last}", tail), tail
    if code == 0:
        return "failed", _with_tail("Training exited without reporting a result.", tail), tail
    how = f" by {_signal_name(-code)}" if isinstance(code, int) and code < 0 else ""
    message = (
        f"The training process was killed{how} before it ended (Kill, or the system ending it, "
        f"e.g. when memory ran out). {_resume_hint(run_dir)}"
    )
    return "killed", message, tail


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def job_state(run_dir: Path) -> JobState:
    """The state of the run in `run_dir`, from its process, job.json and event log. Releases the
    device lock when the process is found gone."""
    run_dir = Path(run_dir)
    job = read_json(run_dir / JOB_NAME) or {}
    pid, create_time = _int_or_none(job.get("pid")), job.get("create_time")
    progress = _progress(run_dir, _number(job.get("started_at")) if job else None)
    started = job.get("started") if isinstance(job.get("started"), str) else None
    if started is None and progress.start and isinstance(progress.start.get("time"), int | float):
        moment = datetime.fromtimestamp(progress.start["time"]).astimezone()
        started = moment.isoformat(timespec="seconds")
    base = {"pid": pid, "step": progress.step, "max_steps": progress.max_steps, "started": started}
    if pid is not None and (process_alive(pid, create_time) or zombie_child(pid)):
        return JobState("running", message=_running_message(run_dir, progress), **base)
    if pid is not None and progress.end is None and "returncode" not in job:
        job = _await_returncode(run_dir, job)
    if pid is not None and isinstance(job.get("lock"), str):
        release(Path(job["lock"]), pid, create_time)
    code = _int_or_none(job.get("returncode"))
    if progress.end is not None:
        state = progress.end.get("state")
        state = state if state in ("finished", "stopped", "failed") else "failed"
        message = str(progress.end.get("message") or f"Training {state}.")
        tail = _tail_lines(run_dir / CONSOLE_NAME) if state == "failed" else ()
        return JobState(state, message=_with_tail(message, tail), console_tail=tail,
                        returncode=code, **base)  # fmt: skip
    if pid is None:
        return _state_without_job(run_dir, base)
    state, message, tail = _ended_without_end_event(run_dir, job)
    return JobState(state, message=message, console_tail=tail, returncode=code, **base)


def _await_returncode(run_dir: Path, job: dict[str, Any], seconds: float = 0.3) -> dict[str, Any]:
    """The starting process's reaper may be writing the exit code right now: give it a moment
    (only when the lock still names this process, i.e. nobody has handled the end yet)."""
    lock = read_json(Path(job["lock"])) if isinstance(job.get("lock"), str) else None
    if lock is None or lock.get("pid") != job.get("pid"):
        return job
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)
        fresh = read_json(run_dir / JOB_NAME) or {}
        if "returncode" in fresh:
            return fresh
    return job


def _running_message(run_dir: Path, progress: _Progress) -> str:
    if (run_dir / STOP_NAME).exists():
        return "Stopping: saving a checkpoint."
    if progress.end is not None:
        return f"Ending: {progress.end.get('message') or progress.end.get('state')}."
    if progress.step is None:
        return "Starting."
    total = f"/{progress.max_steps}" if progress.max_steps else ""
    return f"Training: step {progress.step}{total}."


def _state_without_job(run_dir: Path, base: dict[str, Any]) -> JobState:
    """A run started outside the app (no job.json, no end event): running while its event log
    keeps changing, else considered killed."""
    try:
        age = time.time() - (run_dir / EVENTS_NAME).stat().st_mtime
    except OSError:
        age = float("inf")
    if age < RECENT_SECONDS:
        return JobState("running", message="Running (started outside the app).", **base)
    message = f"The run ended without reporting a result. {_resume_hint(run_dir)}"
    return JobState("killed", message=message, **base)


def stop(run_dir: Path) -> None:
    """Ask the run to save a checkpoint and end ("stopped"); it notices at its next step."""
    request_stop(run_dir)


def kill(run_dir: Path) -> bool:
    """SIGKILL the run's process group at once (no checkpoint); False when it was not running."""
    job = read_json(Path(run_dir) / JOB_NAME) or {}
    pid = _int_or_none(job.get("pid"))
    if pid is None or not process_alive(pid, job.get("create_time")):
        return False
    try:
        os.killpg(pid, signal.SIGKILL)  # the run leads its own session and process group
    except ProcessLookupError:
        return False
    return True


def wait(run_dir: Path, timeout: float | None = None, poll: float = 0.05) -> JobState:
    """Poll until the run is no longer "running" or `timeout` seconds passed; the last state."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        state = job_state(run_dir)
        if state.state != "running" or (deadline is not None and time.monotonic() >= deadline):
            return state
        time.sleep(poll)


def active_run(device: str = "cpu", workspace: Workspace | None = None) -> Path | None:
    """The run directory of the run now holding `device` (to reattach after a refresh)."""
    holder = live_holder(lock_path(workspace, device))
    return None if holder is None else Path(str(holder.get("run_dir")))
