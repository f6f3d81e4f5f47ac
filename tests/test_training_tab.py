"""The Training tab through gradio_client: a tiny real run started, refused while the device is
busy, stopped, resumed and followed to the end (dashboard, progress, history); clear errors for
bad settings; the augmentation preview; "Apply best" from an Optuna study; the learning-rate
finder as a child process and its suggestion into the form; TensorBoard served by the app under
/tensorboard/."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client

from tests.launching import running_app
from ui_components.training_form import form_field_names
from utils.training import jobs
from utils.training.config import TrainConfig

POLL_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def app_url(workspace):
    with running_app() as url:
        yield url


@pytest.fixture
def client(app_url, workspace):
    yield Client(app_url, verbose=False)
    for run_dir in workspace.runs.iterdir():  # a failed test leaves no training process behind
        jobs.kill(run_dir)
    holder = jobs.active_run("cpu")  # nor a search or learning-rate finder (one level down)
    if holder is not None:
        jobs.kill(holder)


def tiny_form(model: Path, dataset: Path, **overrides: Any) -> dict[str, Any]:
    """Start-form values for a run of the tiny model on the tiny dataset, in seconds."""
    extra = ["forgetting_check=0"] if _has_field("forgetting_check") else []
    form = {"device": "cpu", "dataset": str(dataset), "model": str(model), "method": "lora",
            "lora_r": 4, "lora_alpha": 8, "lora_targets": ["q", "v"], "learning_rate": 1e-2,
            "warmup_steps": 0, "max_steps": 400, "batch_size": 2, "num_workers": 0,
            "val_every_steps": 2, "checkpoint_every_steps": 1000, "generation_max_tokens": 8,
            "augment": False, "spec_augment": False, "timestamp_share": 0.0,
            "prompt_share": 0.0, "advanced": "\n".join(extra)}  # fmt: skip
    return form | overrides


def _has_field(name: str) -> bool:
    return name in {f.name for f in dataclasses.fields(TrainConfig)}


def figure_points(plot: Any) -> dict[str, list]:
    """Trace name -> y values of a gr.Plot value as gradio_client returns it."""
    figure = json.loads(plot["plot"])
    return {trace.get("name", trace["type"]): trace.get("y", []) for trace in figure["data"]}


@dataclasses.dataclass
class Followed:
    status: str = ""
    progress: str = ""
    plot: Any = None
    log: str = ""


def poll_until(client: Client, done, timeout: float = POLL_TIMEOUT) -> Followed:
    """Poll the followed run like the page's timer until `done(Followed)` or the timeout."""
    seen = Followed()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, progress, plot, log, *_ = client.predict(api_name="/poll_training")
        plot = plot if isinstance(plot, dict) and "plot" in plot else seen.plot  # skipped: same
        seen = Followed(status or seen.status, progress or seen.progress, plot, log)
        if done(seen):
            return seen
        time.sleep(0.3)
    raise AssertionError(f"timed out; last status {seen.status!r}\n{seen.log}")


def test_start_busy_stop_resume_and_follow_to_the_end(
    client, tiny_whisper_dir, tiny_dataset_dir, workspace
):
    form = tiny_form(tiny_whisper_dir, tiny_dataset_dir)
    status, *_ = client.predict(**form, run_name="ui-run", api_name="/start_training")
    assert "ui-run" in status and "running" in status
    with pytest.raises(Exception, match="cpu is busy: run ui-run"):
        client.predict(**form, run_name="ui-second", api_name="/start_training")
    assert not (workspace.runs / "ui-second").exists()

    def validated(seen: Followed) -> bool:
        points = figure_points(seen.plot) if seen.plot else {}
        return bool(points.get("val CER")) and len(points.get("Training loss", [])) >= 2

    poll_until(client, validated)
    assert "stop requested" in client.predict(api_name="/stop_training")
    stopped = poll_until(client, lambda seen: "stopped" in seen.status.split(".")[0])
    stopped_at = len(figure_points(stopped.plot)["Training loss"])
    assert "stopped at step" in stopped.log and stopped_at < 400

    status, *_ = client.predict("cpu", "ui-run", stopped_at + 1, api_name="/resume_training")
    assert "running" in status
    finished = poll_until(client, lambda seen: "finished" in seen.status.split(".")[0])
    points = figure_points(finished.plot)
    assert len(points["Training loss"]) == stopped_at + 1 and points["Learning rate"]
    assert points["val WER"] and points["val CER"] and points["Gradient norm"]
    assert "100%" in finished.progress and "(resumed)" in finished.log

    table, _ = client.predict(api_name="/training_history")
    row = next(r for r in table["data"] if r[0] == "ui-run")
    assert row[1] == "finished" and row[3] == stopped_at + 1 and row[4] is not None
    summary, config, curves = client.predict("ui-run", api_name="/run_details")
    assert "finished" in summary and config["max_steps"] == stopped_at + 1
    assert len(figure_points(curves)["Training loss"]) == stopped_at + 1


