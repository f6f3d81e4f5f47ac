"""ONNX export of a transformers Whisper directory: an encoder and a KV-cache decoder.

Layout of an export directory (see docs/onnx.md):

- ``encoder.onnx``: ``input_features`` float32 (audio_batch, n_mels, 3000) -> ``cross_k``,
  ``cross_v`` float32 (n_layers, audio_batch, 1500, d_model): the encoder states already
  projected by each decoder layer's encoder_attn k_proj/v_proj, so decoding never recomputes
  them (and never needs the encoder states themselves).
- ``decoder.onnx``: ``input_ids`` int64 (batch, n_new), ``self_k``, ``self_v`` float32
  (n_layers, batch, n_past, d_model; n_past may be 0), ``cross_k``, ``cross_v`` (n_layers,
  audio_batch, 1500, d_model) -> ``logits`` float32 (batch, n_new, vocab), ``new_self_k``,
  ``new_self_v`` (n_layers, batch, n_past + n_new, d_model), ``alignment_weights`` float32
  (batch, n_alignment_heads, n_new, 1500): the cross-attention probabilities of the alignment
  heads (format 2 on), which time words. Positions start at n_past; the new tokens attend
  causally. audio_batch is batch, or any divisor of it with the decoder rows grouped per audio:
  1 lets every beam or sample of one window share one copy of its audio.
- ``onnx_config.json`` (`OnnxConfig`: format version, sizes, the alignment heads) and the
  source's config, generation config, tokenizer and feature-extractor files.

The graphs come from small wrapper modules over the Hugging Face weights (plain torch attention,
no cache classes; optimization/onnx_wrappers.py), exported with
``torch.onnx.export(dynamo=True)``: it handles the dynamic batch/n_new/n_past axes, a
zero-length past at run time, and keeps the tied embedding once.
``int8`` is onnxruntime's dynamic quantization; ``fp16`` a float16 conversion meant for GPUs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from optimization.onnx_wrappers import (  # also the export's public names: callers import here
    DecoderForOnnx,
    EncoderForOnnx,
    model_alignment_heads,
)

Precision = Literal["fp32", "int8", "fp16"]
Progress = Callable[[str, float], None] | None  # (stage description, fraction done in [0, 1])

# 2: the decoder outputs alignment_weights (word timestamps); 1: logits and caches only.
FORMAT_VERSION = 2
OPSET = 18
ENCODER_FILE, DECODER_FILE, CONFIG_FILE = "encoder.onnx", "decoder.onnx", "onnx_config.json"
DECODER_OUTPUTS = ("logits", "new_self_k", "new_self_v")  # what decoding reads
ALIGNMENT_OUTPUT = "alignment_weights"  # what word timing reads
PRECISIONS = ("fp32", "int8", "fp16")
REQUIRED_FILES = ("config.json", "generation_config.json")
SIDE_FILES = (*REQUIRED_FILES, "preprocessor_config.json", "processor_config.json",
              "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "added_tokens.json", "vocab.json", "merges.txt", "normalizer.json",
              "geez_vocab.json")  # fmt: skip
EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf caps one file at 2 GiB: bigger weights go aside


@dataclass(frozen=True)
class OnnxConfig:
    """What ``onnx_config.json`` records about an export."""

    format_version: int
    precision: str  # fp32, int8 or fp16
    n_layers: int  # decoder layers (= the first axis of the caches)
    n_heads: int  # decoder attention heads
    d_model: int
    vocab_size: int
    n_mels: int
    max_target_positions: int  # decoder positions: 448
    opset: int
    exporter: str
    source: str  # the transformers directory it was exported from
    quantization: dict | None = None  # int8: how quantize_dynamic was called
    # [layer, head] of each alignment_weights channel, in order; None: a format 1 export
    alignment_heads: list[list[int]] | None = None

    @classmethod
    def read(cls, onnx_dir: str | Path) -> OnnxConfig:
        """The config of an export; ValueError naming the file when missing or unreadable."""
        path = Path(onnx_dir) / CONFIG_FILE
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a readable ONNX export config ({exc})") from exc

    def write(self, onnx_dir: Path) -> None:
        (onnx_dir / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")


@dataclass(frozen=True)
class OnnxExportInfo:
    """The result of an export: where, what precision, file sizes in bytes, seconds taken and
    the float32 graphs' largest difference from torch (relative to the largest output)."""

    out_dir: Path
    precision: str
    files: tuple[tuple[str, int], ...]  # (file name, bytes) of every file written
    seconds: float
    config: OnnxConfig
    verified_difference: float | None = None  # fp32 graphs vs torch, relative; None: unchecked

    @property
    def onnx_bytes(self) -> int:
        """Bytes of the ONNX graphs and their external data."""
        return sum(size for name, size in self.files if ".onnx" in name)


