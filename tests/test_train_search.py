"""Hyperparameter search on a tiny random Whisper and 12 espeak utterances: suggestions stay in
the space, a study on SQLite completes and continues across calls, the best trial's config can be
applied, pruned and failed trials are recorded while the search goes on, the figures cope with
any number of trials, and the command line prints a line per trial and the best config."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import optuna
import plotly.graph_objects as go
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from utils.training.config import ConfigError, TrainConfig
from utils.training.events import read_events
from utils.training.search import (
    SearchOptions,
    SearchSpace,
    TrialSummary,
    best_config,
    main,
    run_search,
    storage_url,
)
from utils.training.search_plots import (
    curves_figure,
    history_figure,
    importance_figure,
    parallel_figure,
)

SPACE = SearchSpace(learning_rate=(1e-4, 1e-2), lora_r=(4, 8), lora_alpha_ratio=(1.0, 2.0),
                    lora_dropout=(0.0, 0.1), warmup_steps=(0, 2), batch_size=(2,),
                    accumulate_grad_batches=(1,), augment_strength=None)  # fmt: skip


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


@pytest.fixture(scope="module")
def base(tiny_whisper_dir, tiny_dataset_dir) -> TrainConfig:
    return TrainConfig(
        model=str(tiny_whisper_dir), dataset=str(tiny_dataset_dir), max_steps=4, batch_size=2,
        num_workers=0, val_every_steps=2, checkpoint_every_steps=100, generation_max_tokens=8,
        augment=False, spec_augment=False, warmup_steps=0, timestamp_share=0.0,
        prompt_share=0.0, forgetting_check=0,
    )  # fmt: skip


def options(tmp_path: Path, study: str, trials: int, **more) -> SearchOptions:
    return SearchOptions(study, str(tmp_path / "optuna.db"), trials, pruner="none", **more)


def last_end(run_dir: Path) -> dict:
    return [e for e in read_events(run_dir).events if e["kind"] == "end"][-1]


# --- the search space -----------------------------------------------------------------------


def test_suggest_stays_within_the_space_and_switched_off_dimensions_keep_the_base():
    base = TrainConfig(dataset="d", max_steps=40, warmup_steps=10, augment=True, lora_r=16,
                       lora_alpha=32)  # fmt: skip
    space = SearchSpace(warmup_steps=(0, 100))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        config = space.suggest(study.ask(), base)
        assert 1e-5 <= config.learning_rate <= 1e-3 and config.lora_r in (8, 16, 32)
        assert config.lora_alpha in (config.lora_r, 2 * config.lora_r)
        assert 0 <= config.lora_dropout <= 0.2 and 0.2 <= config.augment_strength <= 0.8
        assert 0 <= config.warmup_steps < base.max_steps  # the range top is capped
        assert config.batch_size in (4, 8, 16) and config.accumulate_grad_batches in (1, 2)
    fixed = space.without("learning_rate", "lora_r", "batch_size", "augment_strength")
    for _ in range(10):
        config = fixed.suggest(study.ask(), base)
        assert (config.learning_rate, config.lora_r, config.batch_size) == (1e-4, 16, 8)
        assert config.augment_strength == base.augment_strength
        assert config.lora_alpha in (16, 32)  # the ratio applies to the base lora_r
    trial = study.ask()
    full = space.suggest(trial, dataclasses.replace(base, method="full", augment=False))
    assert not {"lora_r", "lora_alpha_ratio", "lora_dropout", "augment_strength"} & set(
        trial.params
    )
    assert (full.lora_r, full.lora_alpha, full.augment_strength) == (16, 32, 0.5)


@pytest.mark.parametrize(
    ("field", "value"),
    [("learning_rate", (0.0, 1e-3)), ("learning_rate", (1e-3, 1e-5)), ("learning_rate", (1e-3,)),
     ("lora_r", ()), ("lora_r", (0, 8)), ("lora_r", (8, 8)), ("lora_r", (8.5,)),
     ("lora_alpha_ratio", (0.0, 2.0)), ("lora_dropout", (0.0, 1.5)), ("warmup_steps", (-1, 3)),
     ("warmup_steps", (0.5, 3)), ("batch_size", (True,)), ("accumulate_grad_batches", (0,)),
     ("augment_strength", (0.5, "high"))],
)  # fmt: skip
def test_bad_space_values_raise_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        SearchSpace(**{field: value})


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"study_name": "a b"}, "study_name"), ({"n_trials": 0}, "n_trials"),
     ({"timeout": -1.0}, "timeout"), ({"pruner": "hyperband"}, "pruner")],
)  # fmt: skip
def test_bad_options_raise_naming_the_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        SearchOptions(**changes)


def test_space_round_trips_through_json_and_default_storage_is_in_runs(workspace, tmp_path):
    values = json.loads(json.dumps(SPACE.to_dict()))
    assert SearchSpace.from_dict(values) == SPACE and values["augment_strength"] is None
    with pytest.raises(ConfigError, match="unknown search dimensions: speed"):
        SearchSpace.from_dict({"speed": [1, 2]})
    assert SearchOptions().storage_url(workspace) == f"sqlite:///{workspace.runs / 'optuna.db'}"
    assert storage_url("postgresql://u@host/db") == "postgresql://u@host/db"
    assert storage_url(tmp_path / "s.db") == f"sqlite:///{tmp_path / 's.db'}"


# --- searches that train --------------------------------------------------------------------


@pytest.fixture(scope="module")
def searched(base, workspace, tmp_path_factory):
    """Three trials, then two more of the same study in a second call."""
    tmp = tmp_path_factory.mktemp("search")
    seen: list[TrialSummary] = []
    first = run_search(base, SPACE, options(tmp, "tiny", 3), workspace=workspace,
                       on_trial=seen.append)  # fmt: skip
    second = run_search(base, SPACE, options(tmp, "tiny", 2), workspace=workspace)
    return tmp, first, second, seen


def test_a_study_completes_and_continues_on_the_same_storage(searched, workspace):
    _, first, second, seen = searched
    assert [t.number for t in seen] == [0, 1, 2]
    assert first.counts == {"complete": 3}, [t.message for t in first.trials]
    assert [t.number for t in second.trials] == [0, 1, 2, 3, 4]
    assert second.counts == {"complete": 5}
    assert second.trials[3].params != second.trials[0].params  # a continued study draws anew
    for trial in second.trials:
        assert trial.run_dir == workspace.runs / "search-tiny" / f"trial-{trial.number:03d}"
        assert trial.value >= 0 and last_end(trial.run_dir)["state"] == "finished"
        assert not (trial.run_dir / "merged").exists()  # trials do not export models
        saved = TrainConfig.load(trial.run_dir / "config.json")
        assert saved.learning_rate == trial.params["learning_rate"]
        assert saved.lora_alpha == round(saved.lora_r * trial.params["lora_alpha_ratio"])


def test_apply_best_gives_the_config_of_the_best_trial(searched, base):
    tmp, _, second, _ = searched
    best = min((t for t in second.trials), key=lambda t: t.value)
    assert second.best is not None and second.best.number == best.number
    expected = TrainConfig.load(best.run_dir / "config.json")
    assert second.best_config == expected
    assert best_config("tiny", storage_url(tmp / "optuna.db"), base) == expected


def test_figures_of_a_real_study(searched):
    tmp, *_ = searched
    study = optuna.load_study(study_name="tiny", storage=storage_url(tmp / "optuna.db"))
    for make in (history_figure, importance_figure, parallel_figure, curves_figure):
        figure = make(study)
        assert isinstance(figure, go.Figure) and figure.data, make.__name__


def test_a_pruned_trial_ends_its_run_as_pruned(base, workspace, tmp_path):
    chosen = dataclasses.replace(options(tmp_path, "pruned", 1), pruner=AlwaysPrune())
    result = run_search(base, SPACE, chosen, workspace=workspace)
    (trial,) = result.trials
    assert trial.state == "pruned" and result.best is None and result.best_config is None
    assert trial.message == "pruned by Optuna at step 2"
    end = last_end(trial.run_dir)
    assert end["state"] == "stopped" and end["message"].startswith("pruned by Optuna")
    study = optuna.load_study(study_name="pruned", storage=storage_url(tmp_path / "optuna.db"))
    assert study.trials[0].intermediate_values.keys() == {2}


def test_failed_trials_are_recorded_and_the_search_goes_on(base, workspace, tmp_path):
    broken = dataclasses.replace(base, dataset=str(tmp_path / "no-such-dataset"))
    result = run_search(broken, SPACE, options(tmp_path, "broken", 2), workspace=workspace)
    assert result.counts == {"fail": 2} and result.best is None
    for trial in result.trials:
        assert "no manifest.jsonl" in trial.message
        assert last_end(trial.run_dir)["state"] == "failed"
    with pytest.raises(ConfigError, match="no completed trial"):
        best_config("broken", storage_url(tmp_path / "optuna.db"), base)


def test_a_crash_inside_training_fails_only_that_trial(base, workspace, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr("utils.training.search.train", crash)
    result = run_search(base, SPACE, options(tmp_path, "crash", 2), workspace=workspace)
    assert result.counts == {"fail": 2}
    assert result.trials[0].message == "training crashed: KeyError: 'boom'"
    assert last_end(result.trials[1].run_dir)["state"] == "failed"


def test_a_stop_request_ends_the_search(base, workspace, tmp_path, monkeypatch):
    from utils.training.run import RunResult

    def stopped(config, run_dir, **kwargs):
        return RunResult(Path(run_dir), "stopped", "stopped at step 1; resume to continue")

    monkeypatch.setattr("utils.training.search.train", stopped)
    result = run_search(base, SPACE, options(tmp_path, "stop", 3), workspace=workspace)
    assert result.counts == {"fail": 1} and "run stopped" in result.trials[0].message


def test_a_search_refuses_multi_process_training(base, tmp_path):
    with pytest.raises(ConfigError, match="devices"):
        run_search(dataclasses.replace(base, devices=2), SPACE, options(tmp_path, "ddp", 1))


def test_a_new_study_refuses_the_trial_folders_of_an_older_one(base, workspace, tmp_path):
    (workspace.runs / "search-leftover" / "trial-000").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"study_name: .*earlier study"):
        run_search(base, SPACE, options(tmp_path, "leftover", 1), workspace=workspace)


def test_the_command_line_prints_each_trial_and_the_best_config(base, workspace, tmp_path, capsys):
    code = main(["--dataset", base.dataset, "--model", base.model, "--trials", "1",
                 "--study", "cli", "--storage", str(tmp_path / "cli.db"), "--pruner", "none",
                 "--set", "max_steps=4", "--set", "batch_size=2", "--set", "num_workers=0",
                 "--set", "val_every_steps=2", "--set", "generation_max_tokens=8",
                 "--set", "augment=false", "--set", "spec_augment=false",
                 "--set", "timestamp_share=0", "--set", "prompt_share=0",
                 "--set", "warmup_steps=0"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "trial 0 complete: val/cer" in out
    path = workspace.runs / "search-cli" / "best-config.json"
    assert f"best config: {path}" in out
    assert TrainConfig.load(path).max_steps == 4


def test_the_command_line_refuses_a_bad_space(base, tmp_path, capsys):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"lora_r": [0]}))
    code = main(["--dataset", base.dataset, "--model", base.model, "--trials", "1",
                 "--space", str(space), "--storage", str(tmp_path / "x.db")])  # fmt: skip
    assert code == 2 and "lora_r" in capsys.readouterr().err


# --- figures and apply-best without training ------------------------------------------------


def hand_made_study(tmp_path: Path, values: list[float], varied: bool = True) -> optuna.Study:
    study = optuna.create_study(study_name="hand", storage=storage_url(tmp_path / "hand.db"))
    distributions = {"learning_rate": FloatDistribution(1e-5, 1e-2, log=True),
                     "lora_r": CategoricalDistribution((4, 8)),
                     "lora_alpha_ratio": CategoricalDistribution((1.0, 2.0))}  # fmt: skip
    for i, value in enumerate(values):
        params = {"learning_rate": 1e-4 * (1 + i if varied else 1), "lora_r": 8 if i % 2 else 4,
                  "lora_alpha_ratio": 2.0}  # fmt: skip
        if not varied:
            params["lora_r"] = 4
        study.add_trial(create_trial(params=params, distributions=distributions, value=value,
                                     intermediate_values={2: value + 0.1}))  # fmt: skip
    study.add_trial(create_trial(state=TrialState.FAIL))
    return study


@pytest.mark.parametrize(
    ("values", "varied", "drawn"),
    [([], True, set()), ([0.5], True, {"history", "parallel", "curves"}),
     ([0.5, 0.4], False, {"history", "parallel", "curves"}),
     ([0.5, 0.4, 0.3, 0.45, 0.2], True, {"history", "importance", "parallel", "curves"})],
)  # fmt: skip
def test_figures_cope_with_any_number_of_trials(tmp_path, values, varied, drawn):
    study = hand_made_study(tmp_path, values, varied)
    figures = {"history": history_figure(study), "importance": importance_figure(study),
               "parallel": parallel_figure(study), "curves": curves_figure(study)}  # fmt: skip
    for name, figure in figures.items():
        assert isinstance(figure, go.Figure)
        assert bool(figure.data) == (name in drawn), name
        assert figure.layout.title.text, name  # an empty figure says why in its title
    if "importance" not in drawn:
        assert "at least 2 completed trials" in figures["importance"].layout.title.text


def test_apply_best_falls_back_to_the_parameters(tmp_path):
    hand_made_study(tmp_path, [0.5, 0.3, 0.4])
    base = TrainConfig(dataset="d", lora_r=16, lora_alpha=32)
    config = best_config("hand", tmp_path / "hand.db", base)
    assert (config.learning_rate, config.lora_r, config.lora_alpha) == (2e-4, 8, 16)
    with pytest.raises(ConfigError, match="no study named 'other'"):
        best_config("other", tmp_path / "hand.db", base)
