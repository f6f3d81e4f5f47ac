"""Reading a hyperparameter search (the side the UI shows, while `search.run_search` writes):
the study database opened, one summary per trial, the config a trial trained, and plotly figures
(optimization history, parameter importance, parallel coordinates, learning curves).

Every figure works on a study with any number of trials: when there is too little to draw, it is
an empty figure whose title says what is missing."""

from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from utils.training.config import ConfigError, TrainConfig

METRIC = "val/cer"
ALPHA_RATIO = "lora_alpha_ratio"  # the one search parameter that is not a TrainConfig field
CONFIG_ATTR = "config"  # the user attribute holding a trial's whole config


def storage_url(storage: str | Path) -> str:
    """A database URL as is; a file path as a SQLite URL."""
    text = str(storage)
    return text if "://" in text else f"sqlite:///{Path(text).expanduser().resolve()}"


def open_storage(storage: str | Path) -> optuna.storages.RDBStorage:
    """The study database, with heartbeats: a trial whose process died is marked FAIL by the
    next search on the same study instead of staying RUNNING forever."""
    url = storage_url(storage)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=60,
                                          grace_period=180)  # fmt: skip


def load_search(study_name: str, storage: str | Path) -> optuna.Study:
    """An existing study (to read or plot); ConfigError when there is none of that name."""
    try:
        return optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError as exc:
        raise ConfigError(f"no study named {study_name!r} in {storage_url(storage)}") from exc


@dataclass(frozen=True)
class TrialSummary:
    number: int
    state: str  # "complete" | "pruned" | "fail" | "running" | "waiting"
    value: float | None  # the final val/cer of a complete trial
    params: dict[str, Any]
    run_dir: Path | None  # its training run (events.jsonl, metrics.json)
    message: str = ""  # why it failed or was pruned; the run's end message when complete
    duration_s: float | None = None


def summarize_trial(trial: FrozenTrial) -> TrialSummary:
    run_dir = trial.user_attrs.get("run_dir")
    duration = trial.duration.total_seconds() if trial.duration else None
    return TrialSummary(trial.number, trial.state.name.lower(), trial.value, dict(trial.params),
                        Path(run_dir) if run_dir else None, trial.user_attrs.get("message", ""),
                        duration)  # fmt: skip


def apply_params(base: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """`base` with a trial's parameters (`lora_alpha_ratio` sets lora_alpha from lora_r)."""
    values = dict(params)
    ratio = values.pop(ALPHA_RATIO, None)
    unknown = set(values) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"unknown search parameters: {', '.join(sorted(unknown))}")
    if ratio is not None:
        values["lora_alpha"] = max(1, round(values.get("lora_r", base.lora_r) * ratio))
    return dataclasses.replace(base, **values)


@dataclass(frozen=True)
class SearchResult:
    study_name: str
    storage: str
    trials: tuple[TrialSummary, ...]  # every trial of the study, this call's and earlier ones
    best: TrialSummary | None
    best_config: TrainConfig | None
    counts: dict[str, int] = field(default_factory=dict)  # trials by state


def trial_config(trial: FrozenTrial, base: TrainConfig) -> TrainConfig:
    """The config a trial trained: its stored config, else `base` with its parameters."""
    stored = trial.user_attrs.get(CONFIG_ATTR)
    if isinstance(stored, dict):
        try:
            return TrainConfig.from_dict(stored)
        except (ConfigError, TypeError):
            pass  # saved by another version of TrainConfig: rebuild it from the parameters
    return apply_params(base, trial.params)


def summarize(study: optuna.Study, base: TrainConfig, storage: str = "") -> SearchResult:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None
    return SearchResult(study.study_name, storage, tuple(summarize_trial(t) for t in trials),
                        summarize_trial(best) if best else None,
                        trial_config(best, base) if best else None,
                        dict(Counter(t.state.name.lower() for t in trials)))  # fmt: skip


def completed(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def empty_figure(title: str) -> go.Figure:
    """A blank figure that explains itself in its title."""
    figure = go.Figure()
    figure.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False})
    return figure


def _titled(figure: go.Figure, title: str) -> go.Figure:
    figure.update_layout(title=title)
    return figure


def history_figure(study: optuna.Study) -> go.Figure:
    """val/cer of every completed trial, with the best so far."""
    done = len(completed(study))
    if not done:
        return empty_figure("Optimization history: no completed trial yet")
    figure = optuna.visualization.plot_optimization_history(study, target_name=METRIC)
    return _titled(figure, f"Optimization history ({done} completed)")


def importance_figure(study: optuna.Study) -> go.Figure:
    """How much each parameter explains val/cer; needs 2+ completed trials that differ."""
    trials = completed(study)
    varied = [name for name in _common_params(trials) if _distinct(trials, name) > 1]
    if len(trials) < 2 or not varied:
        return empty_figure(f"Parameter importance needs at least 2 completed trials with "
                            f"different values ({len(trials)} completed so far)")  # fmt: skip
    try:
        figure = optuna.visualization.plot_param_importances(study, params=varied,
                                                             target_name=METRIC)  # fmt: skip
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        return empty_figure(f"Parameter importance is not available yet ({exc})")
    return _titled(figure, f"Parameter importance ({len(trials)} completed)")


def parallel_figure(study: optuna.Study) -> go.Figure:
    """Each completed trial as a line through its parameter values to its val/cer."""
    trials = completed(study)
    if not trials or not _common_params(trials):
        return empty_figure("Parallel coordinates: no completed trial with parameters yet")
    figure = optuna.visualization.plot_parallel_coordinate(study, target_name=METRIC)
    return _titled(figure, f"Parameters and {METRIC} ({len(trials)} completed)")


def curves_figure(study: optuna.Study) -> go.Figure:
    """The val/cer each trial reported at its validations (pruned trials included)."""
    reported = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    if not reported:
        return empty_figure("Learning curves: no trial has reached a validation yet")
    figure = optuna.visualization.plot_intermediate_values(study)
    figure.update_layout(title=f"{METRIC} at each validation", yaxis_title=METRIC)
    return figure


def _common_params(trials: list[FrozenTrial]) -> list[str]:
    names = [set(t.params) for t in trials]
    return sorted(set.intersection(*names)) if names else []


def _distinct(trials: list[FrozenTrial], name: str) -> int:
    return len({repr(t.params[name]) for t in trials})
