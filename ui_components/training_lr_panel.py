"""The learning-rate finder panel of the Training tab: the range test of the form's config run as
a child process holding the device like a training run (`python -m utils.training.lr_find ...
--output result.json` in `runs/lr-find-<time>/lr-finder/`, one level down so that the run
history does not list it), followed with a `gr.Timer`; then its loss-vs-learning-rate curve,
the suggested rate, and "Use suggested learning rate" into the form."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gradio as gr

from ui_components.training_form import config_from_form, require_dataset
from ui_components.training_monitor import console_tail, device_choices
from ui_components.training_search_panel import child_env, is_search_job
from utils.training import jobs
from utils.training.artifacts import CONFIG_NAME
from utils.training.config import ConfigError, TrainConfig
from utils.training.device_lock import read_json
from utils.training.lr_result import PROGRESS_PREFIX, LrFinderResult, lr_finder_figure
from utils.workspace import get_workspace

LR_FIND_PREFIX = "lr-find-"  # runs/lr-find-<time>/
FINDER_JOB = "lr-finder"  # the finder process's folder inside it
RESULT_NAME = "result.json"
WATCH_SECONDS = 1.0
LOG_LINES = 30


@dataclass(frozen=True)
class FinderWatch:
    """The finder one session follows ("" = none) and its suggestion once it is done."""

    job_dir: str = ""
    suggestion: float | None = None


@dataclass(frozen=True)
class FinderSettings:
    num_steps: int
    min_lr: float
    max_lr: float


@dataclass(frozen=True)
class FinderOutcome:
    """What the finder in a folder has come to: running, done (with its result) or failed."""

    state: Literal["running", "done", "failed"]
    message: str
    log: tuple[str, ...] = ()
    result: LrFinderResult | None = None


def is_lr_find_job(run_dir: Path) -> bool:
    return run_dir.name == FINDER_JOB and run_dir.parent.name.startswith(LR_FIND_PREFIX)


def finder_settings(num_steps: Any, min_lr: Any, max_lr: Any) -> FinderSettings:
    """The panel's numbers checked; ConfigError says what is wrong."""
    if num_steps is None or float(num_steps) < 2 or not float(num_steps).is_integer():
        raise ConfigError(f"number of steps must be a whole number of at least 2, not {num_steps}")
    if min_lr is None or max_lr is None or not 0 < float(min_lr) < float(max_lr):
        raise ConfigError(f"learning-rate range: need 0 < min < max, got {min_lr}, {max_lr}")
    return FinderSettings(int(num_steps), float(min_lr), float(max_lr))


def new_finder_directory() -> Path:
    """A fresh `runs/lr-find-<time>[-n]/lr-finder` folder (the parent is created)."""
    runs, stamp = get_workspace().runs, time.strftime("%Y%m%d-%H%M%S")
    parent, n = runs / f"{LR_FIND_PREFIX}{stamp}", 1
    while True:
        try:
            parent.mkdir(parents=True)
            return parent / FINDER_JOB
        except FileExistsError:
            parent, n = runs / f"{LR_FIND_PREFIX}{stamp}-{n}", n + 1


def finder_command(config: TrainConfig, config_path: Path, settings: FinderSettings) -> list[str]:
    # fmt: off
    return [
        sys.executable, "-m", "utils.training.lr_find",
        "--dataset", config.dataset, "--model", config.model, "--config", str(config_path),
        "--num-steps", str(settings.num_steps),
        "--min-lr", repr(settings.min_lr), "--max-lr", repr(settings.max_lr),
        "--output", str(config_path.parent / RESULT_NAME), "--progress",
    ]
    # fmt: on


def start_finder(config: TrainConfig, settings: FinderSettings, device: str) -> FinderWatch:
    """Save `config` and start the finder on `device` (DeviceBusyError when it is taken)."""
    require_dataset(config)
    job_dir = new_finder_directory()
    job_dir.mkdir()
    config.save(job_dir / CONFIG_NAME)
    command = finder_command(config, job_dir / CONFIG_NAME, settings)
    try:
        jobs.start_process(command, job_dir, device=device, env=child_env(device))
    except (jobs.DeviceBusyError, ValueError, OSError):
        shutil.rmtree(job_dir.parent, ignore_errors=True)  # nothing ran in it
        raise
    return FinderWatch(str(job_dir))


