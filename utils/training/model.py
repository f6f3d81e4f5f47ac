"""The model side of fine-tuning: load a base Whisper in transformers form, make the configured
parameters trainable (LoRA adapters or the full model, optionally with the encoder frozen), and
write the results (adapter, merged model) so every engine can load them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from utils.ct2_convert import ensure_transformers_model
from utils.model_store import resolve_model
from utils.training.config import TrainConfig
from utils.workspace import Workspace, get_workspace

# Short names in TrainConfig.lora_targets -> module names inside Whisper's attention and MLP.
LORA_MODULES = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "out": "out_proj",
                "fc1": "fc1", "fc2": "fc2"}  # fmt: skip


@dataclass(frozen=True)
class BaseModel:
    """A base model ready to train: the transformers model in fp32 and its processor."""

    model: WhisperForConditionalGeneration
    processor: WhisperProcessor
    source: Path  # the transformers directory it was read from
    new_token_ids: tuple[int, ...] = ()  # re-purposed rows (a Ge'ez vocabulary), trained too


@dataclass(frozen=True)
class TrainableCounts:
    trainable: int
    total: int

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def describe(self) -> str:
        return f"{self.trainable:,} of {self.total:,} parameters trainable ({self.share:.2%})"


def transformers_source(reference: str, workspace: Workspace | None = None) -> Path:
    """The transformers directory for a model name or path; a CTranslate2 model is converted
    once into the workspace's models/ (see `utils.ct2_convert.ensure_transformers_model`)."""
    workspace = workspace or get_workspace()
    resolved = resolve_model(reference, workspace)
    if resolved.kind == "transformers":
        return resolved.path
    if resolved.kind == "ctranslate2":
        return ensure_transformers_model(resolved.path, workspace.models)
    raise ValueError(
        f"{reference}: a {resolved.kind} model has no weights to fine-tune or rebuild from; "
        "pick a CTranslate2 or transformers Whisper"
    )


def load_base_model(reference: str, workspace: Workspace | None = None) -> BaseModel:
    source = transformers_source(reference, workspace)
    model = WhisperForConditionalGeneration.from_pretrained(source, dtype=torch.float32)
    processor = WhisperProcessor.from_pretrained(source)
    return BaseModel(model, processor, source, repurposed_token_ids(source))


def repurposed_token_ids(source: Path) -> tuple[int, ...]:
    """The ids a Ge'ez vocabulary re-purposed in the model at `source` (none for others)."""
    from utils.geez_vocab.design import PROVENANCE_FILE

    path = source / PROVENANCE_FILE
    if not path.is_file():
        return ()
    return tuple(int(item["id"]) for item in json.loads(path.read_text())["given_up"])


def _target_regex(config: TrainConfig) -> str:
    """LoRA target modules as one regex; a frozen encoder gets no adapters either."""
    names = "|".join(LORA_MODULES[t] for t in config.lora_targets)
    stacks = "decoder" if config.freeze_encoder else "(encoder|decoder)"
    return rf"model\.{stacks}\.layers\.\d+\.((self_attn|encoder_attn)\.)?({names})"


def _new_rows(new_token_ids: tuple[int, ...]) -> dict[str, list[int]] | None:
    return {"embed_tokens": list(new_token_ids)} if new_token_ids else None


def make_trainable(
    model: WhisperForConditionalGeneration,
    config: TrainConfig,
    new_token_ids: tuple[int, ...] = (),
) -> torch.nn.Module:
    """The model to optimise: a PEFT LoRA wrapper (`method="lora"`) or the model itself with
    the encoder frozen when asked; gradient checkpointing when asked. With LoRA the embedding
    rows of `new_token_ids` train too (PEFT trainable tokens; the tied output projection
    follows them), the rest of the embedding stays frozen."""
    model.config.use_cache = False  # caches are useless with teacher forcing and cost memory
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=_target_regex(config),
            bias="none",
            trainable_token_indices=_new_rows(new_token_ids),
        )
        return get_peft_model(model, lora)
    if config.freeze_encoder:
        for parameter in model.model.encoder.parameters():
            parameter.requires_grad_(False)
    return model


def count_parameters(model: torch.nn.Module) -> TrainableCounts:
    params = list(model.parameters())
    return TrainableCounts(
        sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
    )


def is_lora(model: torch.nn.Module) -> bool:
    return hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")


def whisper_of(model: torch.nn.Module) -> WhisperForConditionalGeneration:
    """The `WhisperForConditionalGeneration` inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if is_lora(model) else model


def merged_copy(model: torch.nn.Module) -> WhisperForConditionalGeneration:
    """A plain Whisper with any LoRA weights folded in; the training model is left as it was."""
    import copy

    clone = copy.deepcopy(model)
    merged = clone.merge_and_unload() if is_lora(clone) else clone
    merged.config.use_cache = True
    if getattr(merged, "is_gradient_checkpointing", False):
        merged.gradient_checkpointing_disable()
    return merged.eval()


def save_adapter(model: torch.nn.Module, out_dir: str | os.PathLike) -> Path | None:
    """The LoRA adapter (adapter_config.json + adapter_model.safetensors); None for full runs."""
    if not is_lora(model):
        return None
    out = Path(out_dir)
    model.save_pretrained(out)
    return out


def save_merged(
    model: torch.nn.Module,
    processor: WhisperProcessor,
    out_dir: str | os.PathLike,
    base_source: Path | None = None,
) -> Path:
    """A complete transformers Whisper directory (weights merged, processor, generation config)
    that the transformers engine loads and CTranslate2's converter accepts; a Ge'ez vocabulary's
    provenance in `base_source` goes along (its token rate and re-purposed rows)."""
    from utils.geez_vocab.design import copy_provenance

    out = Path(out_dir)
    merged = merged_copy(model)
    merged.save_pretrained(out)
    processor.save_pretrained(out)
    if base_source is not None:
        copy_provenance(base_source, out)
    return out
