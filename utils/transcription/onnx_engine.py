"""The ONNX engine: an export of optimization/onnx_export.py run by onnxruntime.

Same windows, prompts, fallback rules and `TranscriptionResult` as `TransformersEngine` (both
are `WindowedEngine`s); the model steps run `encoder.onnx` once per window and `decoder.onnx`
once per token with its self-attention KV cache, and the token search applies transformers' own
logits processors (utils/transcription/onnx_search.py), so greedy tokens equal the transformers
engine's up to float rounding. Word timestamps come from one more decoder pass per window over
its text, whose `alignment_weights` output (the alignment heads' cross-attention) goes through
the transformers engine's DTW (`windowed.find_alignment`); a format 1 export has no such output
and `word_timestamps=True` is refused for it, asking for a re-export.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from faster_whisper.tokenizer import Tokenizer
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
from torch import Tensor
from transformers import GenerationConfig, WhisperConfig, WhisperProcessor
from transformers.generation.logits_process import (
    LogitsProcessorList,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SuppressTokensAtBeginLogitsProcessor,
    SuppressTokensLogitsProcessor,
    WhisperTimeStampLogitsProcessor,
)

from optimization.onnx_export import (
    ALIGNMENT_OUTPUT,
    DECODER_FILE,
    DECODER_OUTPUTS,
    ENCODER_FILE,
    OnnxConfig,
)
from utils.audio import SAMPLE_RATE
from utils.transcription import onnx_search, windows
from utils.transcription.options import DecodeOptions
from utils.transcription.windowed import (
    WindowDecode,
    WindowedEngine,
    alignment_tokens,
    find_alignment,
    window_decode,
)

ENGINE = "the ONNX engine"
COMPUTE_TYPES = {"fp32": "float32", "int8": "int8", "fp16": "float16"}  # export -> engine name
THREADS_ENV = "WHISPER_STUDIO_CPU_THREADS"  # as utils.transcription.engine reads it
_ORT_ERRORS = (ort_state.Fail, ort_state.InvalidArgument, ort_state.InvalidGraph,
               ort_state.InvalidProtobuf, ort_state.NoSuchFile, ort_state.NotImplemented,
               ort_state.RuntimeException, ort_state.EPFail)  # fmt: skip


@dataclass
class Encoded:
    """One window's encoding: cross_k, cross_v float32 (n_layers, 1, 1500, d_model), and the
    decoder caches of prefixes run on it (ids -> self_k, self_v (n_layers, 1, n, d_model) and
    the last position's logits (vocab,)), so sot_probabilities and each temperature's decode
    of the window share their prompt pass."""

    cross_k: np.ndarray
    cross_v: np.ndarray
    prefixes: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, Tensor]] = field(
        default_factory=dict
    )


class _State:
    """A decoder and its cache for a batch of rows (onnx_search.DecoderState); every row
    attends to the window's one copy of cross_k/cross_v (the decoder broadcasts audio_batch 1)."""

    def __init__(self, session: Any, encoded: Encoded, self_k: np.ndarray, self_v: np.ndarray):
        self.session, self.encoded, self.k, self.v = session, encoded, self_k, self_v

    def step(self, ids: np.ndarray) -> Tensor:
        feeds = {"input_ids": ids, "self_k": self.k, "self_v": self.v,
                 "cross_k": self.encoded.cross_k, "cross_v": self.encoded.cross_v}  # fmt: skip
        logits, self.k, self.v = self.session.run(DECODER_OUTPUTS, feeds)
        return torch.from_numpy(logits[:, -1])

    def select(self, rows: Sequence[int]) -> None:
        if list(rows) != list(range(self.k.shape[1])):
            self.k, self.v = np.take(self.k, rows, axis=1), np.take(self.v, rows, axis=1)


class OnnxEngine(WindowedEngine):
    """Transcribes with an ONNX export directory (encoder.onnx, decoder.onnx, onnx_config.json,
    tokenizer and generation config). The precision is the export's: `compute_type` reports it
    ("float32", "int8" or "float16") whatever was asked. device "cuda" needs onnxruntime's
    CUDAExecutionProvider (onnxruntime-gpu); TensorRT goes through optimization/tensorrt.py,
    which passes its own `providers` (a list, or one per graph file). CPU threads:
    `cpu_threads`, else WHISPER_STUDIO_CPU_THREADS, else onnxruntime's default.
    `patience` != 1, `hallucination_silence_threshold`, and `word_timestamps` on a format 1
    export (no alignment_weights output) raise `OptionNotSupportedError`.
    """

    kind = "onnx"
    engine_name = ENGINE

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "cpu",
        compute_type: str = "default",
        cpu_threads: int | None = None,
        providers: list | dict[str, list] | None = None,
    ):
        started = time.perf_counter()
        self.model_dir, self.device = Path(model_dir), device
        self.config = OnnxConfig.read(model_dir)
        self.precision = self.config.precision
        self.compute_type = COMPUTE_TYPES.get(self.precision, self.precision)
        self.providers = providers or _providers(device)
        threads = int(os.environ.get(THREADS_ENV, "0")) if cpu_threads is None else cpu_threads
        self.encoder = self._session(ENCODER_FILE, threads)
        self.decoder = self._session(DECODER_FILE, threads)
        processor = WhisperProcessor.from_pretrained(str(model_dir))
        self.feature_extractor, self.hf_tokenizer = processor.feature_extractor, processor.tokenizer
        self.generation_config = GenerationConfig.from_pretrained(str(model_dir))
        lang_to_id = self.generation_config.lang_to_id or {}
        self.languages = {token.strip("<|>"): i for token, i in lang_to_id.items()}
        if not self.languages:
            raise ValueError(f"{model_dir}: {ENGINE} needs a multilingual model (lang_to_id)")
        self.default_suppress_tokens = tuple(self.generation_config.suppress_tokens or ())
        outputs = {output.name for output in self.decoder.get_outputs()}
        self.times_words = ALIGNMENT_OUTPUT in outputs  # format 2 on; a format 1 export: no
        self.median_filter_width = WhisperConfig.from_pretrained(str(model_dir)).median_filter_width
        self.max_length = self.config.max_target_positions  # decoder positions: 448
        self.window_token_limit = windows.WINDOW_TOKEN_LIMIT  # new tokens per window: 224
        self.read_tokenizer()
        self.load_seconds = time.perf_counter() - started

    def _session(self, name: str, threads: int) -> ort.InferenceSession:
        """An inference session for one graph; a clear error for a missing or corrupt file."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(threads, 0)  # 0: onnxruntime's default
        options.inter_op_num_threads = 1  # the graphs are sequential chains
        # Idle threads sleep instead of spinning: on a shared or busy CPU spinning workers
        # starved each other (2 threads ran 1.7x slower than 1 on a loaded 2-core machine).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: no warnings about unused initializers
        path = self.model_dir / name
        if not path.is_file():
            raise ValueError(f"{path}: missing; {self.model_dir} is not a complete ONNX export")
        try:
            providers = self.providers
            if isinstance(providers, dict):  # per graph file (TensorRT's shape profiles differ)
                providers = providers[name]
            return ort.InferenceSession(str(path), options, providers=providers)
        except _ORT_ERRORS as exc:
            if self.precision == "fp16" and "CUDAExecutionProvider" not in str(self.providers):
                raise RuntimeError(
                    f"{path}: this fp16 export does not run on onnxruntime's CPU provider "
                    f"({exc}); fp16 needs the CUDA provider (device 'cuda' with onnxruntime-gpu) "
                    "— on CPU use an fp32 or int8 export"
                ) from exc
            raise ValueError(f"{path}: not a loadable ONNX model ({exc}); export it again") from exc

    # -- options -------------------------------------------------------------------------------
    def _refusal(self, options: DecodeOptions) -> tuple[str, str] | None:
        """The base refusals, and word timestamps on an export made before the decoder output
        its alignment heads' cross-attention (format 1)."""
        if options.word_timestamps and not self.times_words:
            return "word_timestamps", (
                f"{self.model_dir} is a format {self.config.format_version} ONNX export whose "
                f"decoder has no {ALIGNMENT_OUTPUT} output; re-export this model to get word "
                "timestamps, or set word_timestamps=False"
            )
        return super()._refusal(options)

    # -- model steps ---------------------------------------------------------------------------
    def encode(self, samples: np.ndarray) -> Encoded:
        """16 kHz samples (n <= 480000,) -> log-mel (1, n_mels, 3000) -> cross keys/values."""
        features = self.feature_extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="np")
        mel = np.ascontiguousarray(features.input_features, dtype=np.float32)
        cross_k, cross_v = self.encoder.run(None, {"input_features": mel})
        return Encoded(cross_k, cross_v)

    def _prefill(
        self, encoded: Encoded, ids: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray, Tensor]:
        """Run `ids` (one row) through the decoder, from the longest prefix already cached on
        this window -> (self_k, self_v, last logits (vocab,) as a tensor)."""
        key = tuple(ids)
        if key not in encoded.prefixes:
            known = [p for p in encoded.prefixes if len(p) < len(key) and key[: len(p)] == p]
            base = max(known, key=len, default=())
            c = self.config
            empty = np.zeros((c.n_layers, 1, 0, c.d_model), dtype=np.float32)
            self_k, self_v, _ = encoded.prefixes.get(base, (empty, empty, None))
            state = _State(self.decoder, encoded, self_k, self_v)
            logits = state.step(np.array([key[len(base) :]], dtype=np.int64))[0]
            encoded.prefixes[key] = (state.k, state.v, logits)
        return encoded.prefixes[key]

    def sot_probabilities(self, encoded: Encoded, prompt: Sequence[int] = ()) -> Tensor:
        """Next-token probabilities (vocab,) at <|startoftranscript|> after the prompt (openai)."""
        sot = self.generation_config.decoder_start_token_id
        return self._prefill(encoded, [*prompt, sot])[2].softmax(-1)

    def generate(
        self, encoded: Encoded, options: DecodeOptions, prompt: Sequence[int] = (), t: float = 0
    ) -> WindowDecode:
        """One decode of the window at temperature `t` after the <|startofprev|> `prompt`: beam
        search at t = 0 with beam_size > 1, greedy at t = 0 otherwise, else best_of samples,
        the likeliest kept; timestamps on; <= max_new_tokens (224) new tokens."""
        tokenizer = self.tokenizer(options)
        prefix = (*prompt, *tokenizer.sot_sequence)
        room = self.max_length - len(prefix)
        limit = min(options.max_new_tokens or self.window_token_limit, room)
        count = options.best_of if t > 0 else 1
        search = onnx_search.Search(prefix, tokenizer.eot, limit, t, count, options.beam_size,
                                    options.length_penalty)  # fmt: skip
        processors = self._processors(options, tokenizer, len(prefix))
        self_k, self_v, logits = self._prefill(encoded, prefix)
        logits = logits.clone()  # the window's cached prefix stays untouched
        state = _State(self.decoder, encoded, self_k, self_v)
        if t == 0 and options.beam_size > 1:
            found = [onnx_search.beam_search(state, logits[None], processors, search)]
        else:
            state.select([0] * count)
            found = onnx_search.sample(state, logits.expand(count, -1), processors, search)
        results = [window_decode(h.tokens, h.logprob, tokenizer, t, limit) for h in found]
        return max(results, key=lambda result: result.avg_logprob)

    def _processors(
        self, options: DecodeOptions, tokenizer: Tokenizer, begin: int
    ) -> LogitsProcessorList:
        """transformers' Whisper generate processors, in its order (the penalties first, then
        begin-suppress, suppress and the timestamp rules); `begin`: index of the first new id."""
        processors: list[Any] = []
        if options.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(options.repetition_penalty))
        if options.no_repeat_ngram_size > 0:
            processors.append(NoRepeatNGramLogitsProcessor(options.no_repeat_ngram_size))
        if self.generation_config.begin_suppress_tokens:
            processors.append(SuppressTokensAtBeginLogitsProcessor(
                self.generation_config.begin_suppress_tokens, begin, device="cpu"))  # fmt: skip
        suppress = self.suppress_tokens(options, tokenizer)
        processors.append(SuppressTokensLogitsProcessor(suppress, device="cpu"))
        processors.append(WhisperTimeStampLogitsProcessor(self.generation_config, begin))
        return LogitsProcessorList(processors)

    def align(self, enc: Encoded, tok: Tokenizer, ids: list[int], frames: int) -> list[dict]:
        """Word dicts (word, tokens, start, end in seconds from the window start, probability)
        for the text `ids` on the window's `frames` log-mel frames: one decoder pass over
        `alignment_tokens` from an empty cache, its logits and
        alignment_weights (1, heads, n, 1500) through `windowed.find_alignment`, as the
        transformers engine does."""
        if not ids:
            return []
        sequence = alignment_tokens(tok, ids)
        c = self.config
        empty = np.zeros((c.n_layers, 1, 0, c.d_model), dtype=np.float32)
        feeds = {"input_ids": np.array([sequence], dtype=np.int64), "self_k": empty,
                 "self_v": empty, "cross_k": enc.cross_k, "cross_v": enc.cross_v}  # fmt: skip
        logits, weights = self.decoder.run(["logits", ALIGNMENT_OUTPUT], feeds)
        logits, weights = torch.from_numpy(logits[0]), torch.from_numpy(weights[0])
        return find_alignment(tok, ids, frames, logits, weights, self.median_filter_width)


def _providers(device: str) -> list[str]:
    """onnxruntime providers for a device; RuntimeError when CUDA was asked for but this
    onnxruntime has no CUDA provider."""
    available = ort.get_available_providers()
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise RuntimeError(
                "device 'cuda' was asked for but this onnxruntime has no CUDAExecutionProvider "
                f"(it offers: {', '.join(available)}); install onnxruntime-gpu or use 'cpu'"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda', not {device!r}")
    return ["CPUExecutionProvider"]
