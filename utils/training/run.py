"""One fine-tuning run end to end: config and dataset facts saved, the Lightning trainer built and
run (or resumed from `last.ckpt`), a final validation, the adapter and merged model exported
and registered, and every stage reported in the run's event log."""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from utils.dataset.actions import dataset_path
from utils.dataset.store import fingerprint
from utils.model_store import ModelNotFoundError
from utils.training import artifacts as files
from utils.training import forgetting, tracking
from utils.training.callbacks import LAST_CHECKPOINT, AtomicCheckpointIO, EventLog, StopOnRequest
from utils.training.config import ConfigError, TrainConfig
from utils.training.events import STOP_NAME, EventWriter
from utils.training.model import (
    BaseModel,
    count_parameters,
    load_base_model,
    make_trainable,
    save_adapter,
    save_merged,
)
from utils.training.module import NonFiniteLossError, WhisperFineTuner
from utils.training.strategies import HardwarePlan, plan_hardware
from utils.workspace import Workspace, get_workspace


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    state: str  # "finished" | "stopped" | "failed"
    message: str
    metrics: dict[str, Any] = field(default_factory=dict)
    model_dir: Path | None = None  # the merged model registered for transcription


def is_rank_zero() -> bool:
    return rank_zero_only.rank == 0


def resume_config(run_dir: Path, max_steps: int | None = None) -> TrainConfig:
    """The saved config of `run_dir` (max_steps raised when given, to train further)."""
    config = TrainConfig.load(run_dir / files.CONFIG_NAME)
    if not (run_dir / files.CHECKPOINTS / LAST_CHECKPOINT).is_file():
        raise ConfigError(
            f"{run_dir}: nothing to resume (no {files.CHECKPOINTS}/{LAST_CHECKPOINT})"
        )
    return config.with_overrides([f"max_steps={max_steps}"]) if max_steps else config


def dataset_dir(config: TrainConfig) -> Path:
    """The dataset folder of `config` (ConfigError when it has no manifest.jsonl)."""
    data_dir = dataset_path(config.dataset)
    if not (data_dir / "manifest.jsonl").is_file():
        raise ConfigError(f"dataset {config.dataset!r}: no manifest.jsonl in {data_dir}")
    return data_dir


def _prepare(config: TrainConfig, run_dir: Path, resume: bool, writer: EventWriter) -> Path:
    """Save the config and dataset facts; refuse to start afresh over a run with checkpoints."""
    data_dir = dataset_dir(config)
    if not is_rank_zero():
        return data_dir
    checkpoints = run_dir / files.CHECKPOINTS
    if not resume and checkpoints.is_dir() and any(checkpoints.iterdir()):
        raise ConfigError(f"{run_dir} already holds a run with checkpoints; resume it instead")
    (run_dir / STOP_NAME).unlink(missing_ok=True)
    facts = {"path": str(data_dir.resolve()), "fingerprint": fingerprint(data_dir)}
    saved = files.read_json(run_dir / files.DATASET_NAME)
    if resume and saved and saved.get("fingerprint") != facts["fingerprint"]:
        writer.log(
            "the dataset changed since this run started: the data order and "
            "held-out split may differ from the interrupted run",
            level="warning",
        )
    config.save(run_dir / files.CONFIG_NAME)
    files.write_json(run_dir / files.DATASET_NAME, facts)
    return data_dir


def _augmenters(config: TrainConfig) -> tuple[Any, Any]:
    audio = spec = None
    if config.augment and config.augment_strength > 0:
        from augmentation.audio_aug import AudioAugmentConfig, AudioAugmenter

        audio = AudioAugmenter(AudioAugmentConfig(strength=config.augment_strength))
    if config.spec_augment:
        from augmentation.spec_aug import SpecAugment, SpecAugmentConfig

        spec = SpecAugment(SpecAugmentConfig())
    return audio, spec


def build_callbacks(config: TrainConfig, run_dir: Path, writer: EventWriter) -> list[L.Callback]:
    """The callbacks of every run: event log, Stop, last and best checkpoints, early stopping."""
    checkpoints = run_dir / files.CHECKPOINTS
    callbacks: list[L.Callback] = [
        EventLog(writer, config.max_steps),
        StopOnRequest(run_dir, checkpoints),
        ModelCheckpoint(
            checkpoints,
            filename="last",
            every_n_train_steps=config.checkpoint_every_steps,
            save_top_k=1,
            enable_version_counter=False,
        ),
        ModelCheckpoint(
            checkpoints,
            filename="best",
            monitor="val/cer",
            mode="min",
            save_top_k=1,
            enable_version_counter=False,
            save_on_train_epoch_end=False,
        ),
    ]
    if config.early_stopping_patience:
        callbacks.append(
            EarlyStopping(
                "val/cer",
                patience=config.early_stopping_patience,
                mode="min",
                check_on_train_epoch_end=False,
            )
        )
    return callbacks


