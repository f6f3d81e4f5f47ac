"""Transformers Whisper -> CTranslate2 (faster-whisper) with a complete config.json.

CTranslate2's converter copies `lang_ids`, `alignment_heads` and the suppress lists from the
generation config; when that config lacks them it writes `lang_ids: []` (faster-whisper then
treats the model as English-only and cannot detect or force a language) and default alignment
heads (word timings drift). Here the config is completed from the tokenizer and model shape,
written, read back and checked, so the export loads correctly in stock faster-whisper.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

CT2_QUANTIZATIONS = (
    "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
    "float16", "bfloat16", "float32",
)  # fmt: skip
COPIED_FILES = ("tokenizer.json", "preprocessor_config.json", "geez_vocab.json")


class IncompleteConfigError(ValueError):
    """A CTranslate2 config.json that would make faster-whisper misbehave; says what is wrong."""


def _read(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from exc
    return value if isinstance(value, dict) else {}


def language_token_ids(tokenizer_json: Path) -> list[int]:
    """Ids of the `<|xx|>` language tokens of a Whisper tokenizer.json, sorted."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    added = _read(tokenizer_json).get("added_tokens", [])
    wanted = {f"<|{code}|>" for code in LANGUAGES}
    return sorted(t["id"] for t in added if t.get("content") in wanted)


def expected_config(hf_dir: Path) -> dict[str, Any]:
    """The Whisper fields config.json must hold, from the transformers directory's generation
    config, falling back to the tokenizer (languages) and the last half of the decoder's heads."""
    model_config = _read(hf_dir / "config.json")
    generation_file = hf_dir / "generation_config.json"
    generation = _read(generation_file) if generation_file.is_file() else {}
    lang_ids = sorted((generation.get("lang_to_id") or {}).values())
    lang_ids = lang_ids or language_token_ids(hf_dir / "tokenizer.json")
    layers, heads = model_config["decoder_layers"], model_config["decoder_attention_heads"]
    default_heads = itertools.product(range(layers // 2, layers), range(heads))
    alignment = generation.get("alignment_heads") or [list(pair) for pair in default_heads]
    eot = model_config.get("eos_token_id", 50257)
    suppress = generation.get("suppress_tokens") or model_config.get("suppress_tokens") or []
    return {
        "lang_ids": lang_ids,
        "alignment_heads": [list(pair) for pair in alignment],
        "suppress_ids": list(suppress),
        "suppress_ids_begin": list(generation.get("begin_suppress_tokens") or [220, eot]),
    }  # fmt: skip


def complete_config(ct2_dir: Path, hf_dir: Path) -> dict[str, Any]:
    """Rewrite `ct2_dir/config.json` with every Whisper field of `expected_config`; returns it."""
    path = ct2_dir / "config.json"
    config = _read(path) | expected_config(hf_dir)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return config


def config_problems(ct2_dir: Path, decoder_layers: int, decoder_heads: int) -> list[str]:
    """What is wrong with a CTranslate2 Whisper config.json for a multilingual model."""
    config, problems = _read(ct2_dir / "config.json"), []
    vocabulary = json.loads((ct2_dir / "vocabulary.json").read_text(encoding="utf-8"))
    has_languages = "<|en|>" in vocabulary and "<|fr|>" in vocabulary
    if has_languages and not config.get("lang_ids"):
        problems.append("lang_ids is empty: faster-whisper would treat the model as English-only")
    heads = config.get("alignment_heads") or []
    if not heads:
        problems.append("alignment_heads is empty: word timestamps would fail")
    bad = [h for h in heads if not (0 <= h[0] < decoder_layers and 0 <= h[1] < decoder_heads)]
    if bad:
        problems.append(f"alignment_heads {bad[:3]} name layers or heads the model lacks")
    if config.get("suppress_ids_begin") is None:
        problems.append("suppress_ids_begin is missing: blank first tokens would not be suppressed")
    return problems


def check_loads(ct2_dir: Path, multilingual: bool) -> None:
    """Load the export in CTranslate2 (as faster-whisper does) and check what it understood."""
    import ctranslate2

    model = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="default")
    if model.is_multilingual != multilingual:
        raise IncompleteConfigError(
            f"{ct2_dir}: CTranslate2 reads the model as "
            f"{'multilingual' if model.is_multilingual else 'English-only'}, unlike its source"
        )


def convert_to_ct2(
    hf_dir: Path,
    out_dir: Path,
    quantization: str = "int8",
) -> dict[str, Any]:
    """Convert the transformers Whisper in `hf_dir` into the empty directory `out_dir` with
    `quantization`, complete and check its config; returns the written config.json."""
    import ctranslate2

    if quantization not in CT2_QUANTIZATIONS:
        raise ValueError(
            f"quantization {quantization!r}: choose one of {', '.join(CT2_QUANTIZATIONS)}"
        )
    copied = [name for name in COPIED_FILES if (hf_dir / name).is_file()]
    converter = ctranslate2.converters.TransformersConverter(str(hf_dir), copy_files=copied)
    try:
        converter.convert(str(out_dir), quantization=quantization, force=True)
    except (KeyError, AttributeError, RuntimeError) as exc:
        raise ValueError(f"{hf_dir}: CTranslate2 cannot convert this model: {exc}") from exc
    if not (out_dir / "preprocessor_config.json").is_file():  # transformers 5 may only write
        from transformers import WhisperFeatureExtractor  # processor_config.json

        WhisperFeatureExtractor.from_pretrained(hf_dir).save_pretrained(out_dir)
    config = complete_config(out_dir, hf_dir)
    model_config = _read(hf_dir / "config.json")
    layers, heads = model_config["decoder_layers"], model_config["decoder_attention_heads"]
    if problems := config_problems(out_dir, layers, heads):
        raise IncompleteConfigError(f"{out_dir}/config.json: " + "; ".join(problems))
    check_loads(out_dir, multilingual=bool(config["lang_ids"]))
    return config
