"""CTranslate2 Whisper models back to transformers: a model.bin reader and a converter.

``read_ct2_model`` parses ``model.bin`` (version 6) exactly to its end, dequantizing int8/int16;
``ct2_to_transformers`` turns a CTranslate2 Whisper directory (model.bin, config.json,
tokenizer.json, optional preprocessor_config.json) into a transformers one that CTranslate2's
TransformersConverter converts back to the same weights.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import torch

from utils.fileops import staged_directory
from utils.model_store import is_transformers_dir
from utils.workspace import get_workspace

if TYPE_CHECKING:
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

SUPPORTED_VERSION = 6
# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_DTYPES = (torch.float32, torch.int8, torch.int16, torch.int32, torch.float16, torch.bfloat16)
_MAX_RANK = 8
_LAYER_RE = re.compile(r"^(encoder|decoder)/layer_(\d+)/")
_Tensors = dict[str, torch.Tensor]
_Vars = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Ct2Model:
    """A parsed model.bin.

    ``variables`` maps every name (aliases included) to a tensor: quantized weights are
    dequantized to float32 (``q / scale``, scale per output row for int8, one scalar for int16),
    other variables keep their stored dtype; scalars are 0-d tensors. ``scales`` keeps the scale
    of each dequantized weight (int8: shape [rows]; int16: shape []), ``stored_dtypes`` the dtype
    each variable had on disk, ``aliases`` maps alias name to target name.
    """

    version: int
    spec_name: str
    spec_revision: int
    variables: Mapping[str, torch.Tensor]
    aliases: Mapping[str, str]
    scales: Mapping[str, torch.Tensor]
    stored_dtypes: Mapping[str, torch.dtype]


class _Reader:
    """Sequential little-endian reads that fail with a clear message on a short file."""

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self.handle, self.path, self.offset = handle, path, 0

    def take(self, size: int, what: str) -> bytes:
        data = self.handle.read(size)
        if len(data) != size:
            raise ValueError(
                f"{self.path}: truncated model.bin: needed {size} bytes for {what} at offset "
                f"{self.offset}, found {len(data)}"
            )
        self.offset += size
        return data

    def unpack(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        """A string stored as ``u16 length (incl. NUL)``, UTF-8 bytes, NUL."""
        length = self.unpack("H", f"{what} length")
        raw = self.take(length, what) if length else b""
        if not raw or raw[-1] != 0:
            raise ValueError(f"{self.path}: corrupt {what} at offset {self.offset}: no NUL")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{self.path}: corrupt {what} at offset {self.offset}") from exc

    def tensor(self, name: str) -> tuple[torch.Tensor, torch.dtype]:
        """One variable after its name: rank, dims, dtype id, byte count, raw bytes."""
        rank = self.unpack("B", f"rank of {name}")
        if rank > _MAX_RANK:
            raise ValueError(f"{self.path}: corrupt variable {name!r}: rank {rank}")
        dims = [self.unpack("I", f"dims of {name}") for _ in range(rank)]
        type_id = self.unpack("B", f"dtype of {name}")
        if type_id >= len(_DTYPES):
            raise ValueError(f"{self.path}: corrupt variable {name!r}: dtype id {type_id}")
        dtype = _DTYPES[type_id]
        nbytes = self.unpack("I", f"size of {name}")
        expected = torch.Size(dims).numel() * dtype.itemsize
        if nbytes != expected:
            raise ValueError(
                f"{self.path}: corrupt variable {name!r}: {nbytes} bytes for shape {dims} {dtype}"
            )
        buffer = torch.empty(nbytes, dtype=torch.uint8)
        got = self.handle.readinto(buffer.numpy()) if nbytes else 0
        if got != nbytes:
            raise ValueError(
                f"{self.path}: truncated model.bin: variable {name!r} needs {nbytes} bytes at "
                f"offset {self.offset}, found {got}"
            )
        self.offset += nbytes
        return buffer.view(dtype).reshape(dims), dtype


def _dequantize(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """CTranslate2 stores ``q = rint(w * scale)``, so ``w ~= q / scale``.

    weight: int8 [rows, ...] with scale [rows] (conv weights [out, in, k] use one scale per
    output channel), or int16 of any shape with a scalar scale. Returns float32, weight's shape.
    """
    scale = scale.to(torch.float32)
    if scale.dim() == 1 and weight.dim() >= 1 and scale.shape[0] == weight.shape[0]:
        scale = scale.reshape(-1, *([1] * (weight.dim() - 1)))
    elif scale.numel() != 1:
        raise ValueError(f"scale of shape {list(scale.shape)} does not fit {list(weight.shape)}")
    return weight.to(torch.float32) / scale


def _dequantize_all(raw: _Tensors) -> tuple[_Tensors, _Tensors]:
    """Replace each integer ``<name>`` that has a ``<name>_scale`` by its float32 value."""
    variables, scales = dict(raw), {}
    for scale_name in [n for n in raw if n.endswith("_scale")]:
        base = scale_name.removesuffix("_scale")
        weight = raw.get(base)
        if weight is None or weight.is_floating_point():
            continue
        if base + "_zero" in raw:
            raise ValueError(f"{base}: zero-point (AWQ) quantization is not supported")
        variables[base] = _dequantize(weight, raw[scale_name])
        scales[base] = variables.pop(scale_name)
    return variables, scales


def read_ct2_model(path: str | os.PathLike) -> Ct2Model:
    """Parse a CTranslate2 ``model.bin`` (or the directory holding it), version 6.

    Raises ValueError on another version, a truncated or corrupt file, trailing bytes, or an
    alias to an unknown variable.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    raw: _Tensors = {}
    stored: dict[str, torch.dtype] = {}
    with path.open("rb") as handle:
        reader = _Reader(handle, path)
        version = reader.unpack("I", "version")
        if version != SUPPORTED_VERSION:
            raise ValueError(
                f"{path}: model.bin version {version} is not supported (need {SUPPORTED_VERSION})"
            )
        spec_name = reader.string("spec name")
        revision = reader.unpack("I", "spec revision")
        for index in range(reader.unpack("I", "variable count")):
            name = reader.string(f"name of variable {index}")
            raw[name], stored[name] = reader.tensor(name)
        aliases = {}
        for index in range(reader.unpack("I", "alias count")):
            alias = reader.string(f"alias {index}")
            aliases[alias] = reader.string(f"target of alias {alias!r}")
        if handle.read(1):
            raise ValueError(
                f"{path}: corrupt model.bin: unexpected bytes after offset {reader.offset}"
            )
    variables, scales = _dequantize_all(raw)
    for alias, target in aliases.items():
        if target not in variables:
            raise ValueError(f"{path}: alias {alias!r} points to unknown variable {target!r}")
        variables[alias] = variables[target]
        stored[alias] = stored[target]
    stored = {name: stored[name] for name in variables}
    return Ct2Model(version, spec_name, revision, variables, aliases, scales, stored)


