"""The Training tab: pick a dataset, a base model and a preset, edit the hyperparameters, then
Start, Stop (checkpoint, "stopped") and Resume runs, with a live dashboard, progress, log and
run history; TensorBoard of every run; the augmentation preview, the Optuna search panel and
the learning-rate finder.

Each run is a child process (`utils.training.jobs`); the page follows it by polling its event
log with a `gr.Timer`, the byte offset read so far kept per browser session in a `gr.State`. A
reloaded page reattaches to the run holding a device."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import gradio as gr

from ui_components.training_augment_panel import build_augment_panel
from ui_components.training_figures import dashboard_figure, idle_progress_html, progress_html
from ui_components.training_form import (
    advanced_text,
    build_form,
    config_from_form,
    form_values,
    require_dataset,
)
from ui_components.training_history import (
    COLUMNS,
    history_rows,
    new_run_directory,
    resume_arguments,
    run_details,
    run_directory,
    run_names,
)
from ui_components.training_lr_panel import build_lr_panel, is_lr_find_job
from ui_components.training_monitor import Monitor, advance, device_choices, follow, log_text
from ui_components.training_search_panel import build_search_panel, is_search_job
from utils.dataset import actions
from utils.model_store import DEFAULT_MODEL
from utils.registry import list_models
from utils.training import jobs
from utils.training.artifacts import CONFIG_NAME
from utils.training.config import PRESETS, ConfigError, TrainConfig, preset

NO_PRESET = "(defaults)"
POLL_SECONDS = 1.0
TENSORBOARD_LINK = (
    '<a href="tensorboard/" target="_blank" rel="noopener">Open TensorBoard in a '
    "new tab</a> (every run of the workspace, served by this app)."
)
TENSORBOARD_FRAME = (
    '<iframe src="tensorboard/" title="TensorBoard" id="tensorboard-frame" '
    'style="width:100%;height:820px;border:0;"></iframe>'
)


def model_choices() -> list[str]:
    return [entry.name for entry in list_models()]


def _error(exc: Exception, what: str) -> gr.Error:
    return gr.Error(f"{what}: {exc}")


# following a run: every handler below returns these, in this order


def view(monitor: Monitor, state: jobs.JobState | None, redraw: bool, lists: bool) -> tuple:
    """(monitor, status, progress, dashboard, log, timer, start, stop, resume, history, runs)."""
    running = state is not None and state.state == "running"
    if state is None:
        status, progress = "", idle_progress_html()
    else:
        first = state.message.split("\n\n")[0]  # the console tail of a failure is in the log
        status = f"**{monitor.name}**: {state.state}. {first}"
        progress = progress_html(state.state, state.step, state.max_steps, monitor.latest)
    figure = dashboard_figure(monitor.steps, monitor.vals, monitor.name) if redraw else gr.skip()
    history = gr.skip()
    picker = gr.skip()
    if lists:
        history = history_rows()
        picker = gr.Dropdown(choices=run_names(), value=monitor.name or None)
    return (
        monitor,
        status,
        progress,
        figure,
        log_text(monitor),
        gr.Timer(active=running),
        gr.Button(interactive=not running),
        gr.Button(interactive=running),
        gr.Button(interactive=not running),
        history,
        picker,
    )


def _launch(args: list[str], run_dir: Path, device: str, created: bool) -> tuple:
    try:
        jobs.start_training(args, run_dir, device=device)
    except (jobs.DeviceBusyError, ValueError, OSError) as exc:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing ran in it
        raise gr.Error(str(exc)) from exc
    monitor, _ = advance(follow(run_dir))
    return view(monitor, jobs.job_state(run_dir), redraw=True, lists=True)


def start_handler(
    device: str, dataset: str, model: str, run_name: str, advanced: str, **form: Any
) -> tuple:
    """Check the settings, write the run's config.json and start it as a child process."""
    try:
        config = config_from_form(form, dataset=dataset, model=model, advanced=advanced)
        require_dataset(config)
        run_dir = new_run_directory(run_name, config.dataset, config.method)
        run_dir.mkdir(parents=True)
    except (ConfigError, ValueError, OSError) as exc:  # OSError: a run of that name appeared
        raise _error(exc, "Invalid training settings") from exc
    config.save(run_dir / CONFIG_NAME)
    return _launch(["--config", str(run_dir / CONFIG_NAME)], run_dir, device, created=True)


