"""Hardware planning: precision, DDP / DeepSpeed strategies and the DeepSpeed configs, with CUDA
presence injected (no GPU, no deepspeed package and no training needed)."""

from __future__ import annotations

import copy

import pytest
from lightning.pytorch.strategies import DDPStrategy

from utils.training import strategies
from utils.training.config import PRESETS, TrainConfig, preset
from utils.training.strategies import (
    GpuRequiredError,
    HardwareError,
    HardwarePlan,
    deepspeed_config,
    for_lightning,
    plan_hardware,
    resolve_precision,
    validate_deepspeed_config,
)

CPU = {"cuda_available": False, "cuda_devices": 0, "bf16_supported": False}


def gpu(devices: int = 1, bf16: bool = True) -> dict:
    return {"cuda_available": True, "cuda_devices": devices, "bf16_supported": bf16}


# precision


@pytest.mark.parametrize(
    ("precision", "cuda", "bf16", "expected"),
    [
        ("auto", True, True, "bf16-mixed"),
        ("auto", True, False, "16-mixed"),
        ("auto", False, False, "32-true"),
        ("auto", False, True, "32-true"),
        ("32", False, False, "32-true"),
        ("32", True, True, "32-true"),
        ("16-mixed", True, True, "16-mixed"),
        ("bf16-mixed", True, True, "bf16-mixed"),
    ],
)
def test_resolve_precision(precision, cuda, bf16, expected):
    config = TrainConfig(precision=precision)
    assert resolve_precision(config, cuda=cuda, bf16_supported=bf16) == expected


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_mixed_precision_on_cpu_needs_a_gpu(precision):
    with pytest.raises(GpuRequiredError) as caught:
        resolve_precision(TrainConfig(precision=precision), cuda=False, bf16_supported=False)
    message = str(caught.value)
    assert f"precision {precision} needs a CUDA GPU" in message
    assert "none was found" in message
    assert "precision=32" in message
    assert isinstance(caught.value, RuntimeError)


# plans on CPU


def test_cpu_single_process():
    plan = plan_hardware(TrainConfig(), **CPU)
    assert plan == HardwarePlan("cpu", 1, 1, "32-true", "auto", "CPU, 1 process, fp32")
    assert plan.trainer_kwargs() == {
        "accelerator": "cpu",
        "devices": 1,
        "num_nodes": 1,
        "precision": "32-true",
        "strategy": "auto",
    }


@pytest.mark.parametrize("strategy", ["auto", "ddp"])
def test_cpu_ddp_uses_gloo(strategy):
    plan = plan_hardware(TrainConfig(strategy=strategy, devices=2), **CPU)
    assert plan.accelerator == "cpu"
    assert plan.devices == 2
    assert isinstance(plan.strategy, DDPStrategy)
    assert plan.strategy._process_group_backend == "gloo"
    assert plan.strategy._ddp_kwargs == {"find_unused_parameters": False}
    assert plan.description == "CPU, 2 processes (DDP, gloo), fp32"


def test_explicit_ddp_with_one_device_still_uses_ddp():
    plan = plan_hardware(TrainConfig(strategy="ddp"), **CPU)
    assert isinstance(plan.strategy, DDPStrategy)


def test_multi_node_passes_through():
    plan = plan_hardware(TrainConfig(devices=1, num_nodes=3), **CPU)
    assert plan.num_nodes == 3
    assert isinstance(plan.strategy, DDPStrategy)
    assert plan.description == "CPU, 1 process on each of 3 nodes (DDP, gloo), fp32"


@pytest.mark.parametrize("strategy", ["deepspeed_stage_2", "deepspeed_stage_3"])
def test_deepspeed_on_cpu_needs_a_gpu(strategy):
    with pytest.raises(GpuRequiredError) as caught:
        plan_hardware(TrainConfig(strategy=strategy), **CPU)
    assert str(caught.value) == (
        f"strategy {strategy} needs a CUDA GPU (DeepSpeed does not run on CPU); none was found. "
        "Use strategy=auto or ddp on CPU."
    )
    assert caught.value.option == f"strategy {strategy}"


