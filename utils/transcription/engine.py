"""`load_engine`: resolve a model reference and load the right engine once per process."""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from utils.audio import AudioInput
from utils.model_store import resolve_model
from utils.transcription.options import DecodeOptions
from utils.transcription.results import TranscriptionResult


class Engine(Protocol):
    kind: str
    device: str
    compute_type: str
    load_seconds: float
    window_token_limit: int  # new tokens one decoder window may generate (224)

    def transcribe(
        self,
        audio: AudioInput,
        options: DecodeOptions | None = None,
        progress=None,
        source: str = "",
    ) -> TranscriptionResult: ...

    def detect_language(
        self, samples: np.ndarray, options: DecodeOptions
    ) -> tuple[str | None, float]: ...


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda" or "cpu"
    compute_type: str  # "float16", "int8", "float32", ...


def cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except (ImportError, RuntimeError):
        return False


def choose_device(device: str = "auto", compute_type: str = "auto") -> DeviceChoice:
    """CUDA + float16 when a GPU is present, else CPU + int8; explicit choices are checked."""
    if device == "auto":
        device = "cuda" if cuda_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if device == "cuda" and not cuda_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is available; use 'cpu'")
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return DeviceChoice(device, compute_type)


_load_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _load(path: str, kind: str, device: str, compute_type: str) -> Engine:
    return open_engine(path, kind, device, compute_type)


def open_engine(path: str, kind: str, device: str, compute_type: str) -> Engine:
    """A fresh engine for a resolved model directory of `kind` (`load_engine` caches these;
    callers measuring load time or wanting the memory back call this directly)."""
    if kind == "ctranslate2":
        from utils.transcription.faster_engine import FasterWhisperEngine

        return FasterWhisperEngine(
            path, device, compute_type, cpu_threads=_cpu_threads(), workers=_workers(device)
        )
    if kind == "transformers":
        from utils.transcription.hf_engine import TransformersEngine

        return TransformersEngine(path, device, compute_type)
    if kind == "onnx":
        from utils.transcription.onnx_engine import OnnxEngine

        return OnnxEngine(path, device, compute_type, cpu_threads=_cpu_threads())
    raise ValueError(f"no transcription engine for {kind} models (at {path}); export it first")


def _cpu_threads() -> int:
    return int(os.environ.get("WHISPER_STUDIO_CPU_THREADS", "0"))


def _workers(device: str) -> int:
    """Decodes a CTranslate2 engine runs at once. On a CPU two: one decode leaves cores idle
    (measured on 2 cores: 0.83 s alone, 0.56 s each when two run together, for 5 % more
    memory, as the replicas share weights; WHISPER_STUDIO_CPU_WORKERS changes it); on a GPU one."""
    if device != "cpu":
        return 1
    return max(1, int(os.environ.get("WHISPER_STUDIO_CPU_WORKERS", "2")))


def load_engine(
    model: str | None = None, device: str = "auto", compute_type: str = "auto"
) -> Engine:
    """The engine for a model reference (name, directory or hub id), loaded once and cached per
    (model, device, compute type)."""
    resolved = resolve_model(model)
    choice = choose_device(device, compute_type)
    with _load_lock:
        return _load(str(resolved.path), resolved.kind, choice.device, choice.compute_type)
