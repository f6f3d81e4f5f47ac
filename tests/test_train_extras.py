"""Training extras on a tiny random Whisper and 12 espeak utterances: the learning-rate finder
(function, figure, command line), TensorBoard scalars of a run, W&B / MLflow trackers (a clear
error when not installed; MLflow for real when it is), and the English forgetting check on
real asterisk prompts (before/after in metrics.json, kept across a resume, skipped when the
prompts are missing)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from utils.training import forgetting, tracking
from utils.training.config import ConfigError, TrainConfig
from utils.training.events import read_events


@pytest.fixture(scope="module")
def tiny(tiny_whisper_dir, tiny_dataset_dir) -> TrainConfig:
    return TrainConfig(
        model=str(tiny_whisper_dir), dataset=str(tiny_dataset_dir), lora_r=8, lora_alpha=16,
        learning_rate=1e-2, warmup_steps=0, max_steps=4, batch_size=2, num_workers=0,
        val_every_steps=4, checkpoint_every_steps=100, generation_max_tokens=8, augment=False,
        spec_augment=False, timestamp_share=0.0, prompt_share=0.0, forgetting_check=0,
    )  # fmt: skip


def events_of(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir).events if e["kind"] == kind]


# -- config -------------------------------------------------------------------------------------
def test_new_fields_round_trip_and_are_checked():
    config = TrainConfig(trackers=("mlflow", "wandb"), forgetting_check=3)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    changed = TrainConfig().with_overrides(["trackers=mlflow,wandb", "forgetting_check=0"])
    assert changed.trackers == ("mlflow", "wandb") and changed.forgetting_check == 0
    assert TrainConfig().with_overrides(["trackers="]).trackers == ()
    for bad in (["trackers=neptune"], ["trackers=mlflow,mlflow"], ["forgetting_check=-1"]):
        with pytest.raises(ConfigError):
            TrainConfig().with_overrides(bad)


# -- learning-rate finder -----------------------------------------------------------------------
def test_lr_finder_gives_a_curve_a_suggestion_and_a_figure(tiny, workspace, tmp_path, monkeypatch):
    from utils.training.lr_find import find_learning_rate, lr_finder_figure

    monkeypatch.chdir(tmp_path)  # Lightning's temporary checkpoint must not land here either
    seen: list[tuple[int, int]] = []
    result = find_learning_rate(tiny, workspace=workspace, min_lr=1e-5, max_lr=1.0, num_steps=8,
                                progress=lambda done, total: seen.append((done, total)),
                                early_stop_threshold=None)  # fmt: skip
    assert len(result.lrs) == len(result.losses) == 8
    assert result.lrs[0] == pytest.approx(1e-5) and result.lrs == tuple(sorted(result.lrs))
    assert result.suggestion is not None and math.isfinite(result.suggestion)
    assert 1e-5 <= result.suggestion <= 1.0
    assert seen[-1] == (8, 8) and len(seen) == 8
    figure = lr_finder_figure(result)
    assert list(figure.data[0].x) == list(result.lrs) and figure.layout.xaxis.type == "log"
    assert "suggested" in figure.layout.annotations[0].text
    assert not list(tmp_path.iterdir()) and not list(Path.cwd().glob(".lr_find*"))


def test_lr_finder_command_line_prints_json_and_writes_the_plot(tiny, workspace, tmp_path, capsys):
    from utils.training.lr_find import main

    plot = tmp_path / "lr.html"
    code = main(["--dataset", tiny.dataset, "--model", tiny.model, "--num-steps", "3",
                 "--set", "batch_size=2", "--set", "num_workers=0", "--set", "augment=false",
                 "--set", "method=full", "--json", "--plot", str(plot)])  # fmt: skip
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["lrs"]) == 3 and printed["num_steps"] == 3
    assert plot.stat().st_size > 1000 and "plotly" in plot.read_text()[:5000].lower()
    assert main(["--dataset", str(tmp_path / "nope"), "--model", tiny.model]) == 1
    assert "no manifest.jsonl" in capsys.readouterr().err


# -- a run with TensorBoard and the English check -------------------------------------------------
@pytest.fixture(scope="module")
def checked_run(tiny, tmp_path_factory, workspace):
    from utils.training.run import train

    config = tiny.with_overrides(["forgetting_check=2", "max_steps=2", "val_every_steps=2"])
    return train(config, tmp_path_factory.mktemp("runs") / "english", workspace=workspace)


def test_run_reports_english_wer_before_and_after(checked_run):
    assert checked_run.state == "finished", checked_run.message
    metrics = json.loads((checked_run.run_dir / "metrics.json").read_text())
    for key in (forgetting.METRIC_BEFORE, forgetting.METRIC_AFTER):
        assert isinstance(metrics[key], float) and metrics[key] >= 0, metrics
    assert metrics["english/utterances"] == 2
    event = events_of(checked_run.run_dir, "forgetting")[-1]
    assert event["wer_after"] == metrics[forgetting.METRIC_AFTER]
    assert "English WER" in events_of(checked_run.run_dir, "end")[-1]["message"]
    kept = forgetting.stored_before(checked_run.run_dir)
    assert kept is not None and kept.wer_before == metrics[forgetting.METRIC_BEFORE]


def test_tensorboard_holds_train_and_validation_scalars(checked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(checked_run.run_dir / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "val/wer", "val/cer", forgetting.METRIC_AFTER} <= scalars
    assert len(events.Scalars("train/loss")) == 2


# -- the English check on its own ---------------------------------------------------------------
class Untouchable:
    """A model that fails the test if the check tries to use it."""

    def __getattr__(self, name):
        raise AssertionError(f"the model was used ({name})")


def test_a_resumed_run_keeps_the_first_before_figure(tmp_path):
    report = forgetting.ForgettingReport(0.25, None, 2, ("a", "b"))
    forgetting._save(tmp_path / forgetting.FORGETTING_NAME, report)
    logged: list[str] = []
    kept = forgetting.check_before(Untouchable(), None, tmp_path, n=2, resume=True, device="cpu",
                                   log=lambda message, level: logged.append(message))  # fmt: skip
    assert kept == report and not logged


def test_missing_prompts_skip_the_check_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(forgetting, "SOUNDS", tmp_path)
    monkeypatch.setattr(forgetting, "TRANSCRIPT_FILES", (tmp_path / "core-sounds-en.txt",))
    forgetting.available_prompts.cache_clear()
    logged: list[tuple[str, str]] = []
    note = lambda message, level: logged.append((message, level))  # noqa: E731
    try:
        result = forgetting.check_before(Untouchable(), None, tmp_path, n=4, resume=False,
                                         device="cpu", log=note)  # fmt: skip
    finally:
        forgetting.available_prompts.cache_clear()
    assert result is None and logged[0][1] == "info"
    assert "skipped" in logged[0][0] and "asterisk-core-sounds-en-wav" in logged[0][0]


def test_prompts_are_a_fixed_choice_of_short_real_speech():
    first, again = forgetting.choose_prompts(8), forgetting.choose_prompts(8)
    assert first == again and len({p.name for p in first}) == 8
    assert all(p.path.is_file() and len(p.text.split()) >= 3 for p in first)


# -- trackers -----------------------------------------------------------------------------------
def test_a_tracker_that_is_not_installed_fails_the_run_before_training(
    tiny, tmp_path, workspace, monkeypatch
):
    from utils.training.run import train

    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))  # fmt: skip
    result = train(tiny.with_overrides(["trackers=mlflow"]), tmp_path / "run", workspace=workspace)
    assert result.state == "failed" and "pip install mlflow" in result.message
    assert not events_of(tmp_path / "run", "start") and not (tmp_path / "run/checkpoints").exists()


def test_wandb_without_a_login_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name, *a: object())
    for variable in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(ConfigError, match="WANDB_API_KEY"):
        tracking.check_trackers(TrainConfig(trackers=("wandb",)))
    monkeypatch.setenv("WANDB_MODE", "offline")
    tracking.check_trackers(TrainConfig(trackers=("wandb",)))


def test_mlflow_receives_the_run(tiny, tmp_path, workspace, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from utils.training.run import train

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")  # the run sets it: undone after the test
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "extras-test")
    result = train(tiny.with_overrides(["trackers=mlflow"]), tmp_path / "run", workspace=workspace)
    assert result.state == "finished", result.message
    run_id = json.loads((tmp_path / "run" / tracking.TRACKERS_NAME).read_text())["mlflow"]
    run = MlflowClient(uri).get_run(run_id)
    assert {"train/loss", "val/cer", "val/wer"} <= set(run.data.metrics)
    assert run.data.params["lora_r"] == "8"
