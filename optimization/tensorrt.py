"""TensorRT for ONNX exports, through onnxruntime's TensorrtExecutionProvider.

TensorRT compiles each graph into an engine for a range of input shapes (an optimisation
profile): the encoder for 1..rows audios, the decoder for 1..rows rows, 1..448 new ids and
0..447 cached positions. Engines are cached in the export directory (``tensorrt_cache/``), so
only the first session pays the build (minutes). Build from the fp32 export with fp16 enabled:
TensorRT picks its own precision, and the int8 export's dynamic-quantization ops are not
TensorRT's. Needs a CUDA GPU and onnxruntime-gpu built with TensorRT; nothing here was run on a
GPU in this repository's tests (see docs/onnx.md).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from optimization.onnx_export import DECODER_FILE, ENCODER_FILE, OnnxConfig

TENSORRT = "TensorrtExecutionProvider"
CACHE_DIR = "tensorrt_cache"  # inside the export directory
OPT_PAST = 64  # cached positions TensorRT tunes the decoder for (a typical mid-window step)
Profile = dict[str, tuple[str, str, str]]  # input name -> (min, opt, max) shape as "AxBxC"


def tensorrt_available() -> bool:
    """Whether this onnxruntime offers the TensorRT provider."""
    import onnxruntime as ort

    return TENSORRT in ort.get_available_providers()


def require_tensorrt() -> None:
    """RuntimeError naming what is missing when TensorRT cannot run here."""
    import onnxruntime as ort

    if not tensorrt_available():
        raise RuntimeError(
            "TensorRT needs a CUDA GPU and onnxruntime-gpu built with TensorRT; this machine's "
            f"onnxruntime offers: {', '.join(ort.get_available_providers())}"
        )


def profile_shapes(config: OnnxConfig, graph: str, rows: int = 5) -> Profile:
    """TensorRT's shape range for each input of `graph` (encoder.onnx or decoder.onnx), for up
    to `rows` decoder rows (the beam size, or best_of when sampling). The engine feeds cross_k
    with one audio (audio_batch 1); up to `rows` keeps the spec's batch-sized form valid too."""
    layers, d, limit = config.n_layers, config.d_model, config.max_target_positions

    def dims(*sizes: int) -> str:
        return "x".join(str(size) for size in sizes)

    if graph == ENCODER_FILE:
        return {"input_features": (dims(1, config.n_mels, 3000), dims(1, config.n_mels, 3000),
                                   dims(rows, config.n_mels, 3000))}  # fmt: skip
    if graph != DECODER_FILE:
        raise ValueError(f"graph must be {ENCODER_FILE} or {DECODER_FILE}, not {graph!r}")
    most = limit - 1  # cached positions before the last new id
    cache = (dims(layers, 1, 0, d), dims(layers, rows, OPT_PAST, d), dims(layers, rows, most, d))
    cross = (dims(layers, 1, 1500, d), dims(layers, 1, 1500, d), dims(layers, rows, 1500, d))
    return {"input_ids": (dims(1, 1), dims(rows, 1), dims(rows, limit)),
            "self_k": cache, "self_v": cache, "cross_k": cross, "cross_v": cross}  # fmt: skip


def tensorrt_provider_options(
    cache_dir: str | Path, fp16: bool = True, profile: Profile | None = None
) -> list[Any]:
    """The providers list for one session: TensorRT (engine and timing caches in `cache_dir`,
    fp16 kernels allowed when `fp16`, the `profile` shape range), then CUDA and CPU for any
    node TensorRT does not take."""
    options: dict[str, Any] = {
        "trt_fp16_enable": fp16,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir),
    }
    if profile:
        for index, key in enumerate(("min", "opt", "max")):
            shapes = ",".join(f"{name}:{ranges[index]}" for name, ranges in profile.items())
            options[f"trt_profile_{key}_shapes"] = shapes
    return [(TENSORRT, options), "CUDAExecutionProvider", "CPUExecutionProvider"]


def tensorrt_providers(onnx_dir: str | Path, rows: int = 5, fp16: bool = True) -> dict[str, list]:
    """Providers per graph file of an export (what `OnnxEngine(providers=...)` takes)."""
    config, cache = OnnxConfig.read(onnx_dir), Path(onnx_dir) / CACHE_DIR
    return {graph: tensorrt_provider_options(cache, fp16, profile_shapes(config, graph, rows))
            for graph in (ENCODER_FILE, DECODER_FILE)}  # fmt: skip


def build_tensorrt_engines(
    onnx_dir: str | Path, beam_size: int = 5, fp16: bool = True
) -> dict[str, float]:
    """Build and cache the TensorRT engines of an export for up to `beam_size` rows: one run of
    each graph at its smallest shapes. Returns the seconds each graph took; RuntimeError when
    TensorRT is not available here."""
    import onnxruntime as ort

    require_tensorrt()
    config, onnx_dir = OnnxConfig.read(onnx_dir), Path(onnx_dir)
    (onnx_dir / CACHE_DIR).mkdir(exist_ok=True)
    seconds = {}
    for graph, providers in tensorrt_providers(onnx_dir, beam_size, fp16).items():
        started = time.perf_counter()
        session = ort.InferenceSession(str(onnx_dir / graph), providers=providers)
        session.run(None, _smallest_inputs(config, graph))
        seconds[graph] = time.perf_counter() - started
    return seconds


def tensorrt_engine(onnx_dir: str | Path, beam_size: int = 5, fp16: bool = True) -> Any:
    """An `OnnxEngine` on TensorRT (engines built on first use, then cached)."""
    from utils.transcription.onnx_engine import OnnxEngine

    require_tensorrt()
    return OnnxEngine(onnx_dir, "cuda", providers=tensorrt_providers(onnx_dir, beam_size, fp16))


def _smallest_inputs(config: OnnxConfig, graph: str) -> dict[str, np.ndarray]:
    if graph == ENCODER_FILE:
        return {"input_features": np.zeros((1, config.n_mels, 3000), dtype=np.float32)}
    layers, d = config.n_layers, config.d_model
    empty = np.zeros((layers, 1, 0, d), dtype=np.float32)
    cross = np.zeros((layers, 1, 1500, d), dtype=np.float32)
    return {"input_ids": np.zeros((1, 1), dtype=np.int64), "self_k": empty, "self_v": empty,
            "cross_k": cross, "cross_v": cross}  # fmt: skip
