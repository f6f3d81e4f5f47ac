"""Training runs on a tiny random Whisper and 12 espeak utterances: the loss falls, a run leaves
its artifacts and registers its model, LoRA merge is exact, a NaN stops the run, Stop and
SIGKILL both resume exactly, every preset builds, and DDP runs with 2 CPU processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from utils.training.config import PRESETS, TrainConfig, preset
from utils.training.events import read_events, request_stop

REPO = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def tiny_config(tiny_whisper_dir, tiny_dataset_dir) -> TrainConfig:
    return TrainConfig(
        model=str(tiny_whisper_dir), dataset=str(tiny_dataset_dir), method="lora", lora_r=16,
        lora_alpha=32, lora_targets=("q", "k", "v", "out", "fc1", "fc2"), learning_rate=1e-2,
        warmup_steps=0, max_steps=16, batch_size=2, num_workers=0, val_every_steps=8,
        checkpoint_every_steps=3, generation_max_tokens=12, augment=False, spec_augment=False,
        timestamp_share=0.0, prompt_share=0.0, forgetting_check=0,
    )  # fmt: skip


def events_of(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir).events if e["kind"] == kind]


def step_losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in events_of(run_dir, "step")}


@pytest.fixture(scope="module")
def finished_run(tiny_config, tmp_path_factory, workspace):
    from utils.training.run import train

    run_dir = tmp_path_factory.mktemp("runs") / "tiny-lora"
    return train(tiny_config, run_dir, workspace=workspace)


def test_loss_falls_and_the_run_leaves_its_artifacts(finished_run, workspace):
    from utils.registry import list_models

    assert finished_run.state == "finished", finished_run.message
    run_dir = finished_run.run_dir
    losses = list(step_losses(run_dir).values())
    # LoRA cannot move a random tiny model far (its tied output layer is frozen): a modest fall.
    assert len(losses) == 16 and sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.1, losses
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["val/cer"] >= 0 and metrics["val/wer"] >= 0 and metrics["step"] == 16
    assert TrainConfig.load(run_dir / "config.json").max_steps == 16
    assert len(json.loads((run_dir / "dataset.json").read_text())["fingerprint"]) == 64
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert {"last.ckpt", "best.ckpt"} <= {p.name for p in (run_dir / "checkpoints").iterdir()}
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert (
        len(events_of(run_dir, "val")) >= 1 and events_of(run_dir, "end")[-1]["state"] == "finished"
    )
    entry = next(m for m in list_models(workspace) if m.name == run_dir.name)
    assert entry.kind == "transformers" and "val/cer" in entry.metrics


def test_lora_merge_equals_the_adapter_model(finished_run, tiny_whisper_dir):
    from peft import PeftModel
    from transformers import WhisperForConditionalGeneration

    adapted = PeftModel.from_pretrained(
        WhisperForConditionalGeneration.from_pretrained(tiny_whisper_dir),
        finished_run.run_dir / "adapter",
    ).eval()
    merged = WhisperForConditionalGeneration.from_pretrained(finished_run.run_dir / "merged").eval()
    base = WhisperForConditionalGeneration.from_pretrained(tiny_whisper_dir).eval()
    features = torch.randn(2, 80, 3000, generator=torch.Generator().manual_seed(0))
    prefix = torch.tensor([[50258, 50334, 50359, 50363, 1000, 2000]] * 2)
    with torch.no_grad():
        want = adapted(input_features=features, decoder_input_ids=prefix).logits
        got = merged(input_features=features, decoder_input_ids=prefix).logits
        untrained = base(input_features=features, decoder_input_ids=prefix).logits
    assert torch.allclose(want, got, atol=1e-4), (want - got).abs().max()
    assert (want - untrained).abs().max() > 0.1  # the adapter learned something


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tiny_config, tmp_path, workspace, monkeypatch
):
    from utils.training import module as module_code
    from utils.training.run import train

    real_step = module_code.WhisperFineTuner._shared_step

    def poisoned(self, batch):
        loss = real_step(self, batch)
        return loss * float("nan") if self.training and self.global_step >= 7 else loss

    monkeypatch.setattr(module_code.WhisperFineTuner, "_shared_step", poisoned)
    config = tiny_config.with_overrides(["method=full", "learning_rate=1e-2"])
    result = train(config, tmp_path / "run", workspace=workspace)
    losses = step_losses(tmp_path / "run")
    assert sorted(losses) == list(range(1, 8)) and losses[7] < 0.8 * losses[1], losses
    assert result.state == "failed" and "loss became nan at step 8" in result.message
    assert "last good checkpoint" in result.message
    last = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=False)
    assert last["global_step"] == 6
    assert events_of(tmp_path / "run", "end")[-1]["state"] == "failed"


def test_stop_saves_a_checkpoint_and_resume_finishes_the_run(tiny_config, tmp_path, workspace):
    from utils.training.run import resume_config, train

    run_dir = tmp_path / "run"
    results = []
    worker = threading.Thread(target=lambda: results.append(train(tiny_config, run_dir)))
    worker.start()
    while not any(e["step"] >= 2 for e in events_of(run_dir, "step")) and worker.is_alive():
        time.sleep(0.01)
    request_stop(run_dir)
    worker.join(120)
    stopped = results[0]
    assert stopped.state == "stopped", stopped.message
    step = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=False)["global_step"]
    assert 2 <= step < 16 and not (run_dir / "metrics.json").exists()
    resumed = train(resume_config(run_dir), run_dir, resume=True, workspace=workspace)
    assert resumed.state == "finished" and resumed.metrics["step"] == 16
    assert max(step_losses(run_dir)) == 16 and not (run_dir / "STOP").exists()


def cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(REPO / "train_whisper_lightning.py"), *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kwargs)  # fmt: skip


def run_cli(*args: str, timeout: float = 180) -> str:
    process = cli(*args)
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def test_sigkill_mid_epoch_then_resume_repeats_the_next_five_losses(tiny_config, tmp_path):
    """2 loader workers, augmentation on: the resumed run's next 5 step losses equal those of
    an uninterrupted run (4 batches per epoch, checkpoints every 3 steps: mid-epoch)."""
    config = tiny_config.with_overrides(["num_workers=2", "augment=true", "spec_augment=true",
                                         "max_steps=14", "val_every_steps=100",
                                         "timestamp_share=0.3", "prompt_share=0.3"])  # fmt: skip
    config.save(tmp_path / "config.json")
    common = ("--dataset", config.dataset, "--model", config.model, "--config",
              str(tmp_path / "config.json"))  # fmt: skip
    run_cli(*common, "--output-dir", str(tmp_path / "whole"))
    reference = step_losses(tmp_path / "whole")

    killed = tmp_path / "killed"
    process = cli(*common, "--output-dir", str(killed), start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(s >= 5 for s in step_losses(killed)):
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    saved = torch.load(killed / "checkpoints/last.ckpt", weights_only=False)["global_step"]
    assert saved in (3, 6, 9) and saved + 5 <= 14, saved  # mid-epoch: 4 batches per epoch
    run_cli("--resume", str(killed))
    resumed = step_losses(killed)
    after = range(saved + 1, saved + 6)
    assert [resumed[s] for s in after] == [reference[s] for s in after]


def test_ddp_with_two_cpu_processes(tiny_config, tmp_path):
    config = tiny_config.with_overrides(["strategy=ddp", "devices=2", "max_steps=4",
                                         "val_every_steps=100"])  # fmt: skip
    config.save(tmp_path / "config.json")
    run_cli("--dataset", config.dataset, "--model", config.model, "--config",
            str(tmp_path / "config.json"), "--output-dir", str(tmp_path / "run"))  # fmt: skip
    start = events_of(tmp_path / "run", "start")[0]
    assert "2 processes" in start["devices"] and "gloo" in start["devices"]
    assert sorted(step_losses(tmp_path / "run")) == [1, 2, 3, 4]
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert "val/cer" in metrics and "val/wer" in metrics


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_a_trainable_model(name, tiny_whisper_dir):
    from transformers import WhisperForConditionalGeneration

    from utils.training.model import count_parameters, make_trainable
    from utils.training.strategies import plan_hardware

    config = preset(name, model=str(tiny_whisper_dir))
    model = make_trainable(
        WhisperForConditionalGeneration.from_pretrained(tiny_whisper_dir), config
    )
    counts = count_parameters(model)
    assert 0 < counts.trainable < counts.total if config.method == "lora" else counts.trainable
    plan = plan_hardware(config, cuda_available=False, cuda_devices=0, bf16_supported=False)
    assert plan.accelerator == "cpu" and plan.precision == "32-true"


def test_cli_reports_a_missing_dataset_and_a_run_without_checkpoint(tmp_path):
    from train_whisper_lightning import main

    assert main(["--dataset", str(tmp_path / "nope"), "--model", "whisper-base",
                 "--output-dir", str(tmp_path / "run")]) == 1  # fmt: skip
    end = events_of(tmp_path / "run", "end")[-1]
    assert end["state"] == "failed" and "no manifest.jsonl" in end["message"]
    (tmp_path / "other").mkdir()
    TrainConfig().save(tmp_path / "other" / "config.json")
    assert main(["--resume", str(tmp_path / "other")]) == 1
