"""The hyperparameter form of the Training tab: one component per main `TrainConfig` field (its
kind read from the field's type), an "advanced" box of `key=value` lines or a JSON object for the
rest, and the way back from a config to the form's values (presets, "apply best")."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, Literal

import gradio as gr

from utils.dataset import actions
from utils.dataset.manifest import MANIFEST_NAME
from utils.training.config import LORA_TARGETS, ConfigError, TrainConfig

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Method",
        (
            "method",
            "lora_r",
            "lora_alpha",
            "lora_dropout",
            "lora_targets",
            "freeze_encoder",
            "gradient_checkpointing",
        ),
    ),
    (
        "Optimisation",
        (
            "learning_rate",
            "max_steps",
            "batch_size",
            "accumulate_grad_batches",
            "warmup_steps",
            "schedule",
            "weight_decay",
            "new_token_lr_scale",
            "gradient_clip",
            "precision",
        ),
    ),
    (
        "Data",
        (
            "language",
            "task",
            "mixed_tasks",
            "augment",
            "augment_strength",
            "spec_augment",
            "timestamp_share",
            "prompt_share",
            "packing",
            "curriculum",
            "curriculum_steps",
        ),
    ),
    (
        "Validation, checkpoints, hardware",
        (
            "val_every_steps",
            "checkpoint_every_steps",
            "early_stopping_patience",
            "generation_max_tokens",
            "seed",
            "strategy",
            "devices",
            "num_nodes",
            "num_workers",
        ),
    ),
)
SHARES = ("lora_dropout", "augment_strength", "timestamp_share", "prompt_share")
LABELS = {
    "new_token_lr_scale": "New-token LR ×",
    "lora_r": "LoRA r",
    "lora_alpha": "LoRA alpha",
    "lora_dropout": "LoRA dropout",
    "lora_targets": "LoRA targets",
    "accumulate_grad_batches": "Gradient accumulation",
    "num_workers": "Data workers",
    "val_every_steps": "Validate every (steps)",
    "checkpoint_every_steps": "Checkpoint every (steps)",
    "early_stopping_patience": "Early stopping patience (0 = off)",
    "generation_max_tokens": "Max tokens when validating",
    "augment": "Waveform augmentation",
    "spec_augment": "SpecAugment",
}
PICKED = ("model", "dataset")  # chosen with the pickers above the form


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def form_field_names() -> list[str]:
    """The TrainConfig fields that have a component, in the form's order."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return [name for _, names in GROUPS for name in names if name in known]


def _label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def _component(name: str, hint: Any, default: Any) -> gr.components.Component:
    label = _label(name)
    if typing.get_origin(hint) is Literal:
        return gr.Dropdown([str(c) for c in typing.get_args(hint)], value=default, label=label)
    if typing.get_origin(hint) is tuple:
        choices = list(LORA_TARGETS) if name == "lora_targets" else list(default)
        return gr.CheckboxGroup(choices, value=list(default), label=label)
    if hint is bool:
        return gr.Checkbox(default, label=label)
    if name in SHARES:
        return gr.Slider(0.0, 1.0, value=default, step=0.05, label=label)
    if hint is int:
        return gr.Number(default, precision=0, label=label, minimum=0)
    if hint is float:
        return gr.Number(default, label=label)
    return gr.Textbox(str(default), label=label)


def build_form() -> dict[str, gr.components.Component]:
    """The form's components by field name; rendered in the current Blocks context."""
    hints, defaults, present = _hints(), TrainConfig(), set(form_field_names())
    controls: dict[str, gr.components.Component] = {}
    for title, names in GROUPS:
        shown = [n for n in names if n in present]
        with gr.Accordion(title, open=title == "Optimisation"):
            for row in ([n for n in shown if hints[n] is not bool],
                        [n for n in shown if hints[n] is bool]):  # fmt: skip
                with gr.Row(equal_height=False, visible=bool(row)):
                    for name in row:
                        controls[name] = _component(name, hints[name], getattr(defaults, name))
    return {name: controls[name] for name in form_field_names()}  # the order form_values uses


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """A form value as the field's type; ConfigError naming the field when it cannot be."""
    if typing.get_origin(hint) is tuple:
        return tuple(value or ())
    if hint is bool:
        return bool(value)
    if value is None or value == "":
        raise ConfigError(f"{name} is empty")
    if hint is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{name} must be a whole number, not {value!r}")
        return int(value)
    if hint is float:
        return float(value)
    return str(value)


def parse_advanced(text: str | None) -> dict[str, Any] | list[str]:
    """The advanced box: a JSON object of field values, or `key=value` lines (# comments)."""
    text = (text or "").strip()
    if text.startswith("{"):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"advanced settings are not valid JSON: {exc}") from exc
        if not isinstance(values, dict):
            raise ConfigError("advanced settings must be a JSON object or key=value lines")
        return values
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def config_from_form(
    values: dict[str, Any], *, dataset: str, model: str, advanced: str | None = ""
) -> TrainConfig:
    """The config the form describes (advanced settings win); ConfigError says what is wrong."""
    hints = _hints()
    fields = {
        name: _coerce(name, values[name], hints[name])
        for name in form_field_names()
        if name in values
    }
    if not (dataset or "").strip():
        raise ConfigError("dataset: pick a dataset (or give a dataset folder)")
    if not (model or "").strip():
        raise ConfigError("model: pick a base model")
    extra = parse_advanced(advanced)
    base = TrainConfig(**fields, dataset=dataset.strip(), model=model.strip())
    if isinstance(extra, dict):
        return TrainConfig.from_dict({**base.to_dict(), **extra})
    return base.with_overrides(extra)


def require_dataset(config: TrainConfig) -> Path:
    """The dataset folder of `config`; ConfigError when it has no manifest."""
    data_dir = actions.dataset_path(config.dataset)
    if not (data_dir / MANIFEST_NAME).is_file():
        raise ConfigError(f"dataset {config.dataset!r}: no {MANIFEST_NAME} in {data_dir}")
    return data_dir


def form_values(config: TrainConfig) -> list[Any]:
    """The form's values for `config`, in `form_field_names()` order."""
    return [
        list(value) if isinstance(value, tuple) else value
        for value in (getattr(config, name) for name in form_field_names())
    ]


def advanced_text(config: TrainConfig) -> str:
    """`key=value` lines for the fields without a component that differ from the defaults."""
    shown = set(form_field_names()) | set(PICKED)
    defaults = TrainConfig().to_dict()
    return "\n".join(
        f"{key}={','.join(value) if isinstance(value, list) else value}"
        for key, value in config.to_dict().items()
        if key not in shown and value != defaults.get(key)
    )