def build_trainer(
    config: TrainConfig,
    run_dir: Path,
    plan: HardwarePlan,
    callbacks: list[L.Callback],
    loggers: list[Logger] | None = None,
) -> L.Trainer:
    """The run's Lightning trainer; `loggers` default to TensorBoard in RUN_DIR/tensorboard/."""
    deepspeed = config.strategy.startswith("deepspeed")
    return L.Trainer(
        **plan.trainer_kwargs(),
        max_steps=config.max_steps,
        max_epochs=-1,
        accumulate_grad_batches=config.accumulate_grad_batches,
        gradient_clip_val=config.gradient_clip or None,
        val_check_interval=config.val_every_steps * config.accumulate_grad_batches,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        logger=loggers if loggers is not None else [tracking.tensorboard_logger(run_dir)],
        callbacks=callbacks,
        plugins=None if deepspeed else [AtomicCheckpointIO()],
        use_distributed_sampler=False,  # the data module shards its own resumable sampler
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=run_dir,
    )


def build_module(
    config: TrainConfig,
    base: BaseModel,
    data_dir: Path,
    module_class: type[WhisperFineTuner] = WhisperFineTuner,
) -> tuple[WhisperFineTuner, L.LightningDataModule]:
    """The LightningModule over `base` made trainable (seeded first: LoRA's initial weights come
    from the RNG) and the data module of `data_dir`, as a run trains them; `module_class` may be
    a subclass adding hooks (the learning-rate finder's progress)."""
    from utils.training.data import WhisperDataModule

    L.seed_everything(config.seed, verbose=False)
    model = make_trainable(base.model, config, base.new_token_ids)
    audio_aug, spec_aug = _augmenters(config)
    data = WhisperDataModule(data_dir, config, base.processor, audio_aug, spec_aug)
    return module_class(model, base.processor.tokenizer, config), data


def train(
    config: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    workspace: Workspace | None = None,
    callbacks: Sequence[L.Callback] = (),
    export: bool = True,
) -> RunResult:
    """Train `config` into `run_dir` (resume from its last checkpoint when `resume`); every
    outcome, failures included, ends with an "end" event and a `RunResult`.

    `callbacks` are added to the trainer's (e.g. a search's pruning); `export=False` skips the
    adapter, merged model and registry entry (metrics.json is still written)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    workspace = workspace or get_workspace()
    writer = EventWriter(run_dir)
    try:
        return _train(config, run_dir, resume, workspace, writer, list(callbacks), export)
    except (NonFiniteLossError, ConfigError, ModelNotFoundError, ValueError, MemoryError,
            RuntimeError) as exc:  # fmt: skip
        message = str(exc) or type(exc).__name__
        if not isinstance(exc, NonFiniteLossError | ConfigError | ModelNotFoundError):
            traceback.print_exc()  # the console log keeps where an unexpected failure came from
        if is_rank_zero():
            writer.write("end", state="failed", message=message)
        return RunResult(run_dir, "failed", message)


@dataclass(frozen=True)
class _Context:
    config: TrainConfig
    run_dir: Path
    workspace: Workspace
    writer: EventWriter
    export: bool
    started: float = field(default_factory=time.monotonic)


def _train(
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    workspace: Workspace,
    writer: EventWriter,
    extra_callbacks: list[L.Callback],
    export: bool,
) -> RunResult:
    context = _Context(config, run_dir, workspace, writer, export)
    data_dir = _prepare(config, run_dir, resume, writer)
    loggers = tracking.build_loggers(config, run_dir, resume=resume)  # ConfigError when unusable
    plan = plan_hardware(config)
    base = load_base_model(config.model, workspace)
    before = _english_before(context, base, plan, resume)  # before the seed: the RNG is untouched
    module, data = build_module(config, base, data_dir)
    callbacks = build_callbacks(config, run_dir, writer) + extra_callbacks
    trainer = build_trainer(config, run_dir, plan, callbacks, loggers)
    last = run_dir / files.CHECKPOINTS / LAST_CHECKPOINT
    if is_rank_zero():
        tracking.start_trackers(loggers, config, run_dir)
        writer.write(
            "start",
            max_steps=config.max_steps,
            config=config.to_dict(),
            resumed=resume,
            devices=plan.description,
            parameters=count_parameters(module.model).describe(),
        )
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume else None)
    stopper = next(c for c in callbacks if isinstance(c, StopOnRequest))
    if stopper.stopped:
        message = f"stopped at step {trainer.global_step}; resume to continue"
        if is_rank_zero():
            writer.write("end", state="stopped", message=message, step=trainer.global_step)
        return RunResult(run_dir, "stopped", message)
    trainer.save_checkpoint(last)  # the final state stays resumable (to train further)
    metrics = _final_metrics(context, trainer, module, data)
    metrics.update(_english_after(context, before, module, base.processor, plan))
    tracking.log_final(trainer.loggers, metrics, trainer.global_step)
    return _export(context, module, base, metrics, trainer.global_step)


def _english_before(
    context: _Context, base: BaseModel, plan: HardwarePlan, resume: bool
) -> forgetting.ForgettingReport | None:
    """The base model's English WER (rank 0; see `utils.training.forgetting`)."""
    if not is_rank_zero():
        return None
    return forgetting.check_before(
        base.model, base.processor, context.run_dir, n=context.config.forgetting_check,
        resume=resume, device=plan.accelerator, log=context.writer.log,
        max_new_tokens=_english_tokens(context.config),
    )  # fmt: skip