def holder_label(run_dir: Path) -> str:
    """What holds a device, in words."""
    if is_lr_find_job(run_dir):
        return "the learning-rate finder"
    if is_search_job(run_dir):
        return f"the hyperparameter search {run_dir.parent.name.removeprefix('search-')!r}"
    return f"training run {run_dir.name!r}"


def busy_message(exc: jobs.DeviceBusyError) -> str:
    return (
        f"Cannot find a learning rate: {exc.device} is busy: {holder_label(exc.run_dir)} has "
        f"held it since {exc.since}. Wait for it to end (or stop it), then try again."
    )


def _console(job_dir: Path) -> tuple[str, ...]:
    lines = console_tail(job_dir, LOG_LINES + 1)
    return tuple(line for line in lines if not line.startswith(jobs.CONSOLE_HEADER))[-LOG_LINES:]


def _read_result(job_dir: Path) -> LrFinderResult | None:
    data = read_json(job_dir / RESULT_NAME)
    try:
        return None if data is None else LrFinderResult.from_dict(data)
    except ValueError:
        return None


def _running_message(log: tuple[str, ...]) -> str:
    steps = [line for line in log if line.startswith(PROGRESS_PREFIX)]
    if not steps:
        return "Learning-rate finder: starting (loading the model and data)."
    return f"Learning-rate finder: step {steps[-1].removeprefix(PROGRESS_PREFIX).strip()}."


def _done_message(result: LrFinderResult) -> str:
    if result.suggestion is None:
        return (
            f"No suggestion: only {len(result.lrs)} step(s) gave a loss; "
            "try more steps or a wider range."
        )
    return (
        f"Suggested learning rate: **{result.suggestion:.3g}** "
        f"({len(result.lrs)} of {result.num_steps} steps ran)."
    )


def _failure_reason(code: int | None) -> str:
    if code is None or code == 0:
        return "it ended without writing a result"
    if code < 0:
        return f"its process was killed (signal {-code})"
    return f"exit code {code}"


def finder_outcome(job_dir: Path) -> FinderOutcome:
    """Running (with the step reached), done (its result read back) or failed (why, and the
    console's last lines)."""
    state = jobs.job_state(job_dir)
    log = _console(job_dir)
    if state.state == "running":
        return FinderOutcome("running", _running_message(log), log)
    result = _read_result(job_dir)
    if result is not None:
        return FinderOutcome("done", _done_message(result), log, result)
    last = next((line for line in reversed(log) if not line.startswith(PROGRESS_PREFIX)), "")
    message = f"**The learning-rate finder failed** ({_failure_reason(state.returncode)})"
    message += f": `{last}`" if last else "."
    return FinderOutcome("failed", message + " Its console's last lines are below.", log)


def _rounded(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.3g}")


def watch_finder(watch: FinderWatch) -> tuple:
    """(watch, status, figure, suggested, log, timer, find, stop, use): the timer stops with
    the finder; the figure is drawn once it is done."""
    if not watch.job_dir:
        return (watch, *(gr.skip(),) * 4, *_controls(False, watch))
    outcome = finder_outcome(Path(watch.job_dir))
    figure: Any = gr.skip() if outcome.state == "running" else None
    if outcome.result is not None:
        watch = FinderWatch(watch.job_dir, _rounded(outcome.result.suggestion))
        figure = lr_finder_figure(outcome.result)
    running = outcome.state == "running"
    log = "\n".join(outcome.log)
    return (watch, outcome.message, figure, watch.suggestion, log, *_controls(running, watch))


def _controls(running: bool, watch: FinderWatch) -> tuple:
    return (
        gr.Timer(active=running),
        gr.Button(interactive=not running),
        gr.Button(interactive=running),
        gr.Button(interactive=watch.suggestion is not None),
    )