def _layer_count(names: list[str], stack: str) -> int:
    """Number of ``<stack>/layer_<i>/`` blocks; the regex skips ``layer_norm``."""
    indices = {int(m[2]) for m in map(_LAYER_RE.match, names) if m and m[1] == stack}
    if indices != set(range(len(indices))):
        raise ValueError(f"{stack} layers are not numbered 0..n-1: {sorted(indices)}")
    return len(indices)


def _linear(out: _Tensors, v: _Vars, src: str, dst: str) -> None:
    out[f"{dst}.weight"] = v[f"{src}/weight"]
    if f"{src}/bias" in v:
        out[f"{dst}.bias"] = v[f"{src}/bias"]


def _norm(out: _Tensors, v: _Vars, src: str, dst: str) -> None:
    out[f"{dst}.weight"] = v[f"{src}/gamma"]
    out[f"{dst}.bias"] = v[f"{src}/beta"]


def _split_attention(out: _Tensors, v: _Vars, src: str, dst: str, parts: str) -> None:
    """A fused projection ``src`` (weight [len(parts)*d, d]) split into ``<p>_proj``.

    k_proj has no bias in Whisper: the k slice of the fused bias (zero as written by
    CTranslate2's converter, and softmax-invariant in any case) is dropped.
    """
    weights = v[f"{src}/weight"].chunk(len(parts))
    biases = v[f"{src}/bias"].chunk(len(parts))
    for part, weight, bias in zip(parts, weights, biases, strict=True):
        out[f"{dst}.{part}_proj.weight"] = weight
        if part != "k":
            out[f"{dst}.{part}_proj.bias"] = bias


