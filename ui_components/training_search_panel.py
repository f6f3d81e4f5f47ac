"""The Optuna panel of the Training tab: a search space from the form, a study (name, database,
trials, pruner), the search run as a child process holding the device like a training run
(`python -m utils.training.search ...` in `runs/search-<study>/search-job`), its optimization
history, parameter importance and parallel coordinates, and "Apply best" into the form."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ui_components.training_form import advanced_text, config_from_form, form_values
from ui_components.training_monitor import console_tail, device_choices
from utils.training import jobs
from utils.training.config import ConfigError, TrainConfig
from utils.training.device_lock import read_json
from utils.training.events import request_stop
from utils.workspace import WORKSPACE_ENV, get_workspace

REPO = Path(__file__).resolve().parents[1]
SEARCH_JOB = "search-job"  # the search process's folder inside runs/search-<study>/
WATCH_SECONDS = 3.0
DIMENSIONS = (
    "learning_rate",
    "lora_r",
    "lora_alpha_ratio",
    "lora_dropout",
    "warmup_steps",
    "batch_size",
    "accumulate_grad_batches",
    "augment_strength",
)
RANGES = {
    "learning_rate": (1e-5, 1e-3),
    "lora_dropout": (0.0, 0.2),
    "warmup_steps": (0, 100),
    "augment_strength": (0.2, 0.8),
}
CHOICES = {
    "lora_r": ("4,8,16,32,64", "8,16,32"),
    "lora_alpha_ratio": ("0.5,1,2,4", "1,2"),
    "batch_size": ("2,4,8,16,32", "4,8,16"),
    "accumulate_grad_batches": ("1,2,4,8", "1,2"),
}


@dataclass(frozen=True)
class SearchWatch:
    """The search one session follows ("" = none) and how many trial lines it has seen."""

    job_dir: str = ""
    study: str = ""
    storage: str = ""
    trials_seen: int = -1


def is_search_job(run_dir: Path) -> bool:
    return run_dir.name == SEARCH_JOB and run_dir.parent.name.startswith("search-")


def storage_or_default(storage: str | None) -> str:
    return (storage or "").strip() or str(get_workspace().runs / "optuna.db")


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _choices(name: str, text: Any) -> list[int | float]:
    """Comma-separated choices; whole numbers where the dimension counts things."""
    try:
        values = [_number(part.strip()) for part in str(text or "").split(",") if part.strip()]
    except ValueError as exc:
        raise ConfigError(f"{name}: {text!r} is not comma-separated numbers") from exc
    if name != "lora_alpha_ratio" and not all(isinstance(v, int) for v in values):
        raise ConfigError(f"{name}: choices must be whole numbers, not {text!r}")
    return values


def space_from_form(values: dict[str, Any]) -> dict[str, Any]:
    """SearchSpace values (JSON-ready); a dimension not ticked is None (off)."""
    from utils.training.search import SearchSpace

    space: dict[str, Any] = {}
    on = set(values["dimensions"] or ())
    for name in DIMENSIONS:
        if name not in on:
            space[name] = None
        elif name in RANGES:
            low, high = values[f"{name}_low"], values[f"{name}_high"]
            kind = int if name == "warmup_steps" else float
            space[name] = [kind(low or 0), kind(high or 0)]
        else:
            space[name] = _choices(name, values[f"{name}_choices"])
    SearchSpace.from_dict(space)  # ConfigError when a dimension is invalid
    return space


def child_env(device: str) -> dict[str, str]:
    """Environment entries for a `python -m utils...` child on `device`: the repository on the
    path, this workspace, and only that device's GPU visible."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONUNBUFFERED": "1", "PYTHONPATH": path, WORKSPACE_ENV: str(get_workspace().root)}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif device.startswith("cuda:"):
        env["CUDA_VISIBLE_DEVICES"] = device.partition(":")[2]
    return env


