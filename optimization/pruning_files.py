"""Model directories for pruning: load a transformers Whisper with named errors, count its
parameters and weight bytes, copy its tokenizer and preprocessor files."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from safetensors import SafetensorError, safe_open
from transformers import WhisperForConditionalGeneration

from utils.model_store import is_ctranslate2_dir, is_transformers_dir

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".data")
# Tokenizer and feature-extractor files copied as they are (save_pretrained writes the rest).
PROCESSOR_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                   "normalizer.json", "added_tokens.json", "special_tokens_map.json",
                   "preprocessor_config.json", "processor_config.json")  # fmt: skip


def _check_whisper_dir(path: Path) -> None:
    """ValueError naming `path` unless it holds a transformers Whisper."""
    if not path.is_dir():
        raise ValueError(f"{path}: no such model directory")
    if is_ctranslate2_dir(path):
        raise ValueError(f"{path}: a CTranslate2 model; convert it to transformers first "
                         "(utils.ct2_convert.ensure_transformers_model)")  # fmt: skip
    if not is_transformers_dir(path):
        raise ValueError(f"{path}: not a transformers model (needs config.json and weights)")
    try:
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8"))["model_type"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: unreadable config.json ({exc})") from exc
    if model_type != "whisper":
        raise ValueError(f"{path}: not a Whisper model (model_type {model_type!r})")


def load_whisper(model_dir: str | Path) -> WhisperForConditionalGeneration:
    """The transformers Whisper in `model_dir`, in its stored dtype; ValueError naming the path
    and the problem for a missing directory, another format or model, or unreadable weights."""
    path = Path(model_dir)
    _check_whisper_dir(path)
    try:
        model, info = WhisperForConditionalGeneration.from_pretrained(
            path, dtype="auto", output_loading_info=True
        )
    except (OSError, RuntimeError, ValueError, SafetensorError) as exc:
        raise ValueError(f"{path}: cannot load the weights ({exc})") from exc
    wrong = {k: v for k, v in info.items() if k.endswith("_keys") and v}
    if wrong:
        raise ValueError(f"{path}: weights do not match config.json: {wrong}")
    return model.eval()


def weights_bytes(model_dir: str | Path) -> int:
    """Bytes of the weight files of a transformers, CTranslate2 or ONNX directory."""
    files = Path(model_dir).iterdir()
    return sum(f.stat().st_size for f in files if f.is_file() and f.suffix in WEIGHT_SUFFIXES)


def parameter_count(model_dir: str | Path) -> int | None:
    """Stored parameters (tied weights once) of a transformers directory (from the safetensors
    headers) or a CTranslate2 one (non-scalar variables, aliases once); None for other formats."""
    path = Path(model_dir)
    if is_ctranslate2_dir(path):
        from utils.ct2_convert import read_ct2_model

        ct2 = read_ct2_model(path)
        return sum(t.numel() for n, t in ct2.variables.items() if t.dim() and n not in ct2.aliases)
    total = 0
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            total += sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys())  # noqa: SIM118
    return total or None


def copy_processor_files(source: Path, target: Path) -> None:
    """Copy the tokenizer and feature-extractor files `source` has into `target`, byte for byte."""
    for name in PROCESSOR_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
