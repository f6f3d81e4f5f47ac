"""Lightning callbacks of a run: the event log the UI tails, Stop on request (with a checkpoint),
and checkpoint files written atomically so a kill mid-save never corrupts the last good one."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from utils.training.events import EventWriter, stop_requested

LAST_CHECKPOINT = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes `path.tmp` and renames it over `path`: readers and resumes only ever see a whole
    checkpoint, even when the process is killed while saving."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        with temporary.open("wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)


class EventLog(L.Callback):
    """Writes "step" events after each optimizer step and "val" events after each validation
    (rank 0 only). Figures come from the `WhisperFineTuner` (step loss, gradient norm)."""

    def __init__(self, writer: EventWriter, max_steps: int, every_steps: int = 1) -> None:
        self.writer = writer
        self.max_steps = max_steps
        self.every_steps = every_steps
        self._last_step = -1
        self._clock = time.monotonic()
        self._samples = 0
        self._rate = 0.0

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._last_step = trainer.global_step  # a resumed run starts past step 0
        self._clock = time.monotonic()
        if trainer.is_global_zero:
            for note in getattr(trainer.datamodule, "notes", ()):
                self.writer.log(note, level="warning")

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        self._samples += len(batch["ids"]) * trainer.world_size
        step = trainer.global_step
        if step == self._last_step or step % self.every_steps or not trainer.is_global_zero:
            return
        self._last_step = step
        now = time.monotonic()
        elapsed, self._clock = now - self._clock, now
        self._rate = self._samples / elapsed if elapsed > 0 else 0.0
        self._samples = 0
        remaining = self.max_steps - step
        optimizer = trainer.optimizers[0]
        self.writer.write(
            "step",
            step=step,
            epoch=trainer.current_epoch,
            loss=module.step_loss,
            lr=optimizer.param_groups[0]["lr"],
            grad_norm=module.last_grad_norm,
            samples_per_second=self._rate,
            eta_seconds=remaining * elapsed / self.every_steps if elapsed > 0 else None,
            max_steps=self.max_steps,
        )

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        figures = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        samples = [{"reference": r, "hypothesis": h} for r, h in module.last_samples]
        self.writer.write("val", step=trainer.global_step, samples=samples, **figures)
        self._clock = time.monotonic()  # validation time is not training throughput


class StopOnRequest(L.Callback):
    """Ends the run at the next optimizer step once `RUN_DIR/STOP` exists, after saving
    `last.ckpt`; all ranks agree before stopping."""

    def __init__(self, run_dir: str | os.PathLike, checkpoint_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = Path(checkpoint_dir)
        self.stopped = False
        self._last_step = -1

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._last_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if trainer.global_step == self._last_step:
            return  # mid-accumulation: a checkpoint here would lose the partial gradients
        self._last_step = trainer.global_step
        stop = trainer.strategy.reduce_boolean_decision(stop_requested(self.run_dir), all=False)
        if stop and not self.stopped:
            self.stopped = True
            trainer.save_checkpoint(self.checkpoint_dir / LAST_CHECKPOINT)
            trainer.should_stop = True