def test_mixed_precision_plan_on_cpu_needs_a_gpu():
    with pytest.raises(GpuRequiredError, match="precision bf16-mixed needs a CUDA GPU"):
        plan_hardware(TrainConfig(precision="bf16-mixed"), **CPU)


def test_every_preset_plans_on_cpu_unless_it_asks_for_amp():
    for name in PRESETS:
        config = preset(name)
        plan = plan_hardware(config, **CPU)
        assert plan.precision == "32-true", name


# plans on CUDA


def test_cuda_single_gpu_bf16():
    plan = plan_hardware(TrainConfig(), **gpu())
    assert (plan.accelerator, plan.precision, plan.strategy) == ("cuda", "bf16-mixed", "auto")
    assert plan.description == "CUDA, 1 GPU, bf16 mixed"


def test_cuda_without_bf16_uses_fp16_with_loss_scaling():
    plan = plan_hardware(TrainConfig(), **gpu(bf16=False))
    assert plan.precision == "16-mixed"
    assert "fp16 mixed (loss scaling)" in plan.description


def test_cuda_ddp_uses_nccl():
    plan = plan_hardware(TrainConfig(devices=4), **gpu(devices=8))
    assert isinstance(plan.strategy, DDPStrategy)
    assert plan.strategy._process_group_backend == "nccl"
    assert plan.description == "CUDA, 4 GPUs (DDP, nccl), bf16 mixed"


def test_more_gpus_than_present_is_a_clear_error():
    with pytest.raises(HardwareError) as caught:
        plan_hardware(TrainConfig(devices=4), **gpu(devices=2))
    assert str(caught.value) == (
        "devices=4 asks for 4 GPUs but this machine has 2 CUDA GPUs; set devices to 2 or fewer."
    )
    assert not isinstance(caught.value, GpuRequiredError)


def test_cuda_available_with_unknown_count_means_one_gpu(monkeypatch):
    monkeypatch.setattr(strategies, "_detect_cuda_devices", lambda: 0)
    assert plan_hardware(TrainConfig(), cuda_available=True, bf16_supported=True).devices == 1
    with pytest.raises(HardwareError, match="has 1 CUDA GPU;"):
        plan_hardware(TrainConfig(devices=2), cuda_available=True, bf16_supported=True)


def test_detection_on_this_machine_matches_torch():
    import torch

    plan = plan_hardware(TrainConfig())
    assert plan.accelerator == ("cuda" if torch.cuda.is_available() else "cpu")


class FakeDeepSpeedStrategy:
    def __init__(self, config: dict) -> None:
        self.config = config


@pytest.mark.parametrize("strategy", ["deepspeed_stage_2", "deepspeed_stage_3"])
def test_deepspeed_on_cuda_builds_the_strategy_with_the_config(monkeypatch, strategy):
    import lightning.pytorch.strategies as pl_strategies

    monkeypatch.setattr(strategies, "_deepspeed_installed", lambda: True)
    monkeypatch.setattr(pl_strategies, "DeepSpeedStrategy", FakeDeepSpeedStrategy)
    config = TrainConfig(strategy=strategy, devices=2, num_nodes=2, accumulate_grad_batches=4)
    plan = plan_hardware(config, **gpu(devices=2, bf16=False))
    cfg = plan.strategy.config
    stage = int(strategy[-1])
    assert cfg["zero_optimization"]["stage"] == stage
    assert "gradient_accumulation_steps" not in cfg  # Lightning sets it from the Trainer
    assert cfg["train_batch_size"] == 8 * 4 * 4
    assert cfg["fp16"]["enabled"] and not cfg["bf16"]["enabled"]
    assert plan.precision == "16-mixed"
    assert plan.description == (
        f"CUDA, 2 GPUs on each of 2 nodes (DeepSpeed ZeRO stage {stage}), fp16 mixed (loss scaling)"
    )


