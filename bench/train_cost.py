"""What one training step costs: samples per second and peak memory of our Lightning fine-tuner
against a plain PyTorch loop over the same model, batches and optimizer.

Each case runs in a fresh process (`python bench/train_cost.py CASE_JSON`), so its peak RSS is its
own. Both loops train on the same pre-collated batches of the Amharic demo dataset (no
augmentation, no validation, no checkpoint inside the timed steps), so the ratio measures the
training machinery alone: Lightning, our shared step, event log, per-step seeding and grad-norm.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class CostCase:
    dataset: str  # dataset directory
    model: str  # base model name or path
    method: str = "lora"  # "lora" or "full"
    checkpointing: bool = False
    loop: str = "lightning"  # "lightning" or "plain"
    batch_size: int = 2
    warmup: int = 2  # untimed steps first (allocator, first-call costs)
    steps: int = 6


@dataclass(frozen=True)
class CostFigures:
    case: CostCase
    samples_per_second: float
    seconds_per_step: float
    peak_rss_mb: float


def _config(case: CostCase) -> Any:
    from utils.training.config import TrainConfig

    return TrainConfig(
        model=case.model, dataset=case.dataset, method=case.method,  # type: ignore[arg-type]
        lora_targets=("q", "k", "v", "out"), lora_r=32, lora_alpha=64,
        gradient_checkpointing=case.checkpointing, batch_size=case.batch_size,
        max_steps=case.warmup + case.steps, warmup_steps=1, learning_rate=1e-4,
        augment=False, spec_augment=False, timestamp_share=0.0, prompt_share=0.0,
        precision="32", num_workers=0, val_every_steps=10_000, checkpoint_every_steps=10_000,
    )  # fmt: skip


def _batches(case: CostCase, processor: Any, config: Any) -> list[dict[str, Any]]:
    """The first (warmup + steps) batches of the training split, collated once."""
    from utils.training.data import read_utterances
    from utils.training.samples import WhisperCollator, WhisperTrainingSet

    train = [u for u in read_utterances(case.dataset) if u.split == "train"]
    count = case.batch_size * (case.warmup + case.steps)
    samples = WhisperTrainingSet(train[:count], case.dataset, processor, config, train=True)
    collate = WhisperCollator(processor.tokenizer.eos_token_id)
    items = [samples[i] for i in range(count)]
    return [collate(items[i : i + case.batch_size]) for i in range(0, count, case.batch_size)]


def _plain_loop(model: Any, batches: list[dict[str, Any]], config: Any) -> list[float]:
    """AdamW, linear warmup, clipping at 1.0: what a hand-written loop does. Step end times."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    schedule = get_linear_schedule_with_warmup(optimizer, config.warmup_steps, config.max_steps)
    model.train()
    ends = []
    for batch in batches:
        inputs = {k: batch[k] for k in ("input_features", "decoder_input_ids", "labels")}
        loss = model(**inputs, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, config.gradient_clip)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        ends.append(time.perf_counter())
    return ends


def _lightning_loop(model: Any, processor: Any, batches: list, config: Any, run_dir: Path) -> list:
    """Our fine-tuner and trainer (event log, stop file, checkpoint callbacks included)."""
    import lightning as L
    from torch.utils.data import DataLoader

    from utils.training.events import EventWriter
    from utils.training.module import WhisperFineTuner
    from utils.training.run import build_callbacks, build_trainer
    from utils.training.strategies import plan_hardware

    ends: list[float] = []

    class StepClock(L.Callback):
        def on_train_batch_end(self, *args: Any) -> None:
            ends.append(time.perf_counter())

    module = WhisperFineTuner(model, processor.tokenizer, config)
    callbacks = [*build_callbacks(config, run_dir, EventWriter(run_dir)), StepClock()]
    trainer = build_trainer(config, run_dir, plan_hardware(config), callbacks)
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    return ends


def measure(case: CostCase, run_dir: Path) -> CostFigures:
    """Run one case in this process (see the module docstring)."""
    import torch

    from utils.training.model import load_base_model, make_trainable

    config = _config(case)
    base = load_base_model(case.model)
    batches = _batches(case, base.processor, config)
    torch.manual_seed(0)
    model = make_trainable(base.model, config, base.new_token_ids)
    if case.loop == "plain":
        ends = _plain_loop(model, batches, config)
    else:
        ends = _lightning_loop(model, base.processor, batches, config, run_dir)
    timed = ends[case.warmup - 1 :]
    seconds = (timed[-1] - timed[0]) / (len(timed) - 1)
    return CostFigures(
        case=case,
        samples_per_second=case.batch_size / seconds,
        seconds_per_step=seconds,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def measure_in_fresh_process(case: CostCase, run_dir: Path) -> CostFigures:
    """`measure` in a child process, so peak memory and allocator state are the case's own."""
    done = subprocess.run(
        [sys.executable, __file__, json.dumps(asdict(case)), str(run_dir)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"cost case {case} failed:\n{done.stderr[-3000:]}")
    values = json.loads(done.stdout.strip().splitlines()[-1])
    return CostFigures(**{**values, "case": case})


def ratio_cases(base: CostCase) -> list[CostCase]:
    """Plain and Lightning alternately, twice: each loop's best of two damps machine noise."""
    return [replace(base, loop=loop) for _ in range(2) for loop in ("plain", "lightning")]


def memory_cases(base: CostCase) -> list[CostCase]:
    methods, flags = ("lora", "full"), (False, True)
    return [replace(base, method=m, checkpointing=c) for m in methods for c in flags]


if __name__ == "__main__":
    figures = measure(CostCase(**json.loads(sys.argv[1])), Path(sys.argv[2]))
    print(json.dumps({k: v for k, v in asdict(figures).items() if k != "case"}))
