"""Experiment tracking of a run: TensorBoard always (RUN_DIR/tensorboard/), Weights & Biases and
MLflow when a config asks for them (`TrainConfig.trackers`), configured from the environment:

- "wandb": `pip install wandb`; WANDB_PROJECT (default "whisper-studio"), WANDB_ENTITY, and a
  login (WANDB_API_KEY, `wandb login`) unless WANDB_MODE=offline or disabled.
- "mlflow": `pip install mlflow` (or mlflow-skinny); MLFLOW_TRACKING_URI (default
  file:RUN_DIR/mlruns), MLFLOW_EXPERIMENT_NAME (default "whisper-studio"). MLflow 3 refuses a
  file store unless MLFLOW_ALLOW_FILE_STORE=true: for a file: URI that is set unless given.

Problems (package missing, no login, tracking server unreachable) raise `ConfigError` before
training starts, never mid-run. A resumed run continues the same W&B / MLflow run: their ids
are kept in RUN_DIR/trackers.json.
"""

from __future__ import annotations

import importlib.util
import math
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger

from utils.training import artifacts as files
from utils.training.config import ConfigError, TrainConfig

TRACKERS_NAME = "trackers.json"  # RUN_DIR file: tracker name -> its run id, for resume
DEFAULT_PROJECT = "whisper-studio"
PACKAGES = {"wandb": "wandb", "mlflow": "mlflow"}  # tracker -> the pip package providing it
OFFLINE_WANDB_MODES = ("offline", "disabled", "dryrun")


def check_trackers(config: TrainConfig) -> None:
    """Raise ConfigError naming the pip package (or the missing setting) for any tracker of
    `config` that cannot run here."""
    for name in config.trackers:
        if importlib.util.find_spec(name) is None:
            raise ConfigError(
                f"trackers: {name} is not installed; run `pip install {PACKAGES[name]}` "
                f"or remove {name!r} from trackers"
            )
    if "wandb" in config.trackers and not _wandb_logged_in():
        raise ConfigError(
            "trackers: wandb has no login; set WANDB_API_KEY (or run `wandb login`), "
            "or WANDB_MODE=offline to keep the run on this machine"
        )


def _wandb_logged_in() -> bool:
    if os.environ.get("WANDB_MODE", "").lower() in OFFLINE_WANDB_MODES:
        return True
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def build_loggers(config: TrainConfig, run_dir: Path, *, resume: bool = False) -> list[Logger]:
    """TensorBoard plus the configured trackers (checked first: ConfigError when unusable)."""
    check_trackers(config)
    ids = files.read_json(run_dir / TRACKERS_NAME) if resume else {}
    loggers: list[Logger] = [tensorboard_logger(run_dir)]
    for name in config.trackers:
        try:
            loggers.append(_BUILDERS[name](run_dir, ids.get(name)))
        except Exception as exc:  # any failure of a third-party client: report, don't train
            raise ConfigError(f"trackers: {name} could not start ({exc})") from exc
    return loggers


def tensorboard_logger(run_dir: Path) -> TensorBoardLogger:
    """Scalars (train/loss, train/lr, val/wer, val/cer, ...) in RUN_DIR/tensorboard/."""
    return TensorBoardLogger(run_dir, name=files.TENSORBOARD, version="")


def _wandb(run_dir: Path, run_id: str | None) -> WandbLogger:
    return WandbLogger(
        name=run_dir.name,
        save_dir=str(run_dir),
        id=run_id or f"{run_dir.name[:40]}-{uuid.uuid4().hex[:8]}",
        project=os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT),
        entity=os.environ.get("WANDB_ENTITY") or None,
    )


def _mlflow(run_dir: Path, run_id: str | None) -> MLFlowLogger:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLFlowLogger(
        experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_PROJECT),
        run_name=run_dir.name,
        tracking_uri=uri,
        run_id=run_id,
    )


_BUILDERS: dict[str, Callable[[Path, str | None], Logger]] = {"wandb": _wandb, "mlflow": _mlflow}


def start_trackers(loggers: Sequence[Logger], config: TrainConfig, run_dir: Path) -> None:
    """Open the W&B / MLflow runs now (rank 0), so a login or server problem is a ConfigError
    before training; log the config as their hyperparameters and remember their run ids."""
    ids = files.read_json(run_dir / TRACKERS_NAME)
    for logger in loggers:
        name = tracker_name(logger)
        if name is None:
            continue
        try:
            logger.log_hyperparams(config.to_dict())
            ids[name] = _run_id(logger)
        except Exception as exc:  # any failure of a third-party client: report, don't train
            raise ConfigError(f"trackers: {name} could not start ({exc})") from exc
    if ids:
        files.write_json(run_dir / TRACKERS_NAME, ids)


def tracker_name(logger: Logger) -> str | None:
    """ "wandb" or "mlflow" for those loggers, None for TensorBoard and others."""
    if isinstance(logger, WandbLogger):
        return "wandb"
    if isinstance(logger, MLFlowLogger):
        return "mlflow"
    return None


def _run_id(logger: Logger) -> str:
    if isinstance(logger, MLFlowLogger):
        return str(logger.run_id)
    return str(logger.experiment.id)


def log_final(loggers: Sequence[Logger], metrics: dict[str, Any], step: int) -> None:
    """The finite figures among `metrics` with a "/" in their key (val/cer, english/wer_after),
    logged at `step` by every logger, which is then finalized (flushed, W&B / MLflow run ended)."""
    numbers = {
        k: float(v)
        for k, v in metrics.items()
        if "/" in k and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    for logger in loggers:
        if numbers:
            logger.log_metrics(numbers, step=step)
        logger.finalize("success")