def find_handler(
    device: str, dataset: str, model: str, advanced: str, finder_steps: Any,
    finder_min_lr: Any, finder_max_lr: Any, **form: Any,
) -> tuple:  # fmt: skip
    """Start the finder on the form's config (as Start training reads it); clear errors."""
    try:
        config = config_from_form(form, dataset=dataset, model=model, advanced=advanced)
        settings = finder_settings(finder_steps, finder_min_lr, finder_max_lr)
        return watch_finder(start_finder(config, settings, device))
    except jobs.DeviceBusyError as exc:
        raise gr.Error(busy_message(exc)) from exc
    except (ConfigError, ValueError, OSError) as exc:
        raise gr.Error(f"Cannot find a learning rate: {exc}") from exc


def stop_finder(watch: FinderWatch) -> str:
    if not watch.job_dir or not jobs.kill(Path(watch.job_dir)):
        raise gr.Error("No learning-rate finder is running.")
    return "Learning-rate finder: stopping."


def use_suggested(watch: FinderWatch) -> float:
    """The suggestion, for the form's learning-rate input."""
    if watch.suggestion is None:
        raise gr.Error("No suggested learning rate yet: run the finder first.")
    gr.Info(f"Learning rate set to {watch.suggestion:g}.")
    return watch.suggestion


def reattach_finder() -> tuple:
    """On page load: follow a finder that holds a device."""
    for device in device_choices():
        run_dir = jobs.active_run(device)
        if run_dir is not None and is_lr_find_job(run_dir):
            return watch_finder(FinderWatch(str(run_dir)))
    return watch_finder(FinderWatch())


def _panel() -> dict[str, Any]:
    with gr.Accordion("Learning-rate finder", open=False):
        gr.Markdown(
            "A short range test of the form's settings: the learning rate grows from *min* to "
            "*max* over the steps; the suggestion is where the loss falls fastest."
        )
        with gr.Row():
            settings = {
                "finder_steps": gr.Number(100, precision=0, minimum=2, label="Steps"),
                "finder_min_lr": gr.Number(1e-7, label="Min learning rate"),
                "finder_max_lr": gr.Number(1.0, label="Max learning rate"),
            }
        with gr.Row():
            find = gr.Button("Find learning rate", variant="primary", elem_id="lr-find-start")
            stop = gr.Button("Stop", interactive=False)
            use = gr.Button("Use suggested learning rate", interactive=False, elem_id="lr-use")
        status = gr.Markdown(elem_id="lr-find-status")
        with gr.Row():
            plot = gr.Plot(label="Loss against learning rate", scale=3)
            suggested = gr.Number(label="Suggested learning rate", interactive=False, scale=1)
        log = gr.Textbox(label="Finder console (last lines)", lines=6, max_lines=12)
    return {"settings": settings, "find": find, "stop": stop, "use": use, "status": status,
            "plot": plot, "suggested": suggested, "log": log}  # fmt: skip


def build_lr_panel(
    demo: gr.Blocks, pickers: dict[str, Any], form: dict[str, Any], advanced: gr.Textbox
) -> None:
    """Render the panel; it runs the config of `pickers`, `form` and `advanced` (as Start
    training does), and "Use suggested learning rate" writes `form["learning_rate"]`."""
    ui = _panel()
    watch, timer = gr.State(FinderWatch()), gr.Timer(WATCH_SECONDS, active=False)
    outputs = [watch, ui["status"], ui["plot"], ui["suggested"], ui["log"], timer,
               ui["find"], ui["stop"], ui["use"]]  # fmt: skip
    shared = {k: pickers[k] for k in ("device", "dataset", "model")}

    ui["find"].click(
        find_handler,
        inputs_kwargs={**shared, "advanced": advanced, **ui["settings"], **form},
        outputs=outputs,
        api_name="find_learning_rate",
    )
    ui["stop"].click(stop_finder, watch, ui["status"], api_name="stop_lr_finder")
    ui["use"].click(use_suggested, watch, form["learning_rate"], api_name="use_suggested_lr")
    timer.tick(watch_finder, watch, outputs, api_name="watch_lr_finder",
               show_progress="hidden", concurrency_limit=None)  # fmt: skip
    demo.load(reattach_finder, outputs=outputs, api_visibility="private")