def start_search(values: dict[str, Any], form: dict[str, Any]) -> SearchWatch:
    """Write the base config and space, then start the search process on the device."""
    from utils.training.search import STUDY_NAME, search_directory

    study = (values["study"] or "").strip()
    if not STUDY_NAME.fullmatch(study):
        raise ConfigError(f"study name {study!r}: use letters, digits, '.', '_' and '-'")
    base = config_from_form(
        form, dataset=values["dataset"], model=values["model"], advanced=values["advanced"]
    )
    space = space_from_form(values)
    trials = int(values["trials"] or 0)
    if trials < 1:
        raise ConfigError("trials must be at least 1")
    job_dir = search_directory(get_workspace(), study) / SEARCH_JOB
    job_dir.mkdir(parents=True, exist_ok=True)
    base.save(job_dir / "base-config.json")
    (job_dir / "space.json").write_text(json.dumps(space, indent=1), encoding="utf-8")
    storage = storage_or_default(values["storage"])
    command = [
        sys.executable,
        "-m",
        "utils.training.search",
        "--dataset",
        base.dataset,
        "--model",
        base.model,
        "--config",
        str(job_dir / "base-config.json"),
        "--space",
        str(job_dir / "space.json"),
        "--trials",
        str(trials),
        "--study",
        study,
        "--storage",
        storage,
        "--pruner",
        values["pruner"],
    ]
    if values["timeout_minutes"]:
        command += ["--timeout", str(float(values["timeout_minutes"]) * 60)]
    jobs.start_process(command, job_dir, device=values["device"], env=child_env(values["device"]))
    return SearchWatch(str(job_dir), study, storage)


def stop_search(watch: SearchWatch) -> str:
    """Stop the running trial (it saves and ends; no new trial starts), else end the process."""
    if not watch.job_dir or jobs.job_state(Path(watch.job_dir)).state != "running":
        raise gr.Error("No search is running.")
    trials = sorted(Path(watch.job_dir).parent.glob("trial-*"))
    if trials:
        request_stop(trials[-1])
        return f"Stop requested: {trials[-1].name} saves and ends; no new trial starts."
    jobs.kill(Path(watch.job_dir))
    return "The search had not started a trial yet: its process was ended."


def search_figures(study: str, storage: str) -> tuple[Any, Any, Any]:
    from utils.training.search_plots import (
        history_figure,
        importance_figure,
        load_search,
        parallel_figure,
    )

    loaded = load_search(study, storage_or_default(storage))
    return history_figure(loaded), importance_figure(loaded), parallel_figure(loaded)


def watch_search(watch: SearchWatch) -> tuple:
    """(watch, status, log, history, importance, parallel, timer): plots redrawn when a trial
    ended; the timer stops with the search."""
    if not watch.job_dir:
        return (
            watch,
            gr.skip(),
            gr.skip(),
            gr.skip(),
            gr.skip(),
            gr.skip(),
            gr.Timer(active=False),
        )
    state = jobs.job_state(Path(watch.job_dir))
    tail = console_tail(watch.job_dir, 30)
    seen = sum(line.startswith("trial ") for line in tail)
    running = state.state == "running"
    if running:
        status = f"Search **{watch.study}** running, {seen} trial(s) done."
    else:
        code = state.returncode
        status = f"Search **{watch.study}** ended" + (f" (exit code {code})." if code else ".")
    figures: tuple = (gr.skip(),) * 3
    if seen != watch.trials_seen or not running:
        with contextlib.suppress(ConfigError):  # the study may not be in the database yet
            figures = search_figures(watch.study, watch.storage)
    watch = dataclasses.replace(watch, trials_seen=seen)
    return (watch, status, "\n".join(tail), *figures, gr.Timer(active=running))


def apply_best(study: str, storage: str) -> list[Any]:
    """The best trial's config as (dataset, model, *form values, advanced, status)."""
    from utils.training.search_plots import completed, load_search, trial_config

    loaded = load_search(study.strip(), storage_or_default(storage))
    if not completed(loaded):
        raise ConfigError(f"study {study!r} has no completed trial yet")
    config = trial_config(loaded.best_trial, TrainConfig())
    status = f"Applied the best config of study **{study}**."
    return [config.dataset, config.model, *form_values(config), advanced_text(config), status]


def reattach_search() -> tuple:
    """On page load: follow a search that holds a device."""
    for device in device_choices():
        run_dir = jobs.active_run(device)
        if run_dir is not None and is_search_job(run_dir):
            command = (read_json(run_dir / jobs.JOB_NAME) or {}).get("command") or []
            storage = command[command.index("--storage") + 1] if "--storage" in command else ""
            study = run_dir.parent.name.removeprefix("search-")
            return watch_search(SearchWatch(str(run_dir), study, storage_or_default(storage)))
    return watch_search(SearchWatch())