def load_whisper(model_dir: str | Path) -> nn.Module:
    """A transformers Whisper directory as a float32 eval model; ValueError naming the path
    and the problem when it is missing, incomplete or not loadable."""
    from safetensors import SafetensorError
    from transformers import WhisperForConditionalGeneration

    path = Path(model_dir)
    if not path.is_dir():
        raise ValueError(f"{path}: no such model directory")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if not any((path / name).is_file() for name in ("tokenizer.json", "vocab.json")):
        missing.append("tokenizer.json (or vocab.json + merges.txt)")
    if not any((path / n).is_file() for n in ("preprocessor_config.json", "processor_config.json")):
        missing.append("preprocessor_config.json (the feature extractor)")
    if missing:
        raise ValueError(f"{path}: not a complete transformers Whisper directory, missing " +
                         ", ".join(missing))  # fmt: skip
    try:
        model = WhisperForConditionalGeneration.from_pretrained(str(path), dtype=torch.float32)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        raise ValueError(f"{path}: cannot load the Whisper model: {exc}") from exc
    if model.config.model_type != "whisper":
        raise ValueError(f"{path}: a {model.config.model_type} model, not Whisper")
    return model.eval()


def example_inputs(model: nn.Module, audios: int = 2, rows: int = 2) -> tuple[Tensor, tuple]:
    """Inputs to trace with: features (audios, n_mels, 3000) and decoder inputs for `rows` rows
    per audio, 3 new ids after 2 cached ones (sizes above 1 keep every axis symbolic)."""
    c, generator = model.config, torch.Generator().manual_seed(0)
    features = torch.randn(audios, c.num_mel_bins, 3000, generator=generator)
    ids = torch.full((audios * rows, 3), c.decoder_start_token_id)
    past = torch.randn(c.decoder_layers, audios * rows, 2, c.d_model, generator=generator)
    cross = torch.randn(c.decoder_layers, audios, 1500, c.d_model, generator=generator)
    return features, (ids, past, past.clone(), cross, cross.clone())


def _dynamic_shapes() -> tuple[dict, dict]:
    batch = torch.export.Dim("batch", min=1, max=1024)
    audio = torch.export.Dim("audio_batch", min=1, max=1024)
    n_new = torch.export.Dim("n_new", min=1, max=448)
    n_past = torch.export.Dim("n_past", min=0, max=448)
    cache, cross = {1: batch, 2: n_past}, {1: audio}
    decoder = {"input_ids": {0: batch, 1: n_new}, "self_k": cache, "self_v": cache,
               "cross_k": cross, "cross_v": cross}  # fmt: skip
    return {"input_features": {0: audio}}, decoder


