"""Hardware for a run: precision, accelerator and distributed strategy from a `TrainConfig`.

`plan_hardware` turns the config's `precision`, `strategy`, `devices` and `num_nodes` into the
Lightning `Trainer` arguments (`HardwarePlan`), failing early with a message that says what to
change: DeepSpeed and mixed precision need a CUDA GPU, and a run cannot use more GPUs than the
machine has. DeepSpeed ZeRO stage 2/3 configs come from `deepspeed_config`, checked by
`validate_deepspeed_config` (every problem listed at once).
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from typing import Any, Literal

from utils.training.config import TrainConfig

DEEPSPEED_STAGES = {"deepspeed_stage_2": 2, "deepspeed_stage_3": 3}
PRECISION_NAMES = {"32-true": "fp32", "16-mixed": "fp16 mixed (loss scaling)",
                   "bf16-mixed": "bf16 mixed"}  # fmt: skip
FP16_SCALING = {"loss_scale": 0, "initial_scale_power": 16, "loss_scale_window": 1000,
                "hysteresis": 2, "min_loss_scale": 1}  # fmt: skip
BUCKET = 200_000_000  # elements per reduce / all-gather bucket (DeepSpeed's default size)
_POSITIVE_INTS = ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                  "train_batch_size")  # fmt: skip
_ZERO_POSITIVE = ("reduce_bucket_size", "allgather_bucket_size", "stage3_prefetch_bucket_size",
                  "stage3_param_persistence_threshold", "stage3_max_live_parameters",
                  "stage3_max_reuse_distance", "sub_group_size")  # fmt: skip


class HardwareError(RuntimeError):
    """The config asks for hardware or software this machine cannot provide."""


class GpuRequiredError(HardwareError):
    """An option that only works on a CUDA GPU was chosen on a machine without one."""

    def __init__(self, option: str, reason: str, instead: str) -> None:
        super().__init__(f"{option} needs a CUDA GPU ({reason}); none was found. {instead}")
        self.option = option


def resolve_precision(config: TrainConfig, *, cuda: bool, bf16_supported: bool) -> str:
    """The Lightning precision string: "auto" is bf16 on a bf16 GPU, fp16 with loss scaling on
    other GPUs and fp32 on CPU; explicit mixed precision on CPU is an error (AMP is GPU-only)."""
    if config.precision == "32":
        return "32-true"
    if config.precision == "auto":
        if not cuda:
            return "32-true"
        return "bf16-mixed" if bf16_supported else "16-mixed"
    if not cuda:
        raise GpuRequiredError(
            f"precision {config.precision}",
            "mixed precision runs on the GPU only",
            "Use precision=32 or precision=auto on CPU.",
        )
    return config.precision


def deepspeed_config(
    config: TrainConfig, world_size: int, *, precision: str | None = None
) -> dict[str, Any]:
    """The DeepSpeed config for `config.strategy` (ZeRO stage 2 or 3) on `world_size` processes.

    `precision` is the resolved Lightning precision (`resolve_precision`); None resolves it for a
    CUDA machine, detecting bf16 support. No optimizer or scheduler blocks: the LightningModule's
    `configure_optimizers` provides them. Pass the result through `for_lightning` before giving it
    to `DeepSpeedStrategy` (Lightning sets the accumulation steps itself).
    """
    if config.strategy not in DEEPSPEED_STAGES:
        raise ValueError(f"strategy {config.strategy} is not a DeepSpeed strategy")
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, not {world_size}")
    if precision is None:
        precision = resolve_precision(config, cuda=True, bf16_supported=_detect_bf16())
    stage = DEEPSPEED_STAGES[config.strategy]
    zero: dict[str, Any] = {
        "stage": stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_scatter": True,
        "reduce_bucket_size": BUCKET,
        "allgather_partitions": True,
        "allgather_bucket_size": BUCKET,
    }
    if stage == 3:
        zero.update(
            {
                "stage3_prefetch_bucket_size": BUCKET // 4,
                "stage3_param_persistence_threshold": 100_000,
                "stage3_max_live_parameters": 1_000_000_000,
                "stage3_max_reuse_distance": 1_000_000_000,
                "stage3_gather_16bit_weights_on_model_save": True,
                "sub_group_size": 1_000_000_000,
            }
        )
    micro, accumulation = config.batch_size, config.accumulate_grad_batches
    return {
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": micro * accumulation * world_size,
        "gradient_clipping": config.gradient_clip,
        "fp16": {"enabled": precision == "16-mixed", **FP16_SCALING},
        "bf16": {"enabled": precision == "bf16-mixed"},
    }


def for_lightning(cfg: dict[str, Any]) -> dict[str, Any]:
    """A copy for `DeepSpeedStrategy(config=...)`: without `gradient_accumulation_steps`, which
    Lightning refuses and fills in from `Trainer(accumulate_grad_batches=...)`."""
    out = copy.deepcopy(cfg)
    out.pop("gradient_accumulation_steps", None)
    return out


def validate_deepspeed_config(cfg: dict[str, Any], *, world_size: int | None = None) -> None:
    """Raise ValueError listing every problem of a DeepSpeed ZeRO config; `world_size`, when
    given, must make the batch arithmetic exact (otherwise it must divide evenly)."""
    problems = [*_zero_problems(cfg), *_batch_problems(cfg, world_size), *_precision_problems(cfg)]
    problems += [f"{key} block is not supported here" for key in ("optimizer", "scheduler")
                 if key in cfg]  # fmt: skip
    clip = cfg.get("gradient_clipping")
    if "gradient_clipping" not in cfg:
        problems.append("gradient_clipping is missing")
    elif not _is_number(clip) or clip < 0:
        problems.append(f"gradient_clipping must be a number >= 0, not {clip!r}")
    if problems:
        raise ValueError("invalid DeepSpeed config: " + "; ".join(problems))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _zero_problems(cfg: dict[str, Any]) -> list[str]:
    zero = cfg.get("zero_optimization")
    if not isinstance(zero, dict):
        return ["zero_optimization is missing or not an object"]
    problems = []
    if zero.get("stage") not in (2, 3):
        problems.append(f"zero_optimization.stage must be 2 or 3, not {zero.get('stage')!r}")
    for key in ("overlap_comm", "contiguous_gradients"):
        if not isinstance(zero.get(key), bool):
            problems.append(f"zero_optimization.{key} must be true or false")
    for key in _ZERO_POSITIVE:
        if key in zero and not (_is_number(zero[key]) and zero[key] > 0):
            problems.append(f"zero_optimization.{key} must be positive, not {zero[key]!r}")
    if "reduce_bucket_size" not in zero:
        problems.append("zero_optimization.reduce_bucket_size is missing")
    return problems


def _batch_problems(cfg: dict[str, Any], world_size: int | None) -> list[str]:
    problems = []
    for key in _POSITIVE_INTS:
        if key not in cfg:
            problems.append(f"{key} is missing")
        elif not _is_positive_int(cfg[key]):
            problems.append(f"{key} must be a positive integer, not {cfg[key]!r}")
    if problems:
        return problems
    per_step = cfg["train_micro_batch_size_per_gpu"] * cfg["gradient_accumulation_steps"]
    total = cfg["train_batch_size"]
    if world_size is not None and total != per_step * world_size:
        problems.append(
            f"train_batch_size {total} != train_micro_batch_size_per_gpu × "
            f"gradient_accumulation_steps × world size ({per_step} × {world_size})"
        )
    elif total % per_step:
        problems.append(
            f"train_batch_size {total} is not a multiple of train_micro_batch_size_per_gpu × "
            f"gradient_accumulation_steps ({per_step})"
        )
    return problems


def _precision_problems(cfg: dict[str, Any]) -> list[str]:
    problems, enabled = [], []
    for key in ("fp16", "bf16"):
        block = cfg.get(key, {"enabled": False})
        if not isinstance(block, dict) or not isinstance(block.get("enabled"), bool):
            problems.append(f"{key} must be an object with enabled true or false")
        elif block["enabled"]:
            enabled.append(key)
    if len(enabled) == 2:
        problems.append("fp16 and bf16 are both enabled; choose one")
    fp16 = cfg.get("fp16")
    if "fp16" in enabled and isinstance(fp16, dict):
        for key in ("initial_scale_power", "loss_scale_window", "min_loss_scale"):
            if not (_is_number(fp16.get(key)) and fp16[key] > 0):
                problems.append(f"fp16.{key} must be positive, not {fp16.get(key)!r}")
        if not (_is_number(fp16.get("loss_scale")) and fp16["loss_scale"] >= 0):
            problems.append("fp16.loss_scale must be >= 0 (0 = dynamic loss scaling)")
        if not (_is_number(fp16.get("hysteresis")) and fp16["hysteresis"] >= 1):
            problems.append(f"fp16.hysteresis must be at least 1, not {fp16.get('hysteresis')!r}")
    return problems


@dataclass(frozen=True)
class HardwarePlan:
    """What to pass to `lightning.Trainer`: accelerator, devices, num_nodes, precision, strategy."""

    accelerator: Literal["cpu", "cuda"]
    devices: int
    num_nodes: int
    precision: str  # a Lightning precision: "32-true", "16-mixed" or "bf16-mixed"
    strategy: Any  # "auto" or a Lightning Strategy object (DDPStrategy, DeepSpeedStrategy)
    description: str  # one line for people, e.g. "CPU, 2 processes (DDP, gloo), fp32"

    def trainer_kwargs(self) -> dict[str, Any]:
        return {"accelerator": self.accelerator, "devices": self.devices,
                "num_nodes": self.num_nodes, "precision": self.precision,
                "strategy": self.strategy}  # fmt: skip


def plan_hardware(
    config: TrainConfig,
    *,
    cuda_available: bool | None = None,
    cuda_devices: int | None = None,
    bf16_supported: bool | None = None,
) -> HardwarePlan:
    """The hardware plan for `config` on this machine (None arguments are detected with
    `torch.cuda`). The GPU is used whenever there is one.

    - strategy "auto" with one process in all: Lightning's single-device strategy.
    - "ddp", or "auto" with devices × num_nodes > 1: `DDPStrategy` over gloo on CPU (one process
      per device) or NCCL on CUDA, `find_unused_parameters=False`.
    - "deepspeed_stage_2"/"deepspeed_stage_3": CUDA only (GpuRequiredError otherwise), with
      `deepspeed_config` for devices × num_nodes processes; needs the `deepspeed` package.

    Multi-node: `num_nodes` passes through to the Trainer. Start the same command on every node
    with MASTER_ADDR and MASTER_PORT (the rank-0 node's address and a free port), NODE_RANK
    (0..num_nodes-1) and WORLD_SIZE set in the environment (or let SLURM/torchrun set them);
    Lightning reads them from there.
    """
    cuda = _detect_cuda() if cuda_available is None else cuda_available
    if cuda_devices is None:
        cuda_devices = _detect_cuda_devices() if cuda else 0
    if cuda:
        cuda_devices = max(cuda_devices, 1)  # CUDA available means at least one GPU
    if bf16_supported is None:
        bf16_supported = _detect_bf16() if cuda else False

    stage = DEEPSPEED_STAGES.get(config.strategy)
    if stage and not cuda:
        raise GpuRequiredError(
            f"strategy {config.strategy}",
            "DeepSpeed does not run on CPU",
            "Use strategy=auto or ddp on CPU.",
        )
    precision = resolve_precision(config, cuda=cuda, bf16_supported=bf16_supported)
    if cuda and config.devices > cuda_devices:
        found = f"{cuda_devices} CUDA GPU{'s' if cuda_devices != 1 else ''}"
        raise HardwareError(
            f"devices={config.devices} asks for {config.devices} GPUs but this machine has "
            f"{found}; set devices to {cuda_devices} or fewer."
        )
    world = config.devices * config.num_nodes
    if stage:
        cfg = deepspeed_config(config, world, precision=precision)
        validate_deepspeed_config(cfg, world_size=world)
        strategy: Any = _deepspeed_strategy(config.strategy, for_lightning(cfg))
        how = f"DeepSpeed ZeRO stage {stage}"
    elif config.strategy == "ddp" or world > 1:
        strategy = _ddp_strategy("nccl" if cuda else "gloo")
        how = f"DDP, {'nccl' if cuda else 'gloo'}"
    else:
        strategy, how = "auto", ""
    return HardwarePlan(
        accelerator="cuda" if cuda else "cpu",
        devices=config.devices,
        num_nodes=config.num_nodes,
        precision=precision,
        strategy=strategy,
        description=_describe(cuda, config.devices, config.num_nodes, how, precision),
    )


def _describe(cuda: bool, devices: int, num_nodes: int, how: str, precision: str) -> str:
    unit = ("GPU", "GPUs") if cuda else ("process", "processes")
    where = f"{devices} {unit[devices != 1]}"
    if num_nodes > 1:
        where += f" on each of {num_nodes} nodes"
    if how:
        where += f" ({how})"
    return f"{'CUDA' if cuda else 'CPU'}, {where}, {PRECISION_NAMES.get(precision, precision)}"


def _ddp_strategy(backend: str) -> Any:
    from lightning.pytorch.strategies import DDPStrategy

    return DDPStrategy(process_group_backend=backend, find_unused_parameters=False)


def _deepspeed_strategy(name: str, cfg: dict[str, Any]) -> Any:
    if not _deepspeed_installed():
        raise HardwareError(
            f"strategy {name} needs the deepspeed package, which is not installed; "
            "install it on the GPU machine (pip install deepspeed) or use strategy=ddp."
        )
    from lightning.pytorch.strategies import DeepSpeedStrategy

    return DeepSpeedStrategy(config=cfg)


def _deepspeed_installed() -> bool:
    return importlib.util.find_spec("deepspeed") is not None


def _detect_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _detect_cuda_devices() -> int:
    import torch

    return torch.cuda.device_count()


def _detect_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
