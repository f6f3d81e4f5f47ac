"""Training jobs as child processes, with a fake training script in place of the real one: it
writes events with `EventWriter`, honours STOP, crashes or hangs on request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from utils.training import jobs
from utils.training.events import EventWriter, read_events
from utils.training.history import list_runs
from utils.training.jobs import (
    DeviceBusyError,
    RunHandle,
    active_run,
    job_state,
    kill,
    start_process,
    start_training,
    stop,
    wait,
)
from utils.workspace import get_workspace

REPO = Path(__file__).resolve().parents[1]
FAKE_TRAINER = """
import os, sys, time
from utils.training.events import EventWriter, stop_requested

mode, steps, run_dir = sys.argv[1], int(sys.argv[2]), sys.argv[sys.argv.index("--output-dir") + 1]
events = EventWriter(run_dir)
events.write("start", max_steps=steps, config={}, resumed_from_step=None, devices="cpu")
events.log(f"argv={sys.argv[1:]} cuda={os.environ.get('CUDA_VISIBLE_DEVICES')!r} "
           f"unbuffered={os.environ.get('PYTHONUNBUFFERED')}")
print("fake trainer running", flush=True)
if mode == "spawn":  # a worker process, like a DataLoader worker
    import subprocess
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    events.log(f"worker={worker.pid}")
for step in range(1, steps + 1):
    if mode == "crash" and step == 3:
        raise ValueError("the fake trainer broke at step 3")
    events.write("step", step=step, loss=1.0 / step, max_steps=steps)
    if stop_requested(run_dir):
        os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
        open(os.path.join(run_dir, "checkpoints", "last.ckpt"), "wb").close()
        events.write("end", state="stopped", message=f"Stopped at step {step}.")
        sys.exit(0)
    time.sleep(0.02)