def _export_graphs(model: nn.Module, out: Path, progress: Progress) -> None:
    """Write encoder.onnx and decoder.onnx (float32) into `out`."""
    features, decoder_args = example_inputs(model)
    encoder_axes, decoder_axes = _dynamic_shapes()
    external = sum(p.numel() * 4 for p in model.parameters()) > EXTERNAL_DATA_BYTES
    common = dict(opset_version=OPSET, dynamo=True, external_data=external, verbose=False)
    with _quiet_exporter():
        _report(progress, "exporting the encoder", 0.1)
        torch.onnx.export(EncoderForOnnx(model).eval(), (features,), str(out / ENCODER_FILE),
                          input_names=["input_features"], output_names=["cross_k", "cross_v"],
                          dynamic_shapes=encoder_axes, **common)  # fmt: skip
        _report(progress, "exporting the decoder", 0.4)
        torch.onnx.export(DecoderForOnnx(model).eval(), decoder_args, str(out / DECODER_FILE),
                          input_names=list(decoder_axes),
                          output_names=[*DECODER_OUTPUTS, ALIGNMENT_OUTPUT],
                          dynamic_shapes=decoder_axes, **common)  # fmt: skip


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's known, harmless chatter (missing torchvision ops, the shared batch
    axis name, a pytree deprecation) so real warnings stay visible."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"# The axis name")
            warnings.filterwarnings("ignore", message=r".*LeafSpec", category=FutureWarning)
            yield
    finally:
        registration.setLevel(level)


def verify_export(model: nn.Module, onnx_dir: Path, tolerance: float = 1e-3) -> float:
    """Run both graphs in onnxruntime (CPU) on the example inputs and compare with the torch
    wrappers; returns the worst difference relative to the largest reference value and raises
    RuntimeError above `tolerance`."""
    import onnxruntime as ort

    features, args = example_inputs(model, audios=1, rows=2)
    with torch.no_grad():
        expected = [*EncoderForOnnx(model)(features), *DecoderForOnnx(model)(*args)]
    options = ort.SessionOptions()
    sessions = [ort.InferenceSession(str(onnx_dir / name), options, ["CPUExecutionProvider"])
                for name in (ENCODER_FILE, DECODER_FILE)]  # fmt: skip
    names = ("input_ids", "self_k", "self_v", "cross_k", "cross_v")
    got = sessions[0].run(None, {"input_features": features.numpy()})
    got += sessions[1].run(None, {n: a.numpy() for n, a in zip(names, args, strict=True)})
    worst = max(float((torch.from_numpy(g) - e).abs().max() / e.abs().max().clamp(min=1))
                for g, e in zip(got, expected, strict=True))  # fmt: skip
    if worst > tolerance:
        raise RuntimeError(f"{onnx_dir}: the ONNX graphs differ from torch by {worst:.2e}")
    return worst


def export_onnx(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    precision: Precision = "fp32",
    progress: Progress = None,
    verify: bool = True,
) -> OnnxExportInfo:
    """Export `model_dir` (a transformers Whisper directory) into the existing, empty `out_dir`
    at `precision` (fp32, int8 or fp16). `verify`: run the float32 graphs in onnxruntime against
    the torch wrappers first (`verify_export`; about two encoder passes). Raises ValueError for
    a missing or unloadable model or an unknown precision, FileExistsError when `out_dir` is not
    empty; an OSError (a full disk) propagates and the caller removes the partial directory."""
    started, out = time.perf_counter(), _empty_out_dir(out_dir, precision)
    _report(progress, "loading the model", 0.0)
    model = load_whisper(model_dir)
    config, difference = _config(model, "fp32", str(Path(model_dir).resolve())), None
    with torch.no_grad(), contextlib.ExitStack() as stack:
        fp32 = out if precision == "fp32" else Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix=".fp32-", dir=out)))  # fmt: skip
        _export_graphs(model, fp32, progress)
        if verify:
            _report(progress, "checking the export against torch", 0.7)
            difference = verify_export(model, fp32)
        if precision != "fp32":
            _report(progress, f"converting to {precision}", 0.8)
            config = _convert(fp32, out, precision, config)
    _copy_side_files(Path(model_dir), out)
    config.write(out)
    _report(progress, "done", 1.0)
    return _info(out, config, time.perf_counter() - started, difference)