def test_bad_settings_are_clear_errors(client, tiny_whisper_dir, tiny_dataset_dir, workspace):
    form = tiny_form(tiny_whisper_dir, tiny_dataset_dir)
    before = set(workspace.runs.iterdir())
    with pytest.raises(Exception, match="learning_rate must be positive"):
        client.predict(**form | {"learning_rate": -1}, api_name="/start_training")
    with pytest.raises(Exception, match="expected key=value with a TrainConfig key"):
        client.predict(**form | {"advanced": "nonsense=1"}, api_name="/start_training")
    with pytest.raises(Exception, match=r"no manifest\.jsonl"):
        client.predict(**form | {"dataset": "missing-set"}, api_name="/start_training")
    with pytest.raises(Exception, match=r"no run named 'no-such-run'"):
        client.predict("cpu", "no-such-run", 0, api_name="/resume_training")
    assert set(workspace.runs.iterdir()) == before  # no run directory was left behind


def test_augmentation_preview(client, tiny_dataset_dir):
    original, augmented, applied, before, after, spec = client.predict(
        str(tiny_dataset_dir), "", None, 1.0, 3, api_name="/augment_preview"
    )
    assert Path(original).is_file() and Path(augmented).is_file()
    assert Path(original).read_bytes() != Path(augmented).read_bytes()
    assert "Applied" in applied and "seed 3" in applied
    assert {"waveform"} <= set(figure_points(before)) and figure_points(after)["waveform"]
    assert len(json.loads(spec["plot"])["data"]) == 2  # the log-mel before and after masking


def test_apply_best_fills_the_form_from_a_study(client, tmp_path):
    import optuna
    from optuna.distributions import FloatDistribution

    storage = tmp_path / "study.db"
    study = optuna.create_study(study_name="ui-study", storage=f"sqlite:///{storage}")
    for lr, cer in ((1e-4, 0.5), (3e-4, 0.2), (1e-3, 0.4)):
        config = TrainConfig(dataset="tiny-set", model="whisper-base", learning_rate=lr, lora_r=8)
        study.add_trial(optuna.trial.create_trial(
            params={"learning_rate": lr}, value=cer, user_attrs={"config": config.to_dict()},
            distributions={"learning_rate": FloatDistribution(1e-5, 1e-2, log=True)},
        ))  # fmt: skip
    result = client.predict("ui-study", str(storage), api_name="/apply_best")
    names = form_field_names()
    values = dict(zip(names, result[2 : 2 + len(names)], strict=True))
    assert result[:2] == ("tiny-set", "whisper-base")
    assert values["learning_rate"] == pytest.approx(3e-4) and values["lora_r"] == 8
    assert "ui-study" in result[-1]
    figures = client.predict("ui-study", str(storage), api_name="/search_plots")
    titles = [json.loads(f["plot"])["layout"]["title"]["text"] for f in figures]
    assert "3 completed" in titles[0] and "3 completed" in titles[2]
    with pytest.raises(Exception, match="no study named"):
        client.predict("other", str(storage), api_name="/apply_best")
    preset = dict(zip(names, client.predict("gpu-lora", api_name="/apply_preset"), strict=False))
    assert (
        preset["lora_r"] == 32 and preset["max_steps"] == 4000 and len(preset["lora_targets"]) == 6
    )


def test_tensorboard_is_served_by_the_app(app_url, workspace):
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(workspace.runs / "tb-probe" / "tensorboard") as writer:
        writer.add_scalar("train/loss", 1.5, 1)
    page = httpx.get(f"{app_url}/tensorboard/", timeout=60)
    assert page.status_code == 200 and "tb-relative-root" in page.text
    deadline = time.monotonic() + 30
    runs: list[str] = []
    while time.monotonic() < deadline and "tb-probe/tensorboard" not in runs:
        runs = httpx.get(f"{app_url}/tensorboard/data/runs", timeout=30).json()
        time.sleep(0.5)
    assert "tb-probe/tensorboard" in runs
    tags = httpx.get(f"{app_url}/tensorboard/data/plugin/scalars/tags", timeout=30).json()
    assert "train/loss" in tags["tb-probe/tensorboard"]


