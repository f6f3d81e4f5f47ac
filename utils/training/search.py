"""Hyperparameter search with Optuna: each trial is one short `train()` run under
`runs/search-<study>/trial-NNN`, scored by its final `val/cer` (lower is better).

The study lives in a database (by default the SQLite file `runs/optuna.db`; any SQLAlchemy URL
works: for several machines on one study, a PostgreSQL or MySQL server) and each call continues
the study of that name. Poor trials are pruned at their validations (median rule by default); a
trial whose run fails is marked FAIL with the run's message and the search goes on. Each trial
keeps its whole config (user attribute "config"): `best_config` applies the best one as is.

Command line (`--help` lists the options): `python -m utils.training.search --dataset DIR
--model NAME --trials N [--study NAME] ...` prints a line per trial, then the best config's path,
`runs/search-<study>/best-config.json`. To end a search early, request a stop in the running
trial's directory (`events.request_stop`): that run saves and ends, and no new trial starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import optuna
from lightning.pytorch.trainer.states import TrainerFn

from utils.training.config import (
    ConfigError,
    TrainConfig,
    add_config_arguments,
    compose_config,
    config_file_values,
)
from utils.training.events import EventWriter
from utils.training.run import RunResult, train
from utils.training.search_plots import (
    ALPHA_RATIO,
    CONFIG_ATTR,
    METRIC,
    SearchResult,
    TrialSummary,
    apply_params,
    completed,
    load_search,
    open_storage,
    storage_url,
    summarize,
    summarize_trial,
    trial_config,
)
from utils.workspace import Workspace, get_workspace

BEST_CONFIG_NAME = "best-config.json"
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
Range = tuple[float, float]


class TrialFailed(RuntimeError):
    """A trial's training run did not finish with a score; the message says why."""


@dataclass(frozen=True)
class SearchSpace:
    """The ranges searched; a dimension set to None is switched off (keeps the base value).

    Ranges are (low, high) inclusive, choices are tuples. The LoRA dimensions only apply to
    LoRA configs and augment_strength only when the base config augments."""

    learning_rate: Range | None = (1e-5, 1e-3)  # log-uniform
    lora_r: tuple[int, ...] | None = (8, 16, 32)
    lora_alpha_ratio: tuple[float, ...] | None = (1.0, 2.0)  # lora_alpha = ratio * lora_r
    lora_dropout: Range | None = (0.0, 0.2)
    warmup_steps: tuple[int, int] | None = (0, 100)  # the top is capped below max_steps
    batch_size: tuple[int, ...] | None = (4, 8, 16)
    accumulate_grad_batches: tuple[int, ...] | None = (1, 2)
    augment_strength: Range | None = (0.2, 0.8)

    def __post_init__(self) -> None:
        for name, limits in _LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, value := tuple(value))
            _check_dimension(name, value, *limits)

    def without(self, *names: str) -> SearchSpace:
        """A copy with the named dimensions switched off."""
        return dataclasses.replace(self, **dict.fromkeys(names))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if v is not None else None for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SearchSpace:
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown search dimensions: {', '.join(sorted(unknown))}")
        return cls(**values)

    def suggest(self, trial: optuna.Trial, base: TrainConfig) -> TrainConfig:
        """The config of `trial`: `base` with a value drawn for every active dimension."""
        params: dict[str, Any] = {}
        if self.learning_rate:
            params["learning_rate"] = trial.suggest_float("learning_rate", *self.learning_rate,
                                                          log=True)  # fmt: skip
        if base.method == "lora":
            if self.lora_r:
                params["lora_r"] = trial.suggest_categorical("lora_r", self.lora_r)
            if self.lora_alpha_ratio:
                params[ALPHA_RATIO] = trial.suggest_categorical(ALPHA_RATIO, self.lora_alpha_ratio)
            if self.lora_dropout:
                params["lora_dropout"] = trial.suggest_float("lora_dropout", *self.lora_dropout)
        if self.warmup_steps:
            high = min(self.warmup_steps[1], base.max_steps - 1)
            low = min(self.warmup_steps[0], high)
            params["warmup_steps"] = trial.suggest_int("warmup_steps", low, high)
        for name in ("batch_size", "accumulate_grad_batches"):
            if getattr(self, name):
                params[name] = trial.suggest_categorical(name, getattr(self, name))
        if self.augment_strength and base.augment:
            params["augment_strength"] = trial.suggest_float("augment_strength",
                                                             *self.augment_strength)  # fmt: skip
        return apply_params(base, params)