def resume_handler(device: str, run: str, until_step: float | None) -> tuple:
    """Continue a stopped, failed or killed run (or train a finished one further)."""
    try:
        run_dir = run_directory(run)
        args = resume_arguments(run_dir, until_step)
    except ConfigError as exc:
        raise _error(exc, "Cannot resume") from exc
    return _launch(args, run_dir, device, created=False)


def stop_handler(monitor: Monitor) -> str:
    """Ask the followed run to save a checkpoint and end as "stopped"."""
    if not monitor.run_dir or jobs.job_state(Path(monitor.run_dir)).state != "running":
        raise gr.Error("No running run to stop.")
    jobs.stop(Path(monitor.run_dir))
    return f"**{monitor.name}**: stop requested; it saves a checkpoint at its next step."


def poll_handler(monitor: Monitor) -> tuple:
    """Read what the run appended since the last tick; stop ticking once it ended."""
    if not monitor.run_dir:
        return view(monitor, None, redraw=False, lists=False)
    monitor, changed = advance(monitor)
    state = jobs.job_state(Path(monitor.run_dir))
    ended = state.state != "running"
    return view(monitor, state, redraw=changed or ended, lists=ended)


def follow_handler(run: str) -> tuple:
    """Show a run of the history in the dashboard (and keep following it while it runs)."""
    try:
        run_dir = run_directory(run)
    except ConfigError as exc:
        raise _error(exc, "Cannot follow") from exc
    monitor, _ = advance(follow(run_dir))
    return view(monitor, jobs.job_state(run_dir), redraw=True, lists=False)


def reattach_handler() -> tuple:
    """On page load: fresh lists, and the run now training on a device, if any, followed."""
    lists = (gr.Dropdown(choices=actions.list_datasets()), gr.Dropdown(choices=model_choices()))
    for device in device_choices():
        run_dir = jobs.active_run(device)
        if run_dir is not None and not (is_search_job(run_dir) or is_lr_find_job(run_dir)):
            monitor, _ = advance(follow(run_dir))
            state = jobs.job_state(run_dir)
            return (*lists, device, *view(monitor, state, redraw=True, lists=True))
    return (*lists, gr.skip(), *view(Monitor(), None, redraw=False, lists=True))


def details_handler(run: str) -> tuple[str, dict[str, Any], Any]:
    if not run:
        return "", {}, gr.skip()
    try:
        return run_details(run)
    except ConfigError as exc:
        raise _error(exc, "Cannot show the run") from exc


def preset_handler(name: str) -> list[Any]:
    config = preset(name) if name in PRESETS else TrainConfig()
    return [*form_values(config), advanced_text(config)]


def _pickers() -> dict[str, Any]:
    devices = device_choices()
    with gr.Row():
        pickers = {
            "dataset": gr.Dropdown(
                actions.list_datasets(),
                label="Dataset",
                scale=3,
                allow_custom_value=True,
                elem_id="training-dataset",
            ),
            "model": gr.Dropdown(
                model_choices(),
                value=DEFAULT_MODEL,
                label="Base model",
                scale=3,
                allow_custom_value=True,
                elem_id="training-model",
            ),
            "preset": gr.Dropdown([NO_PRESET, *PRESETS], value=NO_PRESET, label="Preset", scale=2),
            "device": gr.Dropdown(
                devices, value=devices[min(1, len(devices) - 1)], label="Device", scale=1
            ),
            "run_name": gr.Textbox("", label="Run name (optional)", scale=2),
        }
    return pickers


def _monitor_section() -> dict[str, Any]:
    with gr.Row():
        start = gr.Button("Start training", variant="primary", elem_id="training-start")
        stop = gr.Button("Stop (save a checkpoint)", interactive=False, elem_id="training-stop")
    return {
        "start": start,
        "stop": stop,
        "status": gr.Markdown(elem_id="training-status"),
        "progress": gr.HTML(idle_progress_html(), elem_id="training-progress-box"),
        "dashboard": gr.Plot(label="Live dashboard", elem_id="training-dashboard"),
        "log": gr.Textbox(
            label="Log", lines=10, max_lines=20, autoscroll=True, elem_id="training-log"
        ),
    }