def _layer_state(v: _Vars, stack: str, i: int) -> _Tensors:
    """transformers tensors of one encoder/decoder layer (HF prefix ``model.<stack>.layers.i``)."""
    src, dst, out = f"{stack}/layer_{i}", f"model.{stack}.layers.{i}", {}
    _split_attention(out, v, f"{src}/self_attention/linear_0", f"{dst}.self_attn", "qkv")
    _linear(out, v, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
    _norm(out, v, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
    if stack == "decoder":
        _linear(out, v, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
        _split_attention(out, v, f"{src}/attention/linear_1", f"{dst}.encoder_attn", "kv")
        _linear(out, v, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
        _norm(out, v, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
    _linear(out, v, f"{src}/ffn/linear_0", f"{dst}.fc1")
    _linear(out, v, f"{src}/ffn/linear_1", f"{dst}.fc2")
    _norm(out, v, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
    return out


class _Recording(dict):
    """A dict that remembers which keys were read."""

    def __init__(self, data: _Vars) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> torch.Tensor:
        self.read.add(key)
        return super().__getitem__(key)


def whisper_state_dict(model: Ct2Model, dtype: torch.dtype = torch.float32) -> _Tensors:
    """The ``WhisperForConditionalGeneration`` state dict of a CTranslate2 Whisper model.

    Raises ValueError for another spec or for a tensor Whisper has no place for.
    """
    if model.spec_name != "WhisperSpec":
        raise ValueError(f"not a Whisper model: spec {model.spec_name!r}")
    v, names = _Recording(model.variables), list(model.variables)
    out: _Tensors = {}
    for name in ("conv1", "conv2"):
        _linear(out, v, f"encoder/{name}", f"model.encoder.{name}")
    for stack in ("encoder", "decoder"):
        prefix = f"model.{stack}"
        out[f"{prefix}.embed_positions.weight"] = v[f"{stack}/position_encodings/encodings"]
        _norm(out, v, f"{stack}/layer_norm", f"{prefix}.layer_norm")
        for i in range(_layer_count(names, stack)):
            out.update(_layer_state(v, stack, i))
    out["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    out["proj_out.weight"] = v["decoder/projection/weight"]
    unused = [n for n, t in model.variables.items() if t.dim() and n not in v.read]
    if unused:
        raise ValueError(f"CTranslate2 tensors with no Whisper counterpart: {unused[:5]}")
    return {key: tensor.to(dtype).contiguous() for key, tensor in out.items()}


def whisper_config(
    model: Ct2Model, ct2_config: Mapping, special_ids: Mapping[str, int]
) -> WhisperConfig:
    """A ``WhisperConfig`` whose sizes come from the weights' shapes and scalar settings."""
    from transformers import WhisperConfig

    v, names = model.variables, list(model.variables)
    eot = special_ids["<|endoftext|>"]
    tied = model.aliases.get("decoder/projection/weight") == "decoder/embeddings/weight"
    return WhisperConfig(
        vocab_size=v["decoder/embeddings/weight"].shape[0],
        num_mel_bins=v["encoder/conv1/weight"].shape[1],
        d_model=v["encoder/conv1/weight"].shape[0],
        encoder_layers=_layer_count(names, "encoder"),
        decoder_layers=_layer_count(names, "decoder"),
        encoder_attention_heads=int(v["encoder/num_heads"]),
        decoder_attention_heads=int(v["decoder/num_heads"]),
        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
        **dict.fromkeys(("pad_token_id", "bos_token_id", "eos_token_id"), eot),
        decoder_start_token_id=special_ids["<|startoftranscript|>"],
        suppress_tokens=list(ct2_config.get("suppress_ids") or []),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin") or [220, eot]),
        tie_word_embeddings=tied,
    )


def whisper_tokenizer(tokenizer_json: Path) -> WhisperTokenizerFast:
    """``WhisperTokenizerFast`` from tokenizer.json with every special added token declared
    special (else ``all_special_ids[-1]`` is wrong and timestamps decode late) and a pad token."""
    from transformers import WhisperTokenizerFast

    added = json.loads(tokenizer_json.read_text(encoding="utf-8"))["added_tokens"]
    special = [t["content"] for t in sorted(added, key=lambda t: t["id"]) if t["special"]]
    return WhisperTokenizerFast(
        tokenizer_file=str(tokenizer_json), extra_special_tokens=special, pad_token="<|endoftext|>"
    )


def whisper_generation_config(
    config: WhisperConfig, ct2_config: Mapping, tokenizer: WhisperTokenizerFast
) -> GenerationConfig:
    """Generation settings transformers' Whisper ``generate`` and CTranslate2's converter read."""
    from transformers import GenerationConfig

    ids = tokenizer.convert_ids_to_tokens
    lang_to_id = {ids(i): i for i in ct2_config.get("lang_ids") or []}
    task_to_id = {
        t: tokenizer.convert_tokens_to_ids(f"<|{t}|>") for t in ("translate", "transcribe")
    }
    eot = config.eos_token_id
    return GenerationConfig(
        **dict.fromkeys(("pad_token_id", "bos_token_id", "eos_token_id"), eot),
        decoder_start_token_id=config.decoder_start_token_id,
        no_timestamps_token_id=tokenizer.convert_tokens_to_ids("<|notimestamps|>"),
        prev_sot_token_id=tokenizer.convert_tokens_to_ids("<|startofprev|>"),
        lang_to_id=lang_to_id,
        task_to_id=task_to_id,
        is_multilingual=bool(lang_to_id),
        alignment_heads=[list(pair) for pair in ct2_config.get("alignment_heads") or []],
        suppress_tokens=list(config.suppress_tokens or []),
        begin_suppress_tokens=list(config.begin_suppress_tokens or []),
        max_initial_timestamp_index=50,
        max_length=448,
        return_timestamps=False,
    )


def _feature_extractor(ct2_dir: Path, num_mel_bins: int) -> WhisperFeatureExtractor:
    """WhisperFeatureExtractor from preprocessor_config.json, else defaults for the mel count."""
    from transformers import WhisperFeatureExtractor

    path = ct2_dir / "preprocessor_config.json"
    if path.is_file():
        return WhisperFeatureExtractor.from_dict(json.loads(path.read_text(encoding="utf-8")))
    return WhisperFeatureExtractor(feature_size=num_mel_bins)


def build_whisper(config: WhisperConfig, state: _Tensors) -> WhisperForConditionalGeneration:
    """A model of `config` holding exactly `state`: built on the meta device (no random
    initialisation spent on weights about to be replaced), then assigned strictly."""
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=True, assign=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    leftovers = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftovers:
        raise RuntimeError(f"tensors left uninitialised: {leftovers[:5]}")
    return model.eval()


def _write_transformers(ct2_dir: Path, staging: Path, dtype: torch.dtype) -> None:
    """Convert ``ct2_dir`` into the empty directory ``staging``."""
    from transformers import WhisperProcessor

    tokenizer_json = ct2_dir / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise FileNotFoundError(f"{ct2_dir} has no tokenizer.json, which the conversion needs")
    ct2_config = json.loads((ct2_dir / "config.json").read_text(encoding="utf-8"))
    tokenizer = whisper_tokenizer(tokenizer_json)
    model = read_ct2_model(ct2_dir / "model.bin")
    specials = {t: tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens}
    config = whisper_config(model, ct2_config, specials)
    hf_model = build_whisper(config, whisper_state_dict(model, dtype))
    del model
    hf_model.generation_config = whisper_generation_config(config, ct2_config, tokenizer)
    hf_model.save_pretrained(staging)
    tokenizer.model_max_length = config.max_target_positions
    feature_extractor = _feature_extractor(ct2_dir, config.num_mel_bins)
    processor = WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    processor.save_pretrained(staging)
    # Also the standalone file faster-whisper's converter recipe copies (copy_files=[...]).
    feature_extractor.save_pretrained(staging)
    for path in staging.iterdir():
        path.chmod(0o644)
    staging.chmod(0o755)


def _complete(path: Path) -> bool:
    return is_transformers_dir(path) and (path / "tokenizer.json").is_file()


def ct2_to_transformers(
    ct2_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    dtype: torch.dtype = torch.float32,
    overwrite: bool = False,
) -> Path:
    """Write a transformers Whisper directory (model, processor, generation config) to ``out_dir``.

    The work happens in a private temporary sibling renamed into place at the end, so a reader
    never sees a half-written directory. If another caller finished ``out_dir`` first, its result
    is kept. An existing ``out_dir`` raises FileExistsError unless ``overwrite``.
    """
    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists; pass overwrite=True to replace it")
    with staged_directory(out_dir, _complete, replace=overwrite) as staging:
        _write_transformers(ct2_dir, staging, dtype)
    return out_dir


def _newer(path: Path, than: Path) -> bool:
    return path.stat().st_mtime_ns >= than.stat().st_mtime_ns


def ensure_transformers_model(
    ct2_dir: str | os.PathLike, workspace_models_dir: str | os.PathLike | None = None
) -> Path:
    """The cached transformers copy of ``ct2_dir``: ``<models>/<name>-hf``, converted once.

    ``workspace_models_dir`` defaults to the workspace's ``models/``. Idempotent and safe for
    concurrent callers (see ``ct2_to_transformers``); a copy older than model.bin is redone.
    """
    ct2_dir = Path(ct2_dir)
    models = Path(workspace_models_dir) if workspace_models_dir else get_workspace().models
    target = models / f"{ct2_dir.name}-hf"
    if _complete(target) and _newer(target / "config.json", ct2_dir / "model.bin"):
        return target
    return ct2_to_transformers(ct2_dir, target, overwrite=target.exists())