def test_deepspeed_on_cuda_without_the_package_says_so(monkeypatch):
    monkeypatch.setattr(strategies, "_deepspeed_installed", lambda: False)
    with pytest.raises(HardwareError, match=r"needs the deepspeed package.*pip install deepspeed"):
        plan_hardware(TrainConfig(strategy="deepspeed_stage_2"), **gpu())


# DeepSpeed configs


@pytest.mark.parametrize("strategy", ["deepspeed_stage_2", "deepspeed_stage_3"])
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed", "32-true"])
@pytest.mark.parametrize("world_size", range(1, 9))
def test_deepspeed_configs_are_valid(strategy, precision, world_size):
    config = TrainConfig(strategy=strategy, batch_size=6, accumulate_grad_batches=3)
    cfg = deepspeed_config(config, world_size, precision=precision)
    validate_deepspeed_config(cfg, world_size=world_size)
    validate_deepspeed_config(cfg)
    assert cfg["train_micro_batch_size_per_gpu"] == 6
    assert cfg["gradient_accumulation_steps"] == 3
    assert cfg["train_batch_size"] == 6 * 3 * world_size
    assert cfg["gradient_clipping"] == 1.0
    assert cfg["fp16"]["enabled"] == (precision == "16-mixed")
    assert cfg["bf16"]["enabled"] == (precision == "bf16-mixed")
    assert "optimizer" not in cfg and "scheduler" not in cfg
    zero = cfg["zero_optimization"]
    assert zero["overlap_comm"] and zero["contiguous_gradients"]
    assert ("stage3_prefetch_bucket_size" in zero) == (strategy == "deepspeed_stage_3")


def test_fp16_uses_dynamic_loss_scaling():
    cfg = deepspeed_config(TrainConfig(strategy="deepspeed_stage_2"), 1, precision="16-mixed")
    assert cfg["fp16"] == {
        "enabled": True,
        "loss_scale": 0,
        "initial_scale_power": 16,
        "loss_scale_window": 1000,
        "hysteresis": 2,
        "min_loss_scale": 1,
    }


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("strategy", ["deepspeed_stage_2", "deepspeed_stage_3"])
def test_presets_make_valid_deepspeed_configs(name, strategy):
    config = preset(name, strategy=strategy, precision="auto")
    for world_size in (1, 3, 8):
        validate_deepspeed_config(deepspeed_config(config, world_size), world_size=world_size)


def test_deepspeed_config_resolves_precision_when_not_given(monkeypatch):
    monkeypatch.setattr(strategies, "_detect_bf16", lambda: True)
    cfg = deepspeed_config(TrainConfig(strategy="deepspeed_stage_2"), 1)
    assert cfg["bf16"]["enabled"] and not cfg["fp16"]["enabled"]


def test_deepspeed_config_rejects_other_strategies_and_world_sizes():
    with pytest.raises(ValueError, match="not a DeepSpeed strategy"):
        deepspeed_config(TrainConfig(strategy="ddp"), 1)
    with pytest.raises(ValueError, match="world_size must be at least 1"):
        deepspeed_config(TrainConfig(strategy="deepspeed_stage_2"), 0)


def test_for_lightning_copies_without_accumulation():
    cfg = deepspeed_config(TrainConfig(strategy="deepspeed_stage_3"), 2, precision="bf16-mixed")
    out = for_lightning(cfg)
    assert "gradient_accumulation_steps" in cfg and "gradient_accumulation_steps" not in out
    out["zero_optimization"]["stage"] = 99
    assert cfg["zero_optimization"]["stage"] == 3


def _good() -> dict:
    config = TrainConfig(strategy="deepspeed_stage_3", batch_size=4, accumulate_grad_batches=2)
    return deepspeed_config(config, 2, precision="16-mixed")


