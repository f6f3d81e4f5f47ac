"""The transformers engine: `WhisperForConditionalGeneration` decoding by faster-whisper's rules.

Each window (VAD span or fixed window, <= 30 s, capped per language) is turned into a log-mel
(`WhisperFeatureExtractor`), encoded once and decoded by `model.generate` along the temperature
ladder; word timings come from DTW over the alignment heads' cross-attention. The windowing,
seeking, prompts and fallback rules live in `WindowedEngine` (utils/transcription/windowed.py),
shared with the ONNX engine; this module holds the torch model steps.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from faster_whisper.tokenizer import Tokenizer
from torch import Tensor
from transformers import WhisperForConditionalGeneration, WhisperProcessor
from transformers.modeling_outputs import BaseModelOutput

from utils.audio import SAMPLE_RATE
from utils.transcription import windows
from utils.transcription.options import DecodeOptions
from utils.transcription.windowed import (  # noqa: F401  (the rest re-exported: callers import them here)
    TIME_PRECISION,
    WindowDecode,
    WindowedEngine,
    _candidate,
    _Job,
    _Piece,
    _segment,
    _split,
    alignment_heads,
    alignment_tokens,
    find_alignment,
)

ENGINE = "the transformers engine"


class TransformersEngine(WindowedEngine):
    """Transcribes with a multilingual transformers Whisper directory (model, processor,
    generation config with lang_to_id and alignment heads). float16 on CUDA (float32/bfloat16
    when named); always float32 on CPU, "int8" included (no torch int8 path matches CTranslate2),
    and `compute_type` then says "float32". The encoder keeps SDPA attention; the decoder runs
    eager attention, whose weights time the words. `patience` != 1 and
    `hallucination_silence_threshold` raise `OptionNotSupportedError`.
    """

    kind = "transformers"
    engine_name = ENGINE

    def __init__(self, model_dir: str | Path, device: str = "cpu", compute_type: str = "float32"):
        started = time.perf_counter()
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA GPU; use 'cpu'")
        self.model_dir, self.device = Path(model_dir), device
        self.dtype = _torch_dtype(device, compute_type)
        self.compute_type = str(self.dtype).removeprefix("torch.")
        model = WhisperForConditionalGeneration.from_pretrained(str(model_dir), dtype=self.dtype)
        self.model, dims = model.to(device).eval(), model.config
        eager = copy.copy(dims)
        eager._attn_implementation = "eager"  # the decoder alone: see the class docstring
        for module in (m for m in self.model.model.decoder.modules() if hasattr(m, "config")):
            module.config = eager
        processor = WhisperProcessor.from_pretrained(str(model_dir))
        self.feature_extractor, self.hf_tokenizer = processor.feature_extractor, processor.tokenizer
        config, layers = self.model.generation_config, dims.decoder_layers
        self.languages = {token.strip("<|>"): i for token, i in (config.lang_to_id or {}).items()}
        if not self.languages:
            raise ValueError(f"{model_dir}: {ENGINE} needs a multilingual model (lang_to_id)")
        self.default_suppress_tokens = tuple(config.suppress_tokens or ())
        self.alignment_heads = alignment_heads(config, layers, dims.decoder_attention_heads)
        self.max_length = dims.max_target_positions  # decoder positions: 448
        self.window_token_limit = windows.WINDOW_TOKEN_LIMIT  # new tokens per window: 224
        self.read_tokenizer()
        self.load_seconds = time.perf_counter() - started

    # -- model steps ---------------------------------------------------------------------------
    @torch.inference_mode()  # callable outside transcribe (detect_language)
    def encode(self, samples: np.ndarray) -> Tensor:
        """16 kHz samples (n <= 480000,) -> log-mel (1, n_mels, 3000) -> states (1, 1500, d)."""
        features = self.feature_extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        return self.model.model.encoder(features.input_features.to(self.device, self.dtype))[0]

    @torch.inference_mode()  # callable outside transcribe (detect_language)
    def _decoder(
        self, states: Tensor, tokens: Sequence[int], attentions: bool = False
    ) -> tuple[Tensor, Any]:
        """Teacher-forced pass: float32 logits (n, vocab), cross-attention (1, heads, n, 1500)."""
        ids = torch.tensor([list(tokens)], device=self.device)
        out = self.model.model.decoder(ids, None, states, output_attentions=attentions)
        return self.model.proj_out(out.last_hidden_state)[0].float(), out.cross_attentions

    def sot_probabilities(self, encoded: Tensor, prompt: Sequence[int] = ()) -> Tensor:
        """Next-token probabilities (vocab,) at <|startoftranscript|> after the prompt (openai)."""
        sot = self.model.generation_config.decoder_start_token_id
        return self._decoder(encoded, [*prompt, sot])[0][-1].softmax(-1)

    @torch.inference_mode()  # callable outside transcribe (detect_language)
    def generate(
        self, states: Tensor, options: DecodeOptions, prompt: Sequence[int] = (), t: float = 0
    ) -> WindowDecode:
        """One `model.generate` call at temperature `t` on encoder states (1, 1500, d_model) after
        the <|startofprev|> `prompt`: beam search at t = 0 (early stopping = patience 1), else
        best_of samples, the likeliest kept; timestamps on; <= max_new_tokens (224) new tokens."""
        tokenizer, count = self.tokenizer(options), options.best_of if t > 0 else 1
        prefix = [*prompt, *tokenizer.sot_sequence]
        room = self.max_length - len(prefix)
        limit = min(options.max_new_tokens or self.window_token_limit, room)
        out = self.model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=states.expand(count, -1, -1)),
            language=options.language,
            task=options.task,
            temperature=t,
            prompt_ids=torch.tensor(list(prompt), device=self.device) if prompt else None,
            num_beams=1 if t > 0 else options.beam_size,
            early_stopping=True,
            length_penalty=options.length_penalty,
            repetition_penalty=options.repetition_penalty,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
            max_new_tokens=limit,
            suppress_tokens=self.suppress_tokens(options, tokenizer),
            return_timestamps=True,
            return_dict_in_generate=True,
            output_scores=True,
            force_unique_generate_call=True,
        )
        scores = torch.stack(out.scores, dim=1).float()  # (count, steps, vocab), processed
        new = out.sequences[:, len(prefix) :]
        results = [_candidate(new[i], scores[i], tokenizer, t, limit) for i in range(count)]
        return max(results, key=lambda result: result.avg_logprob)

    # -- word timestamps -------------------------------------------------------------------------
    def align(self, enc: Tensor, tok: Tokenizer, ids: list[int], frames: int) -> list[dict]:
        """Word dicts (word, tokens, start, end in seconds from the window start, probability)
        for the text `ids`, by DTW over the alignment heads' cross-attention on the window's
        `frames` log-mel frames (`windowed.find_alignment`)."""
        if not ids:
            return []
        sequence = alignment_tokens(tok, ids)
        logits, cross = self._decoder(enc, sequence, attentions=True)
        weights = torch.stack([cross[layer][0, head] for layer, head in self.alignment_heads])
        width = self.model.config.median_filter_width
        return find_alignment(tok, ids, frames, logits, weights, width)


def _torch_dtype(device: str, compute_type: str) -> torch.dtype:
    """CPU: float32 always. CUDA: float32/bfloat16 when named, else float16 (int8 included)."""
    if device != "cuda":
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(compute_type, torch.float16)
