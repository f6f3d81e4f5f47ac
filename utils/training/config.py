"""One `TrainConfig` per fine-tuning run: saved with the run, varied with `dataclasses.replace`,
`--set key=value` overrides and named presets (best practices in one click)."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import typing
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

LORA_TARGETS = ("q", "k", "v", "out", "fc1", "fc2")
Method = Literal["lora", "full"]
Schedule = Literal["linear", "cosine"]
Precision = Literal["auto", "32", "16-mixed", "bf16-mixed"]
Strategy = Literal["auto", "ddp", "deepspeed_stage_2", "deepspeed_stage_3"]
Curriculum = Literal["none", "duration", "difficulty"]
TRACKERS = ("wandb", "mlflow")  # experiment trackers besides TensorBoard (always on)
MAX_FORGETTING_PROMPTS = 64
KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "text"}


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


@dataclass(frozen=True)
class TrainConfig:
    # what to train
    model: str = "whisper-base"
    dataset: str = ""
    language: str = "am"
    task: Literal["transcribe", "translate"] = "transcribe"
    mixed_tasks: bool = False  # translate samples too when the manifest has translations
    # how
    method: Method = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q", "v")
    freeze_encoder: bool = False
    gradient_checkpointing: bool = False
    # optimisation
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    new_token_lr_scale: float = 10.0  # LR factor for re-purposed token rows (Ge'ez vocabulary)
    schedule: Schedule = "linear"
    warmup_steps: int = 50
    max_steps: int = 1000
    batch_size: int = 8
    accumulate_grad_batches: int = 1
    gradient_clip: float = 1.0
    precision: Precision = "auto"  # bf16/fp16 with loss scaling on GPU, fp32 on CPU
    # hardware
    strategy: Strategy = "auto"
    devices: int = 1
    num_nodes: int = 1
    num_workers: int = 2
    # data
    timestamp_share: float = 0.2  # samples trained with timestamp tokens (keeps timestamps)
    prompt_share: float = 0.2  # samples with a previous-text prompt (keeps long-form decoding)
    packing: bool = False  # several short utterances in one 30 s window
    augment: bool = True
    augment_strength: float = 0.5  # 0..1 scales the per-transform probabilities
    spec_augment: bool = True
    curriculum: Curriculum = "none"
    curriculum_steps: int = 0  # steps over which the hardest samples are phased in
    # evaluation and stopping
    val_every_steps: int = 200
    checkpoint_every_steps: int = 100  # last.ckpt, for resume after a crash or kill
    early_stopping_patience: int = 0  # validations without improvement; 0 = off
    generation_max_tokens: int = 224
    forgetting_check: int = 8  # English prompts scored before and after training; 0 = off
    # tracking
    trackers: tuple[str, ...] = ()  # "wandb", "mlflow": configured from the environment
    seed: int = 0

    def __post_init__(self) -> None:
        for name, hint in _hints().items():
            _check_type(name, getattr(self, name), hint)
        problems = [message for message in _range_problems(self) if message]
        if problems:
            raise ConfigError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**{k: _tuple_if_needed(v, _hints()[k]) for k, v in values.items()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainConfig:
        return cls.from_dict(config_file_values(path))

    def with_overrides(self, assignments: list[str]) -> TrainConfig:
        """A copy with `key=value` assignments applied (values parsed by the field's type)."""
        hints = _hints()
        changes: dict[str, Any] = {}
        for assignment in assignments:
            key, sep, text = assignment.partition("=")
            key = key.strip()
            if not sep or key not in hints:
                raise ConfigError(f"{assignment!r}: expected key=value with a TrainConfig key")
            changes[key] = parse_value(key, text.strip(), hints[key])
        return dataclasses.replace(self, **changes)


def config_file_values(path: str | os.PathLike) -> dict[str, Any]:
    """The keys a saved config file sets (not yet checked against TrainConfig)."""
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc})") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a config is a JSON object")
    return values


def compose_config(
    preset_name: str | None = None,
    config_file: str | os.PathLike | None = None,
    assignments: Sequence[str] = (),
) -> TrainConfig:
    """The command-line order: the preset (or the defaults), then the keys the config file
    sets, then each `key=value` assignment."""
    config = preset(preset_name) if preset_name else TrainConfig()
    if config_file:
        config = TrainConfig.from_dict({**config.to_dict(), **config_file_values(config_file)})
    return config.with_overrides(list(assignments))


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--preset, --config and --set, shared by the training, search and LR-finder CLIs."""
    parser.add_argument("--preset", choices=sorted(PRESETS), help="start from a preset config")
    parser.add_argument("--config", type=Path, help="a saved TrainConfig JSON file")
    parser.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
        help="override one config value (repeatable)",
    )  # fmt: skip


@functools.cache
def _hints() -> dict[str, Any]:
    """Field name -> type (the annotations are strings under `from __future__`)."""
    return typing.get_type_hints(TrainConfig)


def _tuple_if_needed(value: Any, hint: Any) -> Any:
    return tuple(value) if typing.get_origin(hint) is tuple and isinstance(value, list) else value


def parse_value(key: str, text: str, hint: Any) -> Any:
    """`text` as a value of type `hint` (bool, int, float, str, Literal, tuple[str, ...])."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return text
    if origin is tuple:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if hint is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"{key}: {text!r} is not true or false")
        return text.lower() in ("true", "1", "yes")
    try:
        return hint(text)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: {text!r} is not {KIND_NAMES[hint]}") from exc