events.write("end", state="finished", message="Finished.", metrics={"val/wer": 0.5})
"""


@pytest.fixture
def ws(tmp_path):
    return get_workspace(tmp_path / "ws")


@pytest.fixture
def fake_trainer(tmp_path, monkeypatch) -> Path:
    script = tmp_path / "train_whisper_lightning.py"
    script.write_text(textwrap.dedent(FAKE_TRAINER), encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setattr(jobs, "TRAIN_SCRIPT", script)
    return script


def start(ws, name: str, mode: str = "run", steps: int = 10_000, device: str = "cpu") -> RunHandle:
    return start_training([mode, str(steps)], ws.runs / name, device=device, workspace=ws)


def wait_for_step(run_dir: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e["kind"] == "step" for e in read_events(run_dir).events):
            return
        time.sleep(0.02)
    raise AssertionError(f"no step event in {run_dir}: {(run_dir / 'console.log').read_text()}")


def lock_file(ws, device: str = "cpu") -> Path:
    return ws.runs / ".locks" / f"{device}.json"


def test_start_run_stop(ws, fake_trainer):
    handle = start(ws, "run-a")
    assert handle.run_dir == (ws.runs / "run-a").resolve() and handle.device == "cpu"
    wait_for_step(handle.run_dir)
    state = job_state(handle.run_dir)
    assert state.state == "running" and state.pid == handle.pid
    assert state.max_steps == 10_000 and state.step >= 1 and state.started
    assert state.message.startswith("Training: step ")
    assert active_run("cpu", ws) == handle.run_dir
    assert json.loads(lock_file(ws).read_text())["pid"] == handle.pid

    job = json.loads((handle.run_dir / "job.json").read_text())
    assert job["command"][1:] == [str(fake_trainer), "run", "10000", "--output-dir",
                                  str(handle.run_dir)]  # fmt: skip
    assert job["command"][0] == sys.executable and job["device"] == "cpu"
    log = next(e for e in read_events(handle.run_dir).events if e["kind"] == "log")
    assert "cuda=''" in log["message"] and "unbuffered=1" in log["message"]

    stop(handle.run_dir)
    assert job_state(handle.run_dir).message.startswith(("Stopping: saving", "Stopped at step"))
    final = wait(handle.run_dir, timeout=10)
    assert final.state == "stopped" and final.message.startswith("Stopped at step")
    assert final.returncode in (0, None)
    assert not lock_file(ws).exists()
    assert active_run("cpu", ws) is None
    assert "fake trainer running" in (handle.run_dir / "console.log").read_text()


def test_finished_run(ws, fake_trainer):
    handle = start(ws, "short", steps=3)
    state = wait(handle.run_dir, timeout=10)
    assert (state.state, state.step, state.max_steps, state.message) == (
        "finished",
        3,
        3,
        "Finished.",
    )
    assert state.console_tail == ()


def test_second_start_on_a_busy_device(ws, fake_trainer):
    first = start(ws, "first")
    try:
        with pytest.raises(DeviceBusyError) as caught:
            start(ws, "second")
        message = str(caught.value)
        assert "cpu is busy" in message and "run first" in message
        assert str(first.run_dir) in message and "since 20" in message
        assert caught.value.run_dir == first.run_dir
        assert not (ws.runs / "second" / "job.json").exists()
        other = start(ws, "on-gpu", device="cuda:1")  # another device is free
        log_events = []
        deadline = time.monotonic() + 10
        while not log_events and time.monotonic() < deadline:
            log_events = [e for e in read_events(other.run_dir).events if e["kind"] == "log"]
            time.sleep(0.02)
        assert "cuda='1'" in log_events[0]["message"]
        kill(other.run_dir)
    finally:
        stop(first.run_dir)
    assert wait(first.run_dir, timeout=10).state == "stopped"
    assert wait(other.run_dir, timeout=10).state == "killed"


def test_sigkill_is_reported_as_killed_and_frees_the_device(ws, fake_trainer):
    handle = start(ws, "doomed")
    wait_for_step(handle.run_dir)
    (handle.run_dir / "checkpoints").mkdir()
    (handle.run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert kill(handle.run_dir) is True
    state = wait(handle.run_dir, timeout=10)
    assert state.state == "killed" and state.returncode == -signal.SIGKILL
    assert "was killed by SIGKILL before it ended" in state.message
    assert "memory" in state.message
    assert f"checkpoints/last.ckpt) can be resumed (--resume {handle.run_dir})" in state.message
    assert not lock_file(ws).exists()
    assert kill(handle.run_dir) is False
    again = start(ws, "after", steps=2)
    assert wait(again.run_dir, timeout=10).state == "finished"


def test_kill_ends_the_whole_process_group(ws, fake_trainer):
    handle = start(ws, "workers", mode="spawn")
    wait_for_step(handle.run_dir)
    log = [e["message"] for e in read_events(handle.run_dir).events if e["kind"] == "log"]
    worker = psutil.Process(int(log[-1].removeprefix("worker=")))
    assert kill(handle.run_dir)
    assert wait(handle.run_dir, timeout=10).state == "killed"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and worker.is_running():
        if worker.status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.02)
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE


def test_simultaneous_starts_on_one_device_let_exactly_one_through(ws, fake_trainer):
    from concurrent.futures import ThreadPoolExecutor

    def attempt(i: int) -> RunHandle | DeviceBusyError:
        try:
            return start(ws, f"race-{i}")
        except DeviceBusyError as exc:
            return exc

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(attempt, range(6)))
    handles = [r for r in results if isinstance(r, RunHandle)]
    assert len(handles) == 1 and sum(isinstance(r, DeviceBusyError) for r in results) == 5
    kill(handles[0].run_dir)
    assert wait(handles[0].run_dir, timeout=10).state == "killed"


def test_crash_is_failed_with_the_console_tail(ws, fake_trainer):
    handle = start(ws, "crash", mode="crash")
    state = wait(handle.run_dir, timeout=10)
    assert state.state == "failed" and state.returncode == 1
    assert state.message.startswith(
        "Training failed (exit code 1): ValueError: the fake trainer broke at step 3"
    )
    assert "Last lines of console.log:\nfake trainer running\nTraceback" in state.message
    assert "=== run started" in (handle.run_dir / "console.log").read_text()
    assert state.console_tail[-1] == "ValueError: the fake trainer broke at step 3"
    assert state.step == 2
    assert not lock_file(ws).exists()


def test_crash_seen_by_a_restarted_ui_is_still_failed(ws, fake_trainer):
    handle = start(ws, "crash", mode="crash")
    wait(handle.run_dir, timeout=10)
    job = json.loads((handle.run_dir / "job.json").read_text())
    del job["returncode"]  # as if the UI that started it died before seeing the end
    (handle.run_dir / "job.json").write_text(json.dumps(job))
    state = job_state(handle.run_dir)
    assert state.state == "failed" and "it crashed" in state.message


def test_stale_lock_of_a_dead_process_is_taken_over(ws, fake_trainer):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_file(ws).parent.mkdir(parents=True, exist_ok=True)
    stale = {"run_dir": "/gone", "pid": dead.pid, "create_time": time.time() - 60,
             "started": "yesterday"}  # fmt: skip
    lock_file(ws).write_text(json.dumps(stale))
    assert active_run("cpu", ws) is None
    handle = start(ws, "taker", steps=2)
    assert json.loads(lock_file(ws).read_text())["pid"] == handle.pid
    assert wait(handle.run_dir, timeout=10).state == "finished"


def test_lock_with_a_reused_pid_or_garbage_is_stale(ws, fake_trainer):
    lock_file(ws).parent.mkdir(parents=True, exist_ok=True)
    # this very process is alive, but started long before the recorded time: pid reused
    reused = {"run_dir": "/old", "pid": os.getpid(), "create_time": time.time() + 3600,
              "started": "later"}  # fmt: skip
    lock_file(ws).write_text(json.dumps(reused))
    assert active_run("cpu", ws) is None
    wait(start(ws, "one", steps=1).run_dir, timeout=10)
    lock_file(ws).write_text('{"run_dir": "/half-writ')
    assert wait(start(ws, "two", steps=1).run_dir, timeout=10).state == "finished"


def test_the_run_survives_the_process_that_started_it(ws, fake_trainer):
    """A UI crash (SIGKILL of the starting process) leaves the run training."""
    starter = f"""
