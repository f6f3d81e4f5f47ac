"""Building a Ge'ez base model from any multilingual Whisper in the store: the edited tokenizer,
the transformers weights with the re-purposed rows initialized, the CTranslate2 conversion, and
both registered with their provenance (`models/<name>` and `models/<name>-hf`)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.fileops import staged_directory
from utils.geez_vocab.design import (
    PROVENANCE_FILE,
    GeezVocabConfig,
    GeezVocabulary,
    design_vocabulary,
)
from utils.geez_vocab.model_edit import repurpose_embeddings
from utils.geez_vocab.slow_files import edit_slow_files
from utils.model_store import is_ctranslate2_dir, is_transformers_dir, resolve_model
from utils.registry import register_model
from utils.workspace import Workspace, get_workspace

_REWRITTEN = {"model.safetensors", "tokenizer.json", "vocab.json", "merges.txt", PROVENANCE_FILE,
              "studio.json", "config.json", "generation_config.json"}  # fmt: skip


@dataclass(frozen=True)
class BuildResult:
    """What `build_geez_model` made."""

    name: str
    ct2_dir: Path
    hf_dir: Path
    given_up: int
    seconds: float


def _protected_ids(hf_dir: Path) -> set[int]:
    """The model's suppress lists: ids Whisper never emits, or never first."""
    config = json.loads((hf_dir / "generation_config.json").read_text(encoding="utf-8"))
    return set(config.get("suppress_tokens") or []) | set(config.get("begin_suppress_tokens") or [])


def _check_multilingual(tokenizer: dict[str, Any], name: str) -> None:
    contents = {token["content"] for token in tokenizer["added_tokens"]}
    if "<|am|>" not in contents:
        raise ValueError(f"{name} is not a multilingual Whisper model (no <|am|> token)")


def _write_transformers(source: Path, staging: Path, vocabulary: GeezVocabulary,
                        original: dict[str, Any]) -> None:  # fmt: skip
    from transformers import WhisperForConditionalGeneration

    for path in source.iterdir():
        if path.is_file() and path.name not in _REWRITTEN:
            shutil.copy2(path, staging / path.name)
    model = WhisperForConditionalGeneration.from_pretrained(source)
    repurpose_embeddings(model, original, vocabulary.swaps)
    model.save_pretrained(staging)
    (staging / "tokenizer.json").write_text(
        json.dumps(vocabulary.tokenizer, ensure_ascii=False), encoding="utf-8"
    )
    edit_slow_files(source, staging, vocabulary.swaps, vocabulary.tokenizer)
    _write_provenance(staging, vocabulary)


def _write_provenance(directory: Path, vocabulary: GeezVocabulary) -> None:
    text = json.dumps(vocabulary.provenance, indent=1, ensure_ascii=False)
    (directory / PROVENANCE_FILE).write_text(text, encoding="utf-8")


def build_geez_model(
    source: str,
    name: str,
    config: GeezVocabConfig = GeezVocabConfig(),
    workspace: Workspace | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build `models/<name>` (CTranslate2, float16) and `models/<name>-hf` (transformers) from
    the model `source` (a registry name or a directory). Raises FileExistsError when `name` is
    taken (unless `overwrite`), ValueError for a model that cannot carry the vocabulary."""
    from optimization.ct2_export import convert_to_ct2

    started, say = time.monotonic(), progress or (lambda _: None)
    workspace = workspace or get_workspace()
    ct2_dir, hf_dir = workspace.models / name, workspace.models / f"{name}-hf"
    taken = [path for path in (ct2_dir, hf_dir) if path.exists() or path.is_symlink()]
    if taken and not overwrite:
        raise FileExistsError(f"{taken[0]} exists: choose another name or overwrite it")
    from utils.training.model import transformers_source

    resolved = resolve_model(source, workspace)
    hf_source = transformers_source(source, workspace)  # a CTranslate2 model converted once
    original = json.loads((hf_source / "tokenizer.json").read_text(encoding="utf-8"))
    _check_multilingual(original, resolved.name)
    vocabulary = design_vocabulary(original, _protected_ids(hf_source), config, progress)
    provenance = vocabulary.provenance | {"source_model": resolved.name}
    vocabulary = GeezVocabulary(vocabulary.tokenizer, vocabulary.swaps, provenance)
    say("writing the transformers model")
    with staged_directory(hf_dir, is_transformers_dir, replace=overwrite) as staging:
        _write_transformers(hf_source, staging, vocabulary, original)
    say("converting to CTranslate2")
    with staged_directory(ct2_dir, is_ctranslate2_dir, replace=overwrite) as staging:
        convert_to_ct2(hf_dir, staging, quantization="float16")
        _write_provenance(staging, vocabulary)
    os.utime(hf_dir / "config.json")  # newer than model.bin: the store keeps this copy
    facts = {"geez_vocab": {k: v for k, v in vocabulary.provenance.items() if k != "given_up"}}
    source_text = f"{resolved.name} with a Ge'ez-aware vocabulary ({len(vocabulary.swaps)} tokens)"
    register_model(ct2_dir, source=source_text, **facts)
    register_model(hf_dir, source=source_text, **facts)
    return BuildResult(name, ct2_dir, hf_dir, len(vocabulary.swaps), time.monotonic() - started)