# dimension: (kind, a (low, high) range or else choices, lowest, highest, lowest excluded)
_LIMITS: dict[str, tuple[type, bool, float, float, bool]] = {
    "learning_rate": (float, True, 0.0, math.inf, True),
    "lora_r": (int, False, 1, math.inf, False),
    "lora_alpha_ratio": (float, False, 0.0, math.inf, True),
    "lora_dropout": (float, True, 0.0, 1.0, False),
    "warmup_steps": (int, True, 0, math.inf, False),
    "batch_size": (int, False, 1, math.inf, False),
    "accumulate_grad_batches": (int, False, 1, math.inf, False),
    "augment_strength": (float, True, 0.0, 1.0, False),
}


def _check_dimension(
    name: str, value: Any, kind: type, is_range: bool, lowest: float, highest: float, open_low: bool
) -> None:
    """ConfigError naming `name` unless `value` is None or a valid range / tuple of choices."""
    if value is None:
        return
    shape = isinstance(value, tuple) and (len(value) == 2 if is_range else len(value) > 0)
    if not shape or not all(_is(v, kind) for v in value):
        what = "a (low, high) pair" if is_range else "a non-empty tuple"
        raise ConfigError(f"{name}: expected {what} of {kind.__name__}s or None, not {value!r}")
    if is_range and value[0] > value[1]:
        raise ConfigError(f"{name}: low {value[0]} is above high {value[1]}")
    if not is_range and len(set(value)) != len(value):
        raise ConfigError(f"{name}: {value!r} repeats a choice")
    if any(v < lowest or v > highest or (open_low and v == lowest) for v in value):
        bounds = f"{'(' if open_low else '['}{lowest}, {highest}]"
        raise ConfigError(f"{name}: {value!r} must lie in {bounds}")


def _is(value: Any, kind: type) -> bool:
    allowed = (int, float) if kind is float else (kind,)
    return isinstance(value, allowed) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class SearchOptions:
    """How to search: the study (name and database), its length and the pruning rule.

    `pruner` is "median" (prune a trial whose score is worse than the median of earlier trials
    at the same step, after `startup_trials` trials and `pruner_warmup_steps` steps), "none", or
    any `optuna.pruners.BasePruner`. `seed` seeds the TPE sampler (offset by the trials already
    in the study, so a continued study draws new values); None draws at random."""

    study_name: str = "search"
    storage: str | None = None  # a database URL or a file path; None: runs/optuna.db
    n_trials: int = 10
    timeout: float | None = None  # seconds; no new trial starts after it
    pruner: str | optuna.pruners.BasePruner = "median"
    pruner_warmup_steps: int = 0
    startup_trials: int = 5  # random trials before TPE models, and before the pruner compares
    seed: int | None = 0

    def __post_init__(self) -> None:
        if not STUDY_NAME.fullmatch(self.study_name):
            raise ConfigError(f"study_name: {self.study_name!r} must be letters, digits, . _ -")
        if self.n_trials < 1:
            raise ConfigError("n_trials must be at least 1")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError("timeout must be positive (seconds) or None")
        named = isinstance(self.pruner, str) and self.pruner in ("median", "none")
        if not named and not isinstance(self.pruner, optuna.pruners.BasePruner):
            raise ConfigError(f"pruner: {self.pruner!r} is not median, none or an Optuna pruner")
        if min(self.pruner_warmup_steps, self.startup_trials) < 0:
            raise ConfigError("pruner_warmup_steps and startup_trials must be >= 0")

    def storage_url(self, workspace: Workspace) -> str:
        return storage_url(self.storage or workspace.runs / "optuna.db")

    def make_pruner(self) -> optuna.pruners.BasePruner:
        if isinstance(self.pruner, optuna.pruners.BasePruner):
            return self.pruner
        if self.pruner == "none":
            return optuna.pruners.NopPruner()
        return optuna.pruners.MedianPruner(n_startup_trials=self.startup_trials,
                                           n_warmup_steps=self.pruner_warmup_steps)  # fmt: skip