def _history_section() -> dict[str, Any]:
    with gr.Accordion("Run history", open=True):
        refresh = gr.Button("Refresh history", size="sm")
        table = gr.Dataframe(
            headers=COLUMNS,
            label="Runs (select one)",
            interactive=False,
            elem_id="training-history",
        )
        with gr.Row():
            run = gr.Dropdown(
                run_names(), label="Run", allow_custom_value=True, scale=3, elem_id="training-run"
            )
            until = gr.Number(0, precision=0, label="Train until step (0 = as configured)", scale=2)
            resume = gr.Button("Resume", scale=1, elem_id="training-resume")
            show = gr.Button("Follow in dashboard", scale=1)
        summary = gr.Markdown()
        with gr.Row():
            config = gr.JSON(label="Config")
            curves = gr.Plot(label="Curves")
    return {
        "refresh": refresh,
        "table": table,
        "run": run,
        "until": until,
        "resume": resume,
        "show": show,
        "summary": summary,
        "config": config,
        "curves": curves,
    }


def _tensorboard_section() -> None:
    with gr.Accordion("TensorBoard", open=False):
        frame = gr.HTML(TENSORBOARD_LINK, elem_id="tensorboard-box")
        gr.Button("Show TensorBoard here", size="sm").click(
            lambda: TENSORBOARD_FRAME, outputs=frame, api_visibility="private"
        )


def _select_run(rows: Any, event: gr.SelectData) -> str:
    row = event.index[0] if isinstance(event.index, list | tuple) else event.index
    return str(rows.iloc[row, 0] if hasattr(rows, "iloc") else rows[row][0])


def build_training_tab(demo: gr.Blocks) -> None:
    """Render the tab inside the current Blocks context; `demo` gets the reattach on load."""
    pickers = _pickers()
    form = build_form()
    advanced = gr.Textbox(
        "",
        lines=3,
        label="Advanced settings (key=value lines or a JSON object; they win over the form)",
    )
    ui = _monitor_section()
    history = _history_section()
    _tensorboard_section()
    build_augment_panel(pickers["dataset"])
    build_search_panel(demo, pickers, form, advanced)
    build_lr_panel(demo, pickers, form, advanced)
    monitor, timer = gr.State(Monitor()), gr.Timer(POLL_SECONDS, active=False)
    outputs = [
        monitor,
        ui["status"],
        ui["progress"],
        ui["dashboard"],
        ui["log"],
        timer,
        ui["start"],
        ui["stop"],
        history["resume"],
        history["table"],
        history["run"],
    ]
    start_inputs = {k: pickers[k] for k in ("device", "dataset", "model", "run_name")}
    ui["start"].click(
        start_handler,
        inputs_kwargs={**start_inputs, "advanced": advanced, **form},
        outputs=outputs,
        api_name="start_training",
    )
    ui["stop"].click(stop_handler, monitor, ui["status"], api_name="stop_training")
    timer.tick(
        poll_handler,
        monitor,
        outputs,
        api_name="poll_training",
        show_progress="hidden",
        concurrency_limit=None,
    )
    history["resume"].click(
        resume_handler,
        [pickers["device"], history["run"], history["until"]],
        outputs,
        api_name="resume_training",
    )
    history["show"].click(follow_handler, history["run"], outputs, api_name="follow_run")
    history["refresh"].click(
        lambda: (history_rows(), gr.Dropdown(choices=run_names())),
        outputs=[history["table"], history["run"]],
        api_name="training_history",
    )
    history["table"].select(_select_run, history["table"], history["run"], api_visibility="private")
    history["run"].change(
        details_handler,
        history["run"],
        [history["summary"], history["config"], history["curves"]],
        api_name="run_details",
    )
    pickers["preset"].change(
        preset_handler, pickers["preset"], [*form.values(), advanced], api_name="apply_preset"
    )
    demo.load(
        reattach_handler,
        outputs=[pickers["dataset"], pickers["model"], pickers["device"], *outputs],
        api_name="reattach_training",
    )
