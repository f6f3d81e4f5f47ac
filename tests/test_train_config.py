"""TrainConfig: checked values, JSON round trip, key=value overrides and presets."""

from __future__ import annotations

import dataclasses

import pytest

from utils.training.config import PRESETS, ConfigError, TrainConfig, preset


def test_defaults_round_trip_through_json(tmp_path):
    config = TrainConfig(dataset="amharic-demo", lora_targets=("q", "k", "v"))
    assert TrainConfig.load(config.save(tmp_path / "config.json")) == config
    assert dataclasses.replace(config, seed=3).seed == 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "qlora"}, "method must be one of lora, full"),
        ({"lora_targets": ("q", "gate")}, "not among q, k, v, out, fc1, fc2"),
        ({"learning_rate": 0.0}, "learning_rate must be positive"),
        ({"warmup_steps": 10, "max_steps": 10}, "warmup_steps must be >= 0 and below"),
        ({"prompt_share": 1.5}, "prompt_share must be in [0, 1]"),
        ({"batch_size": "8"}, "batch_size must be an integer"),
        ({"augment": 1}, "augment must be true or false"),
        ({"generation_max_tokens": 300}, "generation_max_tokens must be in 1..224"),
    ],
)
def test_bad_values_name_the_key(changes, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TrainConfig(**changes)


def test_overrides_parse_by_field_type():
    config = TrainConfig().with_overrides(
        ["learning_rate=3e-4", "lora_targets=q, k,fc1", "augment=false", "max_steps=20",
         "schedule=cosine", "warmup_steps=5"]
    )  # fmt: skip
    assert (config.learning_rate, config.lora_targets, config.augment) == (
        3e-4, ("q", "k", "fc1"), False
    )  # fmt: skip
    assert (config.max_steps, config.schedule, config.warmup_steps) == (20, "cosine", 5)
    refused = {
        "lr=1": "expected key=value",
        "max_steps": "expected key=value",
        "max_steps=many": "is not an integer",
        "augment=maybe": "true or false",
        "schedule=step": "schedule must be one of",
    }
    for bad, message in refused.items():
        with pytest.raises(ConfigError, match=message):
            TrainConfig().with_overrides([bad])


def test_every_preset_builds_and_unknown_keys_are_refused(tmp_path):
    assert set(PRESETS) >= {"quick-cpu-lora", "gpu-lora", "gpu-full", "amharic-low-resource"}
    for name in PRESETS:
        assert isinstance(preset(name), TrainConfig)
    assert preset("gpu-full").method == "full" and preset("quick-cpu-lora").precision == "32"
    assert preset("quick-cpu-lora", seed=7).seed == 7
    with pytest.raises(ConfigError, match="unknown preset 'fast'; choose one of"):
        preset("fast")
    with pytest.raises(ConfigError, match="unknown config keys: colour"):
        TrainConfig.from_dict({"colour": "red"})
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="a config is a JSON object"):
        TrainConfig.load(tmp_path / "bad.json")