def quantize_onnx_dir(
    src_dir: str | Path, out_dir: str | Path, precision: Precision = "int8"
) -> OnnxExportInfo:
    """Make an int8 or fp16 export from an fp32 export without exporting again; `out_dir` must
    exist and be empty (FileExistsError otherwise); ValueError if `src_dir` is not fp32."""
    started, src = time.perf_counter(), Path(src_dir)
    source = OnnxConfig.read(src)
    if source.precision != "fp32":
        raise ValueError(f"{src}: a {source.precision} export; convert from an fp32 one")
    if precision == "fp32":
        raise ValueError("precision must be 'int8' or 'fp16' to convert an fp32 export")
    out = _empty_out_dir(out_dir, precision)
    config = _convert(src, out, precision, source)
    _copy_side_files(src, out)
    config.write(out)
    return _info(out, config, time.perf_counter() - started)


# -- conversions ---------------------------------------------------------------------------------
def _convert(src: Path, out: Path, precision: str, config: OnnxConfig) -> OnnxConfig:
    """Write both graphs of the fp32 export `src` into `out` at `precision`."""
    for name in (ENCODER_FILE, DECODER_FILE):
        (_to_int8 if precision == "int8" else _to_fp16)(src / name, out / name)
    quantization = INT8_SETTINGS if precision == "int8" else None
    return OnnxConfig(**{**asdict(config), "precision": precision, "quantization": quantization})


# Weights only (activations are quantized per call); attention's activation x activation
# products stay float; per-channel scales keep the error of wide-ranged columns low.
INT8_SETTINGS = {"weight_type": "QInt8", "per_channel": True, "op_types": ["MatMul"],
                 "logits_projection": "float32"}  # fmt: skip


def _to_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of the MatMul weights, except the logits projection: its
    errors move every token's score, and it stays float32 (it is the tied embedding matrix)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src), load_external_data=False).graph
    logits = [node.name for node in graph.node if "logits" in node.output]
    quantize_dynamic(
        src, dst, weight_type=QuantType.QInt8, per_channel=INT8_SETTINGS["per_channel"],
        op_types_to_quantize=INT8_SETTINGS["op_types"], nodes_to_exclude=logits,
        use_external_data_format=_is_large(src), extra_options={"MatMulConstBOnly": True},
    )  # fmt: skip


def _to_fp16(src: Path, dst: Path) -> None:
    """float16 weights and activations, float32 inputs and outputs (keep_io_types), so the
    engine feeds and reads float32 whatever the precision."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    large = _is_large(src)
    onnx.save_model(model, str(dst), save_as_external_data=large, location=f"{dst.name}.data")


# -- files -------------------------------------------------------------------------------------
def _empty_out_dir(out_dir: str | Path, precision: str) -> Path:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: the output directory must exist (and be empty)")
    if any(out.iterdir()):
        raise FileExistsError(f"{out}: the output directory is not empty")
    return out


def _copy_side_files(src: Path, out: Path) -> None:
    """The config, generation config, tokenizer and feature-extractor files the engine needs."""
    for name in SIDE_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)


def _is_large(path: Path) -> bool:
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0) > (
        EXTERNAL_DATA_BYTES
    )


def _config(model: nn.Module, precision: str, source: str) -> OnnxConfig:
    c = model.config
    return OnnxConfig(
        format_version=FORMAT_VERSION, precision=precision, n_layers=c.decoder_layers,
        n_heads=c.decoder_attention_heads, d_model=c.d_model, vocab_size=c.vocab_size,
        n_mels=c.num_mel_bins, max_target_positions=c.max_target_positions, opset=OPSET,
        exporter=f"torch.onnx.export(dynamo=True), torch {torch.__version__}", source=source,
        alignment_heads=model_alignment_heads(model),
    )  # fmt: skip


def _info(
    out: Path, config: OnnxConfig, seconds: float, difference: float | None = None
) -> OnnxExportInfo:
    files = tuple((p.name, p.stat().st_size) for p in sorted(out.iterdir()) if p.is_file())
    return OnnxExportInfo(out, config.precision, files, seconds, config, difference)


def _report(progress: Progress, stage: str, fraction: float) -> None:
    if progress:
        progress(stage, fraction)