def _broken(change) -> dict:
    cfg = copy.deepcopy(_good())
    change(cfg)
    return cfg


BROKEN = {
    "stage 1": (lambda c: c["zero_optimization"].update(stage=1), "stage must be 2 or 3, not 1"),
    "no stage": (lambda c: c["zero_optimization"].pop("stage"), "stage must be 2 or 3, not None"),
    "no zero": (lambda c: c.pop("zero_optimization"), "zero_optimization is missing"),
    "arithmetic": (
        lambda c: c.update(train_batch_size=12),
        "train_batch_size 12 is not a multiple",
    ),
    "both halves": (lambda c: c["bf16"].update(enabled=True), "fp16 and bf16 are both enabled"),
    "no micro": (
        lambda c: c.pop("train_micro_batch_size_per_gpu"),
        "train_micro_batch_size_per_gpu is missing",
    ),
    "zero accumulation": (
        lambda c: c.update(gradient_accumulation_steps=0),
        "gradient_accumulation_steps must be a positive integer, not 0",
    ),
    "float batch": (
        lambda c: c.update(train_batch_size=16.0),
        "train_batch_size must be a positive integer, not 16.0",
    ),
    "negative clip": (lambda c: c.update(gradient_clipping=-1.0), "gradient_clipping must be"),
    "no clip": (lambda c: c.pop("gradient_clipping"), "gradient_clipping is missing"),
    "bucket": (
        lambda c: c["zero_optimization"].update(reduce_bucket_size=0),
        "reduce_bucket_size must be positive",
    ),
    "no bucket": (
        lambda c: c["zero_optimization"].pop("reduce_bucket_size"),
        "reduce_bucket_size is missing",
    ),
    "overlap": (lambda c: c["zero_optimization"].update(overlap_comm="yes"), "overlap_comm must"),
    "stage3 param": (
        lambda c: c["zero_optimization"].update(stage3_max_live_parameters=-5),
        "stage3_max_live_parameters must be positive",
    ),
    "scale window": (lambda c: c["fp16"].update(loss_scale_window=0), "fp16.loss_scale_window"),
    "loss scale": (lambda c: c["fp16"].update(loss_scale=-1), "fp16.loss_scale must be >= 0"),
    "hysteresis": (lambda c: c["fp16"].update(hysteresis=0), "fp16.hysteresis must be at least 1"),
    "bf16 block": (lambda c: c.update(bf16=True), "bf16 must be an object"),
    "optimizer": (lambda c: c.update(optimizer={"type": "AdamW"}), "optimizer block"),
    "scheduler": (lambda c: c.update(scheduler={"type": "WarmupLR"}), "scheduler block"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_validate_catches_each_broken_config(name):
    change, expected = BROKEN[name]
    validate_deepspeed_config(_good())
    with pytest.raises(ValueError) as caught:
        validate_deepspeed_config(_broken(change))
    assert expected in str(caught.value)
    assert str(caught.value).startswith("invalid DeepSpeed config: ")


def test_validate_checks_the_world_size_exactly():
    cfg = _good()  # 4 × 2 × 2 = 16
    validate_deepspeed_config(cfg, world_size=2)
    with pytest.raises(ValueError, match=r"train_batch_size 16 != .*\(8 × 3\)"):
        validate_deepspeed_config(cfg, world_size=3)


def test_validate_lists_every_problem_at_once():
    def wreck(c: dict) -> None:
        c["zero_optimization"]["stage"] = 0
        c["bf16"]["enabled"] = True
        c["gradient_clipping"] = "lots"
        c["train_micro_batch_size_per_gpu"] = -1

    with pytest.raises(ValueError) as caught:
        validate_deepspeed_config(_broken(wreck))
    message = str(caught.value)
    for part in ("stage must be 2 or 3", "both enabled", "gradient_clipping must be",
                 "train_micro_batch_size_per_gpu must be a positive integer"):  # fmt: skip
        assert part in message