def _english_after(
    context: _Context,
    before: forgetting.ForgettingReport | None,
    module: WhisperFineTuner,
    processor: Any,
    plan: HardwarePlan,
) -> dict[str, Any]:
    """english/wer_before and english/wer_after of the exported weights, and their event."""
    if before is not None and context.config.strategy == "deepspeed_stage_3":
        context.writer.log("English forgetting check skipped after training: the weights are "
                           "sharded across processes (deepspeed_stage_3)")  # fmt: skip
        return before.metrics()
    report = forgetting.check_after(
        before, module.model, processor, context.run_dir, device=plan.accelerator,
        log=context.writer.log, max_new_tokens=_english_tokens(context.config),
    )  # fmt: skip
    if report is None:
        return before.metrics() if before is not None else {}
    context.writer.write("forgetting", wer_before=report.wer_before, wer_after=report.wer_after,
                         n_utterances=report.n_utterances, message=report.describe())  # fmt: skip
    return report.metrics()


def _english_tokens(config: TrainConfig) -> int:
    return min(config.generation_max_tokens, 96)  # asterisk prompts are one or two sentences


def _final_metrics(
    context: _Context, trainer: L.Trainer, module: WhisperFineTuner, data: Any
) -> dict[str, Any]:
    """Validate the final weights; when the best checkpoint scored a lower CER, load it and
    report (and later export) that one."""
    if module.validated_at_step == trainer.global_step:  # the loop just validated these weights
        final = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    else:
        final = _validate(trainer, module, data)
    best_path = context.run_dir / files.CHECKPOINTS / "best.ckpt"
    exported, figures = "final", final
    if best_path.is_file():
        best = torch.load(best_path, map_location="cpu", weights_only=False)
        if _better(best, final):
            module.load_state_dict(best["state_dict"], strict=module.strict_loading)
            exported, figures = "best", _validate(trainer, module, data)
    return {
        **figures,
        "step": trainer.global_step,
        "exported": exported,
        "final": final,
        "train_seconds": round(time.monotonic() - context.started, 1),
    }


def _export(
    context: _Context, module: WhisperFineTuner, base: BaseModel, metrics: dict, step: int
) -> RunResult:
    """metrics.json, then (with `export`) the adapter, the merged model and its registry entry."""
    run_dir, model_dir = context.run_dir, None
    if not is_rank_zero():
        return RunResult(run_dir, "finished", "finished", metrics)
    if context.export:
        save_adapter(module.model, run_dir / files.ADAPTER)
        save_merged(module.model, base.processor, run_dir / files.MERGED, base.source)
    files.write_json(run_dir / files.METRICS_NAME, metrics)
    if context.export:
        model_dir = files.register_run_model(
            run_dir,
            context.workspace,
            base_model=context.config.model,
            dataset=context.config.dataset,
            metrics=metrics,
        )
    english = (
        f"; English WER {_pct(metrics, forgetting.METRIC_BEFORE)} before, "
        f"{_pct(metrics, forgetting.METRIC_AFTER)} after"
        if metrics.get(forgetting.METRIC_AFTER) is not None
        else ""
    )
    message = (
        f"finished at step {step}: val WER {_pct(metrics, 'val/wer')}, "
        f"CER {_pct(metrics, 'val/cer')}{english}"
        + (f"; model {model_dir.name}" if model_dir else "")
    )
    context.writer.write("end", state="finished", message=message, metrics=metrics)
    return RunResult(run_dir, "finished", message, metrics, model_dir)


def _validate(trainer: L.Trainer, module: WhisperFineTuner, data: Any) -> dict[str, float]:
    results = trainer.validate(module, datamodule=data, verbose=False)
    return {k: float(v) for k, v in (results[0] if results else {}).items()}


def _better(checkpoint: dict[str, Any], final: dict[str, float]) -> bool:
    for state in checkpoint.get("callbacks", {}).values():
        score = state.get("best_model_score") if isinstance(state, dict) else None
        if state.get("monitor") == "val/cer" and score is not None:
            return float(score) < final.get("val/cer", float("inf"))
    return False


def _pct(figures: dict[str, Any], key: str) -> str:
    return f"{figures[key]:.1%}" if key in figures else "n/a"