def _check_type(name: str, value: Any, hint: Any) -> None:
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(map(str, typing.get_args(hint)))
            raise ConfigError(f"{name} must be one of {choices}, not {value!r}")
        return
    if origin is tuple:
        if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name} must be a tuple of strings, not {value!r}")
        return
    expected = (int, float) if hint is float else hint
    if isinstance(hint, type) and (
        not isinstance(value, expected) or (hint is not bool and isinstance(value, bool))
    ):
        raise ConfigError(f"{name} must be {KIND_NAMES[hint]}, not {value!r}")


def _range_problems(c: TrainConfig) -> list[str]:
    bad_targets = sorted(set(c.lora_targets) - set(LORA_TARGETS))
    return [
        f"lora_targets {bad_targets} not among {', '.join(LORA_TARGETS)}" if bad_targets else "",
        "lora_targets is empty" if c.method == "lora" and not c.lora_targets else "",
        "learning_rate must be positive" if c.learning_rate <= 0 else "",
        "new_token_lr_scale must be positive" if c.new_token_lr_scale <= 0 else "",
        "max_steps must be at least 1" if c.max_steps < 1 else "",
        "warmup_steps must be >= 0 and below max_steps"
        if not 0 <= c.warmup_steps < c.max_steps
        else "",
        "batch_size must be at least 1" if c.batch_size < 1 else "",
        "accumulate_grad_batches must be at least 1" if c.accumulate_grad_batches < 1 else "",
        "lora_r and lora_alpha must be at least 1" if min(c.lora_r, c.lora_alpha) < 1 else "",
        *(
            f"{name} must be in [0, 1]" if not 0 <= getattr(c, name) <= 1 else ""
            for name in ("lora_dropout", "timestamp_share", "prompt_share", "augment_strength")
        ),
        "devices and num_nodes must be at least 1" if min(c.devices, c.num_nodes) < 1 else "",
        "num_workers must be >= 0" if c.num_workers < 0 else "",
        "val_every_steps and checkpoint_every_steps must be at least 1"
        if min(c.val_every_steps, c.checkpoint_every_steps) < 1
        else "",
        "generation_max_tokens must be in 1..224"
        if not 1 <= c.generation_max_tokens <= 224
        else "",
        f"forgetting_check must be in 0..{MAX_FORGETTING_PROMPTS} (0 = off)"
        if not 0 <= c.forgetting_check <= MAX_FORGETTING_PROMPTS
        else "",
        _trackers_problem(c.trackers),
    ]


def _trackers_problem(trackers: tuple[str, ...]) -> str:
    unknown = sorted(set(trackers) - set(TRACKERS))
    if unknown:
        return f"trackers {unknown} not among {', '.join(TRACKERS)}"
    return "trackers are listed twice" if len(set(trackers)) < len(trackers) else ""


PRESETS: dict[str, dict[str, Any]] = {
    # LoRA on the attention projections, small batches: minutes on a laptop CPU.
    "quick-cpu-lora": {"method": "lora", "lora_r": 8, "lora_alpha": 16, "batch_size": 4,
                       "max_steps": 200, "warmup_steps": 20, "learning_rate": 1e-3,
                       "precision": "32", "num_workers": 2, "val_every_steps": 100},
    # LoRA on every projection of one GPU, mixed precision.
    "gpu-lora": {"method": "lora", "lora_r": 32, "lora_alpha": 64,
                 "lora_targets": ("q", "k", "v", "out", "fc1", "fc2"), "batch_size": 16,
                 "learning_rate": 5e-4, "max_steps": 4000, "warmup_steps": 200},
    # Full fine-tune: low learning rate, checkpointing to fit larger models.
    "gpu-full": {"method": "full", "batch_size": 16, "learning_rate": 1e-5,
                 "gradient_checkpointing": True, "max_steps": 5000, "warmup_steps": 500,
                 "schedule": "cosine"},
    # A few hours of Amharic: LoRA on every projection of encoder and decoder, short utterances
    # packed into 30 s windows, mostly timestamped (their anchors make the first alignment come
    # sooner). bench/train_bench.py: CER 5% on an unseen voice after 28 CPU minutes.
    "amharic-low-resource": {"method": "lora", "language": "am", "lora_r": 32, "lora_alpha": 64,
                             "lora_targets": ("q", "k", "v", "out", "fc1", "fc2"),
                             "learning_rate": 1e-3, "batch_size": 4, "packing": True,
                             "timestamp_share": 0.7, "augment_strength": 0.5, "max_steps": 2000,
                             "warmup_steps": 20, "val_every_steps": 100,
                             "early_stopping_patience": 5},
}  # fmt: skip


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The named preset as a config (overrides on top); ConfigError names the presets."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return TrainConfig(**{**PRESETS[name], **overrides})