def search_directory(workspace: Workspace, study_name: str) -> Path:
    return workspace.runs / f"search-{study_name}"


def open_study(options: SearchOptions, workspace: Workspace) -> optuna.Study:
    """The study of `options` (created, or continued when it exists), minimizing val/cer."""
    study = optuna.create_study(storage=open_storage(options.storage_url(workspace)),
                                study_name=options.study_name, direction="minimize",
                                pruner=options.make_pruner(), load_if_exists=True)  # fmt: skip
    offset = len(study.get_trials(deepcopy=False))
    folder = search_directory(workspace, options.study_name)
    if not offset and any(folder.glob("trial-*")):
        raise ConfigError(f"study_name: {folder} holds trials of an earlier study of this "
                          "name; choose another name or delete that folder")  # fmt: skip
    seed = None if options.seed is None else options.seed + offset
    study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=options.startup_trials)
    return study


class OptunaPruning(L.Callback):
    """Reports `monitor` to the trial after each validation during fitting and raises
    `optuna.TrialPruned` when the pruner says the trial is not worth finishing."""

    def __init__(self, trial: optuna.Trial, monitor: str = METRIC) -> None:
        self.trial = trial
        self.monitor = monitor
        self.pruned_step: int | None = None

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return  # the final validations after fit are not pruning points
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        step = trainer.global_step
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            self.pruned_step = step
            raise optuna.TrialPruned(f"pruned by Optuna at step {step}")


@dataclass(frozen=True)
class _Objective:
    base: TrainConfig
    space: SearchSpace
    search_dir: Path
    workspace: Workspace

    def __call__(self, trial: optuna.Trial) -> float:
        run_dir = self.search_dir / f"trial-{trial.number:03d}"
        trial.set_user_attr("run_dir", str(run_dir))
        try:
            config = self.space.suggest(trial, self.base)
        except ConfigError as exc:
            raise _failed(trial, f"the suggested config is invalid: {exc}") from exc
        trial.set_user_attr(CONFIG_ATTR, config.to_dict())
        result = self._train(trial, config, run_dir)
        if result.state == "stopped":
            trial.study.stop()  # a Stop request ends the search, not just this trial
        if result.state != "finished":
            raise _failed(trial, f"run {result.state}: {result.message}")
        value = result.metrics.get(METRIC)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise _failed(trial, f"the run reported no finite {METRIC} ({value!r})")
        figures = {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}
        trial.set_user_attr("metrics", figures)
        trial.set_user_attr("message", result.message)
        return float(value)

    def _train(self, trial: optuna.Trial, config: TrainConfig, run_dir: Path) -> RunResult:
        pruning = OptunaPruning(trial)
        try:
            # Trials are ranked by val/cer alone: the English check would only add minutes.
            quick = dataclasses.replace(config, forgetting_check=0)
            return train(quick, run_dir, workspace=self.workspace, callbacks=[pruning],
                         export=False)  # fmt: skip
        except optuna.TrialPruned as exc:
            trial.set_user_attr("message", str(exc))
            EventWriter(run_dir).write("end", state="stopped", message=str(exc),
                                       step=pruning.pruned_step)  # fmt: skip
            raise
        except Exception as exc:  # any crash of one trial must not end the whole search
            message = f"training crashed: {type(exc).__name__}: {exc}"
            EventWriter(run_dir).write("end", state="failed", message=message)
            raise _failed(trial, message) from exc


