"""One training run at a time per device: `workspace.runs/.locks/<device>.json` names the run
holding it (run_dir, pid, pid create time, since when).

Lock files are changed only under an `flock` on `.locks/.mutex` (the kernel drops it if its
holder dies) and are written atomically (temporary file + rename), so readers never see half a
lock. A lock whose process is gone, is a zombie, or whose pid now belongs to another process
(create time differs) is stale: `claim` takes it over. Also the JSON helpers run files share.
POSIX only (`fcntl`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from utils.workspace import Workspace, get_workspace

LOCKS_DIR = ".locks"
CREATE_TIME_TOLERANCE = 1.0  # seconds; a reused pid starts much later than the original
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")


class DeviceBusyError(RuntimeError):
    """The device already runs a training run; the message names it and since when."""

    def __init__(self, device: str, run_dir: str, since: str) -> None:
        super().__init__(
            f"{device} is busy: run {Path(run_dir).name} ({run_dir}) has been training on it "
            f"since {since}. Stop that run or wait for it to end."
        )
        self.device, self.run_dir, self.since = device, Path(run_dir), since


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing, half-written or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write whole or not at all: readers never see a half-written file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(temporary, path)


def process_alive(pid: Any, create_time: Any) -> bool:
    """True when `pid` runs and is the process started at `create_time` (not a reused pid, not a
    zombie)."""
    if not isinstance(pid, int) or not isinstance(create_time, int | float):
        return False
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - create_time) > CREATE_TIME_TOLERANCE:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def zombie_child(pid: int) -> bool:
    """A finished child of this process, not yet collected (its reaper thread is about to)."""
    try:
        process = psutil.Process(pid)
        return process.status() == psutil.STATUS_ZOMBIE and process.ppid() == os.getpid()
    except psutil.Error:
        return False


def check_device(device: str) -> None:
    if not DEVICE_PATTERN.fullmatch(device):
        raise ValueError(f"device must be cpu, cuda or cuda:N, not {device!r}")


def lock_path(workspace: Workspace | None, device: str) -> Path:
    check_device(device)
    return (workspace or get_workspace()).runs / LOCKS_DIR / f"{device}.json"


def live_holder(lock: Path) -> dict[str, Any] | None:
    """The lock's record when a live process holds it, else None."""
    holder = read_json(lock)
    if holder is None or not process_alive(holder.get("pid"), holder.get("create_time")):
        return None
    return holder


@contextlib.contextmanager
def _mutex(lock: Path) -> Iterator[None]:
    lock.parent.mkdir(parents=True, exist_ok=True)
    with (lock.parent / ".mutex").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def claim(lock: Path, device: str) -> Iterator[None]:
    """Hold the lock directory's mutex; DeviceBusyError when a live run holds `lock`. Inside,
    start the process and `write_json(lock, record)` with its pid and create time; a stale or
    corrupt lock is simply overwritten."""
    with _mutex(lock):
        holder = live_holder(lock)
        if holder is not None:
            raise DeviceBusyError(device, str(holder.get("run_dir")), str(holder.get("started")))
        yield


def release(lock: Path, pid: Any, create_time: Any) -> None:
    """Remove the lock if it still belongs to the process (pid, create_time) or is corrupt."""
    with _mutex(lock):
        holder = read_json(lock)
        if holder is None or (
            holder.get("pid") == pid and holder.get("create_time") == create_time
        ):
            lock.unlink(missing_ok=True)