def test_tensorboard_needs_the_api_key_when_keys_are_set(tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from api.auth import AccessPolicy
    from api.tensorboard import mount_tensorboard

    app = FastAPI()
    mount_tensorboard(app, AccessPolicy(api_keys=frozenset({"k"}), required=True))
    assert TestClient(app).get("/tensorboard/").status_code == 401  # refused before building it


def test_a_bad_search_space_is_a_clear_error(client, tiny_whisper_dir, tiny_dataset_dir):
    form = tiny_form(tiny_whisper_dir, tiny_dataset_dir)
    with pytest.raises(Exception, match=r"learning_rate: low 0\.01 is above high 0\.001"):
        client.predict(**form, learning_rate_low=1e-2, learning_rate_high=1e-3,
                       api_name="/start_search")  # fmt: skip
    with pytest.raises(Exception, match="lora_r: choices must be whole numbers"):
        client.predict(**form, lora_r_choices="8, 1.5", api_name="/start_search")


@pytest.mark.slow
def test_a_search_runs_as_a_child_process_and_its_best_config_applies(
    client, tiny_whisper_dir, tiny_dataset_dir, workspace
):
    form = tiny_form(tiny_whisper_dir, tiny_dataset_dir, max_steps=3, val_every_steps=3)
    status, log, *_ = client.predict(
        **form, study="ui-search", trials=2, dimensions=["learning_rate"], api_name="/start_search"
    )
    assert "running" in status
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and "running" in status:
        time.sleep(1)
        status, log, *_ = client.predict(api_name="/watch_search")
    assert "ended" in status and "exit code" not in status, log
    assert log.count("trial ") >= 2 and "best config" in log
    result = client.predict("ui-search", "", api_name="/apply_best")
    assert result[:2] == (str(tiny_dataset_dir), str(tiny_whisper_dir))


def test_the_lr_finder_runs_as_a_child_and_its_suggestion_fills_the_form(
    client, tiny_whisper_dir, tiny_dataset_dir, workspace
):
    form = tiny_form(tiny_whisper_dir, tiny_dataset_dir)
    finder = {"finder_steps": 8, "finder_min_lr": 1e-5, "finder_max_lr": 1e-1}
    status, *_ = client.predict(**form, **finder, api_name="/find_learning_rate")
    assert status.startswith("Learning-rate finder:")
    with pytest.raises(Exception, match="cpu is busy: the learning-rate finder has held it"):
        client.predict(**form, **finder, api_name="/find_learning_rate")
    with pytest.raises(Exception, match="cpu is busy: run lr-finder"):
        client.predict(**form, run_name="ui-during-finder", api_name="/start_training")
    deadline = time.monotonic() + POLL_TIMEOUT
    while status.startswith("Learning-rate finder:") and time.monotonic() < deadline:
        time.sleep(0.5)
        status, plot, suggested, log, *_ = client.predict(api_name="/watch_lr_finder")
    assert "Suggested learning rate" in status, f"{status}\n{log}"
    assert len(figure_points(plot)["loss"]) >= 2 and math.isfinite(suggested)
    assert client.predict(api_name="/use_suggested_lr") == pytest.approx(suggested)
    table, _ = client.predict(api_name="/training_history")
    assert not any(row[0].startswith("lr-find") for row in table["data"])
    assert not (workspace.runs / "ui-during-finder").exists()
    assert len(list(workspace.runs.glob("lr-find-*/lr-finder/result.json"))) == 1


def test_a_failed_lr_finder_shows_why_and_its_console(workspace):
    from ui_components.training_lr_panel import finder_outcome, new_finder_directory

    job_dir = new_finder_directory()
    script = "import sys; print('lr-find step 1/8', file=sys.stderr); sys.exit('error: no model')"
    jobs.start_process([sys.executable, "-c", script], job_dir)
    jobs.wait(job_dir, timeout=30)
    outcome = finder_outcome(job_dir)
    assert outcome.state == "failed" and outcome.result is None
    assert "exit code 1" in outcome.message and "error: no model" in outcome.message
    assert outcome.log[-2:] == ("lr-find step 1/8", "error: no model")
    assert jobs.active_run("cpu") is None  # the device is free again