def _failed(trial: optuna.Trial, message: str) -> TrialFailed:
    trial.set_user_attr("message", message)
    return TrialFailed(f"trial {trial.number}: {message}")


def run_search(
    base: TrainConfig,
    space: SearchSpace,
    options: SearchOptions,
    *,
    workspace: Workspace | None = None,
    on_trial: Callable[[TrialSummary], None] | None = None,
) -> SearchResult:
    """Run `options.n_trials` more trials of the study (or until the timeout); `on_trial` gets
    each trial's summary as it ends. Failed and pruned trials do not stop the search."""
    if base.devices * base.num_nodes > 1:
        raise ConfigError(
            "devices, num_nodes: a search trains each trial in one process; "
            "to use several GPUs, run one search per GPU on the same storage"
        )
    workspace = workspace or get_workspace()
    study = open_study(options, workspace)
    objective = _Objective(base, space, search_directory(workspace, options.study_name), workspace)
    callbacks = [lambda _study, trial: on_trial(summarize_trial(trial))] if on_trial else []
    study.optimize(objective, n_trials=options.n_trials, timeout=options.timeout,
                   catch=(TrialFailed,), callbacks=callbacks)  # fmt: skip
    return summarize(study, base, options.storage_url(workspace))


def best_config(study_name: str, storage: str | Path, base: TrainConfig) -> TrainConfig:
    """The config of the study's best trial, to apply ("apply best"); ConfigError when none
    completed. `base` only serves when the trial's stored config cannot be read."""
    study = load_search(study_name, storage)
    if not completed(study):
        raise ConfigError(f"study {study_name!r} has no completed trial yet")
    return trial_config(study.best_trial, base)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="dataset folder or name in datasets/")
    p.add_argument("--model", required=True, help="base model: a name in models/ or a path")
    add_config_arguments(p)  # the base config of every trial
    p.add_argument("--trials", type=int, required=True, help="trials to run in this call")
    p.add_argument("--study", default="search", help="study name (continued when it exists)")
    p.add_argument("--storage", help="database URL or SQLite file (default runs/optuna.db)")
    p.add_argument("--timeout", type=float, help="start no trial after this many seconds")
    p.add_argument("--space", type=Path, help="a SearchSpace JSON file (null: dimension off)")
    p.add_argument("--pruner", choices=("median", "none"), default="median")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    return p


def _base_config(args: argparse.Namespace) -> TrainConfig:
    """The preset (or defaults), the --config file's keys, each --set, --dataset and --model."""
    extra = [f"dataset={args.dataset}", f"model={args.model}"]
    return compose_config(args.preset, args.config, [*args.assignments, *extra])


def _print_trial(summary: TrialSummary) -> None:
    score = f"{METRIC} {summary.value:.4f}" if summary.value is not None else summary.message
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in summary.params.items())  # fmt: skip
    print(f"trial {summary.number} {summary.state}: {score} ({params})", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 with a best config, 1 when no trial completed, 2 for bad arguments."""
    args = parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the printed lines say it all
    workspace = get_workspace()
    try:
        base = _base_config(args)
        space = (
            SearchSpace.from_dict(config_file_values(args.space)) if args.space else SearchSpace()
        )
        options = SearchOptions(args.study, args.storage, args.trials, args.timeout,
                                args.pruner, seed=args.seed)  # fmt: skip
        result = run_search(base, space, options, workspace=workspace, on_trial=_print_trial)
    except (ConfigError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"trials by state: {result.counts}")
    if result.best is None or result.best_config is None:
        print("no trial completed: no best config")
        return 1
    path = search_directory(workspace, args.study) / BEST_CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    result.best_config.save(path)
    print(f"best: trial {result.best.number} {METRIC} {result.best.value:.4f}")
    print(f"best config: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