import os, signal, sys
from pathlib import Path
from utils.training.jobs import start_training
from utils.workspace import get_workspace
import utils.training.jobs as jobs
jobs.TRAIN_SCRIPT = Path({str(fake_trainer)!r})
handle = start_training(["run", "10000"], Path({str(ws.runs / "orphan")!r}),
                        workspace=get_workspace({str(ws.root)!r}))
print(handle.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    ui = subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True)
    assert ui.returncode == -signal.SIGKILL, ui.stderr
    pid = int(ui.stdout.split()[0])
    run_dir = (ws.runs / "orphan").resolve()
    wait_for_step(run_dir)
    assert psutil.Process(pid).is_running()
    assert os.getsid(pid) == pid != os.getsid(0)  # its own session
    assert job_state(run_dir).state == "running"
    assert active_run("cpu", ws) == run_dir
    stop(run_dir)
    assert wait(run_dir, timeout=10).state == "stopped"
    assert not lock_file(ws).exists()  # released by the observer: the starter's reaper died


def test_handles_can_be_dropped(ws, fake_trainer):
    import gc

    pid = start(ws, "dropped").pid
    gc.collect()
    run_dir = (ws.runs / "dropped").resolve()
    wait_for_step(run_dir)
    assert psutil.Process(pid).is_running() and job_state(run_dir).state == "running"
    kill(run_dir)
    assert wait(run_dir, timeout=10).state == "killed"


def test_bad_device_names_are_refused(ws):
    with pytest.raises(ValueError, match="device must be cpu, cuda or cuda:N"):
        start_process(["true"], ws.runs / "x", device="../etc", workspace=ws)


def test_a_command_that_cannot_start_leaves_the_device_free(ws):
    with pytest.raises(FileNotFoundError):
        start_process(["/no/such/program"], ws.runs / "x", workspace=ws)
    assert not lock_file(ws).exists()


def test_stop_file_of_an_earlier_run_is_removed_on_start(ws, fake_trainer):
    (ws.runs / "again").mkdir(parents=True)
    (ws.runs / "again" / "STOP").touch()
    assert wait(start(ws, "again", steps=2).run_dir, timeout=10).state == "finished"


def test_list_runs_tolerates_broken_files(ws, fake_trainer):
    old = ws.runs / "old-cli-run"  # no job.json, run from a terminal long ago
    events = EventWriter(old)
    events.write("start", max_steps=100, config={}, resumed_from_step=None, devices="cpu")
    events.write("step", step=40, max_steps=100)
    os.utime(old / "events.jsonl", (time.time() - 3600,) * 2)
    os.utime(old, (time.time() - 3600,) * 2)

    done = start(ws, "done", steps=2)
    wait(done.run_dir, timeout=10)
    (done.run_dir / "metrics.json").write_text('{"val/wer": 0.25, "val/cer": 0.1, "note": "x"}')
    (done.run_dir / "config.json").write_text(json.dumps({"model": "whisper-base"}))

    broken = start(ws, "broken", steps=2)
    wait(broken.run_dir, timeout=10)
    (broken.run_dir / "metrics.json").write_text('{"val/wer": 0.3')  # half-written
    (broken.run_dir / "config.json").write_text("[1, 2]")  # not an object
    with (broken.run_dir / "events.jsonl").open("a") as handle:
        handle.write('{"kind": "step", "st')  # cut off
    (ws.runs / "stray-file.txt").write_text("not a run")
    (ws.runs / "empty-dir").mkdir()

    runs = list_runs(ws)
    assert [r.name for r in runs] == ["broken", "done", "old-cli-run"]
    broken_summary, done_summary, old_summary = runs
    assert broken_summary.state == "finished" and broken_summary.metrics == {}
    assert broken_summary.config == {} and broken_summary.step == 2
    assert done_summary.metrics == {"val/wer": 0.25, "val/cer": 0.1}
    assert done_summary.config == {"model": "whisper-base"}
    assert done_summary.started and done_summary.run_dir == done.run_dir
    assert old_summary.state == "killed" and old_summary.step == 40
    assert old_summary.started is not None


def test_list_runs_of_an_empty_workspace(ws):
    assert list_runs(ws) == []


def test_job_state_of_a_directory_that_never_ran(tmp_path):
    state = job_state(tmp_path)
    assert state.state == "killed" and state.pid is None and state.step is None