def _space_inputs() -> dict[str, Any]:
    with gr.Row():
        inputs = {
            "dimensions": gr.CheckboxGroup(
                list(DIMENSIONS), value=list(DIMENSIONS), label="Dimensions searched"
            )
        }
    with gr.Row():
        for name, (low, high) in RANGES.items():
            precision = 0 if name == "warmup_steps" else None
            inputs[f"{name}_low"] = gr.Number(low, label=f"{name} from", precision=precision)
            inputs[f"{name}_high"] = gr.Number(high, label=f"{name} to", precision=precision)
    with gr.Row():
        for name, (hint, value) in CHOICES.items():
            inputs[f"{name}_choices"] = gr.Textbox(value, label=f"{name} choices (e.g. {hint})")
    return inputs


def _study_inputs() -> dict[str, Any]:
    with gr.Row():
        return {
            "study": gr.Textbox("search", label="Study name"),
            "storage": gr.Textbox(
                "",
                label="Storage: database URL or SQLite file "
                "(empty: runs/optuna.db of the workspace)",
            ),
            "trials": gr.Number(10, precision=0, label="Trials"),
            "timeout_minutes": gr.Number(0, label="Timeout, minutes (0 = none)"),
            "pruner": gr.Radio(["median", "none"], value="median", label="Pruner"),
        }


def build_search_panel(
    demo: gr.Blocks, pickers: dict[str, Any], form: dict[str, Any], advanced: gr.Textbox
) -> None:
    """Render the panel; "Apply best" writes into the tab's `pickers`, `form` and `advanced`."""
    with gr.Accordion("Hyperparameter search (Optuna)", open=False):
        study = _study_inputs()
        space = _space_inputs()
        with gr.Row():
            start = gr.Button("Start search", variant="primary")
            stop = gr.Button("Stop search")
            plots = gr.Button("Refresh plots")
            best = gr.Button("Apply best", elem_id="search-apply-best")
        status = gr.Markdown(elem_id="search-status")
        log = gr.Textbox(label="Search log", lines=6, max_lines=12, autoscroll=True)
        figures = [gr.Plot(label=n) for n in ("History", "Importance", "Parallel coordinates")]
    watch, timer = gr.State(SearchWatch()), gr.Timer(WATCH_SECONDS, active=False)
    watch_outputs = [watch, status, log, *figures, timer]
    shared = {
        "dataset": pickers["dataset"],
        "model": pickers["model"],
        "device": pickers["device"],
        "advanced": advanced,
    }
    names = list({**study, **space, **shared})

    def on_start(**values: Any) -> tuple:
        try:
            chosen = start_search({k: values[k] for k in names}, {k: values[k] for k in form})
        except (ConfigError, ValueError) as exc:  # DeviceBusyError is a RuntimeError
            raise gr.Error(f"Cannot start the search: {exc}") from exc
        except jobs.DeviceBusyError as exc:
            raise gr.Error(str(exc)) from exc
        return watch_search(chosen)

    def on_best(study_name: str, storage: str) -> list[Any]:
        try:
            return apply_best(study_name, storage)
        except ConfigError as exc:
            raise gr.Error(f"Cannot apply the best trial: {exc}") from exc

    start.click(
        on_start,
        inputs_kwargs={**study, **space, **shared, **form},
        outputs=watch_outputs,
        api_name="start_search",
    )
    stop.click(stop_search, watch, status, api_name="stop_search")
    timer.tick(watch_search, watch, watch_outputs, api_name="watch_search", show_progress="hidden")
    plots.click(
        lambda s, db: _figures_or_error(s, db),
        [study["study"], study["storage"]],
        figures,
        api_name="search_plots",
    )
    best.click(
        on_best,
        [study["study"], study["storage"]],
        [pickers["dataset"], pickers["model"], *form.values(), advanced, status],
        api_name="apply_best",
    )
    demo.load(reattach_search, outputs=watch_outputs, api_visibility="private")


def _figures_or_error(study: str, storage: str) -> tuple[Any, Any, Any]:
    try:
        return search_figures(study.strip(), storage)
    except ConfigError as exc:
        raise gr.Error(str(exc)) from exc
