"""The transformers engine: `WhisperForConditionalGeneration` decoding by faster-whisper's rules.

Each window (a VAD span or a fixed window, at most 30 s, capped per language) becomes a log-mel
(`WhisperFeatureExtractor`, zero-padded to 3000 frames), is encoded once and decoded by
`model.generate` at each temperature of the fallback ladder until the guards pass. Within a window
decoding seeks from timestamp to timestamp (openai/whisper); word timings come from DTW over the
alignment heads' cross-attention. Word splitting, punctuation merging and the compression ratio
are faster-whisper's own helpers, so both engines cut text the same way.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, merge_punctuations
from transformers import WhisperForConditionalGeneration, WhisperProcessor
from transformers.modeling_outputs import BaseModelOutput

from utils.audio import (
    CHUNK_LENGTH,
    HOP_LENGTH,
    MAX_DECODER_POSITIONS,
    N_SAMPLES,
    SAMPLE_RATE,
    AudioInput,
    decode_audio,
)
from utils.transcription.options import DecodeOptions, OptionNotSupportedError
from utils.transcription.results import Segment, Timings, TranscriptionResult, Word
from utils.transcription.vocabulary import restricted_suppress_tokens
from utils.transcription.windows import (
    MIN_WINDOW_SECONDS,
    WINDOW_TOKEN_LIMIT,
    fixed_windows,
    max_window_seconds,
    split_at_quietest,
)
from utils.vad import detect_speech

ProgressCallback = Callable[[float], None]  # fraction done in [0, 1]
ENGINE = "the transformers engine"
TIME_PRECISION = 0.02  # seconds per timestamp token and per encoder position
MAX_PROMPT_TOKENS = MAX_DECODER_POSITIONS // 2 - 1  # 223, as faster-whisper
PROMPT_RESET_TEMPERATURE = 0.5  # faster-whisper's prompt_reset_on_temperature
MIN_CHUNK_SECONDS = 0.1  # a window remainder shorter than this is not decoded
PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS = "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、"
SENTENCE_END_MARKS = ".。!！?？"


@dataclasses.dataclass(frozen=True)
class WindowDecode:
    """The decode kept for one window. tokens: generated ids, timestamps included, prompt and
    <|endoftext|> excluded; avg_logprob: mean natural-log probability per token, the end token
    counted (openai/whisper); compression_ratio: of the text (zlib)."""

    tokens: tuple[int, ...]
    avg_logprob: float
    compression_ratio: float
    temperature: float
    hit_limit: bool  # the token budget ran out before <|endoftext|>


@dataclasses.dataclass
class _Piece:
    """A timestamp-delimited segment in the making; times in seconds from its window's start."""

    start: float
    end: float
    tokens: list[int]
    words: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Job:
    """One pass over a file's spans: audio, options, tokenizer and the conditioning text."""

    samples: np.ndarray  # 16 kHz mono float32, shape (n,)
    options: DecodeOptions  # language set
    tokenizer: Tokenizer
    progress: ProgressCallback | None  # called with seconds decoded so far
    all_tokens: list[int]  # initial prompt, then every kept segment's tokens
    reset_since: int = 0  # the prompt uses all_tokens[reset_since:]


class TransformersEngine:
    """Transcribes with a transformers Whisper directory (model, processor, generation config).

    Precision: on CUDA float16 (float32 or bfloat16 when named); on CPU always float32, whatever
    `compute_type` asks ("int8" included: no torch int8 path matches CTranslate2), and
    `compute_type` then reports "float32". `patience` != 1 and `hallucination_silence_threshold`
    raise `OptionNotSupportedError`; every other `DecodeOptions` field is honoured.
    """

    kind = "transformers"

    def __init__(self, model_dir: str | Path, device: str = "cpu", compute_type: str = "float32"):
        started = time.perf_counter()
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA GPU; use 'cpu'")
        self.model_dir, self.device = Path(model_dir), device
        self.dtype = _torch_dtype(device, compute_type)
        self.compute_type = str(self.dtype).removeprefix("torch.")
        model = WhisperForConditionalGeneration.from_pretrained(str(model_dir), dtype=self.dtype)
        self.model = model.to(device).eval()
        processor = WhisperProcessor.from_pretrained(str(model_dir))
        self.feature_extractor, self.hf_tokenizer = processor.feature_extractor, processor.tokenizer
        config, dims = self.model.generation_config, self.model.config
        self.languages = {token.strip("<|>"): i for token, i in (config.lang_to_id or {}).items()}
        self.multilingual = bool(getattr(config, "is_multilingual", False) and self.languages)
        self.default_suppress_tokens = tuple(config.suppress_tokens or ())
        layers, heads = dims.decoder_layers, dims.decoder_attention_heads
        self.alignment_heads = [tuple(pair) for pair in getattr(config, "alignment_heads", [])] or [
            (layer, head) for layer in range(layers // 2, layers) for head in range(heads)
        ]
        self.window_token_limit = WINDOW_TOKEN_LIMIT
        self._attention_lock = threading.Lock()
        self._restrict_cache: dict[tuple[str, ...], tuple[int, ...]] = {}
        self.load_seconds = time.perf_counter() - started

    # -- options -----------------------------------------------------------------------------
    def check_options(self, options: DecodeOptions) -> None:
        """Raise `OptionNotSupportedError`, naming the option, for what this engine cannot do."""
        refusals = {
            "patience": options.patience != 1.0
            and "transformers' beam search has no patience factor (it stops once beam_size "
            "hypotheses finish, as patience 1.0 does)",
            "hallucination_silence_threshold": options.hallucination_silence_threshold is not None
            and "not implemented here; leave it None or use the ctranslate2 engine",
            "task": not self.multilingual
            and options.task != "transcribe"
            and "an English-only model cannot translate",
            "language": options.language not in (None, *(self.languages or ["en"]))
            and (f"{options.language!r} is not a language of this model"),
        }
        for name, why in refusals.items():
            if why:
                raise OptionNotSupportedError(f"{name} is not supported by {ENGINE}: {why}")

    def suppress_tokens(self, options: DecodeOptions, tokenizer: Tokenizer) -> list[int]:
        """Ids never generated: the listed ids (-1: the generation config's default list), the
        task/start/no-speech specials (as faster-whisper) and, in restrict mode, every text token
        that cannot spell the vocabulary words."""
        ids = [t for t in options.suppress_tokens if t >= 0]
        if -1 in options.suppress_tokens:
            ids.extend(self.default_suppress_tokens)
        t = tokenizer
        ids.extend([t.transcribe, t.translate, t.sot, t.sot_prev, t.sot_lm, t.no_speech])
        words = options.vocabulary
        if options.vocabulary_mode == "restrict" and words:
            if words not in self._restrict_cache:
                self._restrict_cache[words] = restricted_suppress_tokens(t.tokenizer, words)
            ids.extend(self._restrict_cache[words])
        return sorted(set(ids))

    def tokenizer(self, options: DecodeOptions) -> Tokenizer:
        """faster-whisper's tokenizer view (sot sequence, word splitting); needs the language."""
        language = options.language if self.multilingual else None
        backend = self.hf_tokenizer.backend_tokenizer
        return Tokenizer(backend, self.multilingual, options.task, language)

    # -- one file ------------------------------------------------------------------------------
    def transcribe(
        self,
        audio: AudioInput,
        options: DecodeOptions | None = None,
        progress: ProgressCallback | None = None,
        source: str = "",
    ) -> TranscriptionResult:
        """Transcribe one input; windows are VAD spans (or fixed windows) capped per language."""
        options = options or DecodeOptions()
        self.check_options(options)
        started = time.perf_counter()
        decoded = decode_audio(audio)
        samples, duration = decoded.samples, decoded.samples.size / SAMPLE_RATE
        segments: list[Segment] = []
        with torch.inference_mode():
            language, probability = options.language, 1.0
            if language is None:
                language, probability = self.detect_language(samples, options)
            if language is not None:
                options = dataclasses.replace(options, language=language)
                window = max_window_seconds(language, self.window_token_limit)
                report = (lambda s: progress(min(0.99, s / duration))) if progress else None
                segments = self._transcribe_windows(
                    samples, options, self._spans(samples, options, window), report
                )
        if progress:
            progress(1.0)
        return TranscriptionResult(
            text="".join(segment.text for segment in segments).strip(),
            segments=tuple(segments),
            language=language or "",
            language_probability=float(probability),
            duration=duration,
            timings=Timings(load=self.load_seconds, decode=time.perf_counter() - started),
            audio_info=decoded.info,
            source=source or (str(audio) if isinstance(audio, (str, Path)) else ""),
        )

    def detect_language(
        self, samples: np.ndarray, options: DecodeOptions
    ) -> tuple[str | None, float]:
        """Language and its probability from the first 30 s of speech; (None, 0) without speech.
        The probability is a softmax over the language tokens after <|startoftranscript|>."""
        if not self.multilingual:
            return "en", 1.0
        speech = samples
        if options.vad_filter:
            spans = detect_speech(samples, options.vad)
            pieces = [samples[int(s.start * SAMPLE_RATE) : int(s.end * SAMPLE_RATE)] for s in spans]
            speech = np.concatenate(pieces) if pieces else samples[:0]
        if speech.size == 0:
            return None, 0.0
        encoded = self.encode(self.log_mel(speech[:N_SAMPLES]))
        logits, _ = self._decoder(encoded, [self.model.generation_config.decoder_start_token_id])
        probabilities = logits[-1, list(self.languages.values())].softmax(-1)
        best = int(probabilities.argmax())
        return list(self.languages)[best], float(probabilities[best])

    # -- model steps ---------------------------------------------------------------------------
    def log_mel(self, samples: np.ndarray) -> torch.Tensor:
        """16 kHz samples, shape (n <= 480000,) -> log-mel (1, n_mels, 3000), padded to 30 s."""
        features = self.feature_extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        return features.input_features.to(self.device, self.dtype)

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Log-mel (1, n_mels, 3000) -> encoder states (1, 1500, d_model)."""
        return self.model.model.encoder(features).last_hidden_state

    def _decoder(
        self, encoded: torch.Tensor, tokens: Sequence[int], attentions: bool = False
    ) -> tuple[torch.Tensor, Any]:
        """Teacher-forced pass: float32 logits (len(tokens), vocab) and the cross-attentions."""
        ids = torch.tensor([list(tokens)], device=self.device)
        out = self.model.model.decoder(
            input_ids=ids, encoder_hidden_states=encoded, output_attentions=attentions
        )
        return self.model.proj_out(out.last_hidden_state)[0].float(), out.cross_attentions

    def no_speech_probability(
        self, encoded: torch.Tensor, prompt: Sequence[int], tokenizer: Tokenizer
    ) -> float:
        """P(<|nospeech|>) at the <|startoftranscript|> position after the prompt (openai)."""
        logits, _ = self._decoder(encoded, [*prompt, tokenizer.sot])
        return float(logits[-1].softmax(-1)[tokenizer.no_speech])

    def generate(
        self,
        encoded: torch.Tensor,
        options: DecodeOptions,
        prompt: Sequence[int] = (),
        temperature: float = 0.0,
    ) -> WindowDecode:
        """One `model.generate` call on one window's encoder states (1, 1500, d_model).

        `prompt`: the <|startofprev|> part before the sot sequence. At temperature 0: beam search
        (num_beams=beam_size; early stopping = patience 1.0); above 0: best_of samples, and the
        one with the highest avg_logprob is kept. Timestamp tokens are always generated.
        """
        tokenizer = self.tokenizer(options)
        prefix = [*prompt, *tokenizer.sot_sequence]
        limit = options.max_new_tokens or self.window_token_limit
        limit = min(limit, MAX_DECODER_POSITIONS - len(prefix))
        count = options.best_of if temperature > 0 else 1
        config = copy.deepcopy(self.model.generation_config)
        config.update(
            num_beams=1 if temperature > 0 else options.beam_size,
            early_stopping=True,
            length_penalty=options.length_penalty,
            repetition_penalty=options.repetition_penalty,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
            max_new_tokens=limit,
            suppress_tokens=self.suppress_tokens(options, tokenizer),
            num_return_sequences=1,
        )
        task = {"language": options.language, "task": options.task} if self.multilingual else {}
        out = self.model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoded.expand(count, -1, -1)),
            generation_config=config,
            temperature=temperature,
            prompt_ids=torch.tensor(list(prompt), device=self.device) if prompt else None,
            return_timestamps=True,
            return_dict_in_generate=True,
            output_scores=True,
            force_unique_generate_call=True,
            **task,
        )
        if out.sequences[0, : len(prefix)].tolist() != prefix:
            raise RuntimeError(f"{ENGINE}: generate did not start from the prompt {prefix}")
        scores = torch.stack(out.scores, dim=1).float()  # (count, steps, vocab), processed
        candidates = [
            _candidate(out.sequences[i, len(prefix) :], scores[i], tokenizer, temperature, limit)
            for i in range(count)
        ]
        return max(candidates, key=lambda c: c.avg_logprob)

    def decode_with_fallback(
        self, encoded: torch.Tensor, options: DecodeOptions, prompt: Sequence[int], no_speech: float
    ) -> WindowDecode:
        """Try each temperature until the guards pass (faster-whisper's rules). When all fail:
        the likeliest decode under the compression threshold, labelled with the last temperature."""
        results: list[WindowDecode] = []
        ratio_limit, logprob_limit = options.compression_ratio_threshold, options.log_prob_threshold
        for temperature in options.temperature:
            result = self.generate(encoded, options, prompt, temperature)
            results.append(result)
            repetitive = ratio_limit is not None and result.compression_ratio > ratio_limit
            unlikely = logprob_limit is not None and result.avg_logprob < logprob_limit
            silent = (
                options.no_speech_threshold is not None and no_speech > options.no_speech_threshold
            )
            if not (repetitive or unlikely) or (silent and unlikely):
                return result
        below = [r for r in results if ratio_limit is None or r.compression_ratio <= ratio_limit]
        best = max(below or results, key=lambda r: r.avg_logprob)
        return dataclasses.replace(best, temperature=options.temperature[-1])

    # -- windows -------------------------------------------------------------------------------
    def _spans(
        self, samples: np.ndarray, options: DecodeOptions, window: float
    ) -> list[tuple[float, float]]:
        if options.vad_filter:
            vad = dataclasses.replace(options.vad, max_speech_duration_s=window)
            return [(span.start, span.end) for span in detect_speech(samples, vad)]
        return fixed_windows(samples.size / SAMPLE_RATE, window)

    def _transcribe_windows(
        self,
        samples: np.ndarray,
        options: DecodeOptions,
        spans: list[tuple[float, float]],
        progress: ProgressCallback | None,
    ) -> list[Segment]:
        """Decode each (start, end) span in seconds; a span whose decode hit the token limit is
        cut at its quietest point and decoded again, down to `MIN_WINDOW_SECONDS`."""
        tokenizer = self.tokenizer(options)
        prompt = options.initial_prompt
        initial = tokenizer.encode(" " + prompt.strip()) if prompt else []
        job = _Job(samples, options, tokenizer, progress, list(initial))
        segments, overflowed = [], []
        for span in spans:
            found, overflow = self._decode_span(job, span)
            segments.extend(found)
            if overflow and options.max_new_tokens is None:  # a user's own cap cuts on purpose
                overflowed.append(span)
        redo = [s for s in overflowed if s[1] - s[0] > 2 * MIN_WINDOW_SECONDS]
        if not redo:
            return segments
        kept = [seg for seg in segments if not any(a <= seg.window_start < b for a, b in redo)]
        halves = [half for span in redo for half in split_at_quietest(samples, span)]
        kept.extend(self._transcribe_windows(samples, options, halves, None))
        return sorted(kept, key=lambda seg: seg.start)

    @staticmethod
    def _prompt(job: _Job) -> list[int]:
        """faster-whisper's get_prompt (no prefix): <|startofprev|> + hotwords + previous text,
        capped together at 223 tokens."""
        hotwords, tokenizer = job.options.effective_hotwords, job.tokenizer
        hot = tokenizer.encode(" " + hotwords.strip())[:MAX_PROMPT_TOKENS] if hotwords else []
        room = MAX_PROMPT_TOKENS - len(hot)
        previous = job.all_tokens[job.reset_since :][-room:] if room > 0 else []
        return [tokenizer.sot_prev, *hot, *previous] if hot or previous else []

    def _decode_span(self, job: _Job, span: tuple[float, float]) -> tuple[list[Segment], bool]:
        """Decode one span, seeking to the last complete timestamp pair after each window;
        returns its segments and whether a decode ran out of tokens."""
        (seek, end), options, tokenizer = span, job.options, job.tokenizer
        segments: list[Segment] = []
        overflow = False
        while end - seek > MIN_CHUNK_SECONDS:
            chunk_end = min(end, seek + CHUNK_LENGTH)
            chunk = job.samples[round(seek * SAMPLE_RATE) : round(chunk_end * SAMPLE_RATE)]
            encoded = self.encode(self.log_mel(chunk))
            prompt = self._prompt(job)
            no_speech = self.no_speech_probability(encoded, prompt, tokenizer)
            result = self.decode_with_fallback(encoded, options, prompt, no_speech)
            overflow |= result.hit_limit
            threshold, logprob_limit = options.no_speech_threshold, options.log_prob_threshold
            if (threshold is not None and no_speech > threshold) and (
                logprob_limit is None or result.avg_logprob <= logprob_limit
            ):
                seek = chunk_end  # silence: openai/whisper's no-speech skip
                continue
            pieces, consumed = _split_by_timestamps(
                list(result.tokens), tokenizer.timestamp_begin, chunk_end - seek
            )
            pieces = [p for p in pieces if p.start != p.end and tokenizer.decode(p.tokens).strip()]
            if options.word_timestamps:
                last_end = segments[-1].end - seek if segments else 0.0
                self._add_words(pieces, tokenizer, encoded, chunk.size // HOP_LENGTH, last_end)
            segments.extend(
                _segment(p, seek, chunk_end, tokenizer, result, no_speech) for p in pieces
            )
            job.all_tokens.extend(t for p in pieces for t in p.tokens)
            if (
                not options.condition_on_previous_text
                or result.temperature > PROMPT_RESET_TEMPERATURE
            ):
                job.reset_since = len(job.all_tokens)
            seek += consumed
            if job.progress:
                job.progress(seek)
        return segments, overflow

    # -- word timestamps -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _eager_attention(self) -> Iterator[None]:
        """Attention weights need the eager kernel (sdpa returns none): switch for one pass."""
        with self._attention_lock:
            config = self.model.config
            previous, config._attn_implementation = config._attn_implementation, "eager"
            try:
                yield
            finally:
                config._attn_implementation = previous

    def align(
        self, encoded: torch.Tensor, tokenizer: Tokenizer, text_tokens: list[int], frames: int
    ) -> list[dict[str, Any]]:
        """Words of `text_tokens` with start/end (seconds from the window start) and probability,
        by DTW over the alignment heads' cross-attention on the window's `frames` log-mel frames
        (openai/whisper's find_alignment)."""
        if not text_tokens:
            return []
        sot, eot = len(tokenizer.sot_sequence), tokenizer.eot
        sequence = [*tokenizer.sot_sequence, tokenizer.no_timestamps, *text_tokens, eot]
        with self._eager_attention():
            logits, cross = self._decoder(encoded, sequence, attentions=True)
        probs = logits[sot : sot + len(text_tokens), :eot].softmax(-1)
        token_probs = probs[torch.arange(len(text_tokens)), text_tokens].cpu().numpy()
        weights = torch.stack([cross[layer][0, head] for layer, head in self.alignment_heads])
        weights = weights.float()[:, :, : max(1, frames // 2)]  # 2 frames per encoder position
        weights = weights / weights.sum(-1, keepdim=True)  # = softmax over the audio frames only
        std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
        weights = _median_filter((weights - mean) / std, self.model.config.median_filter_width)
        text_indices, time_indices = _dtw(-weights.mean(0)[sot:-1].double().cpu().numpy())
        words, word_tokens = tokenizer.split_to_word_tokens([*text_tokens, eot])
        if len(word_tokens) <= 1:
            return []
        bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
        jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
        times = time_indices[jumps] * TIME_PRECISION
        return [
            {"word": w, "tokens": t, "start": float(times[i]), "end": float(times[j]),
             "probability": float(np.mean(token_probs[i:j]))}
            for w, t, i, j in zip(words, word_tokens, bounds[:-1], bounds[1:], strict=False)
        ]  # fmt: skip

    def _add_words(
        self, pieces: list[_Piece], tokenizer: Tokenizer, encoded: torch.Tensor, frames: int,
        last_end: float,
    ) -> None:  # fmt: skip
        """Align a window's text and give each piece its words (seconds from the window start),
        with faster-whisper's add_word_timestamps clamps; `last_end`: previous speech end."""
        text = [[t for t in p.tokens if t < tokenizer.eot] for p in pieces]
        alignment = self.align(encoded, tokenizer, [t for tokens in text for t in tokens], frames)
        durations = np.array([w["end"] - w["start"] for w in alignment])
        durations = durations[durations.nonzero()]
        median = min(0.7, float(np.median(durations))) if len(durations) else 0.0
        for i in range(1, len(alignment) if len(durations) else 0):
            if alignment[i]["end"] - alignment[i]["start"] > 2 * median:
                if alignment[i]["word"] in SENTENCE_END_MARKS:
                    alignment[i]["end"] = alignment[i]["start"] + 2 * median
                elif alignment[i - 1]["word"] in SENTENCE_END_MARKS:
                    alignment[i]["start"] = alignment[i]["end"] - 2 * median
        merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
        index = 0
        for piece, tokens in zip(pieces, text, strict=True):
            saved = 0
            while index < len(alignment) and saved < len(tokens):
                if alignment[index]["word"]:
                    piece.words.append(alignment[index])
                saved += len(alignment[index]["tokens"])
                index += 1
            if piece.words:
                _fit_piece(piece, median, last_end)
                last_end = piece.end


def _candidate(
    sequence: torch.Tensor,
    scores: torch.Tensor,
    tokenizer: Tokenizer,
    temperature: float,
    limit: int,
) -> WindowDecode:
    """Generated ids (steps,) and their processed step scores (steps, vocab) -> WindowDecode."""
    tokens = sequence.tolist()
    ended = tokenizer.eot in tokens
    tokens = tokens[: tokens.index(tokenizer.eot)] if ended else tokens
    scored = [*tokens, tokenizer.eot] if ended else tokens
    steps = scores[: len(scored)] * (temperature if temperature > 0 else 1.0)  # undo the warper
    chosen = torch.tensor(scored, device=steps.device)[:, None]
    logprob = float(steps.log_softmax(-1).gather(-1, chosen).sum())
    return WindowDecode(
        tokens=tuple(tokens),
        avg_logprob=logprob / (len(tokens) + 1),
        compression_ratio=get_compression_ratio(tokenizer.decode(tokens).strip()),
        temperature=temperature,
        hit_limit=not ended and len(tokens) >= limit,
    )


def _segment(
    piece: _Piece, seek: float, chunk_end: float, tokenizer: Tokenizer, result: WindowDecode,
    no_speech: float,
) -> Segment:  # fmt: skip
    """A finished piece of the window starting at `seek` seconds -> Segment (absolute times)."""
    return Segment(
        start=round(seek + piece.start, 3),
        end=round(min(seek + piece.end, chunk_end), 3),
        text=tokenizer.decode(piece.tokens),
        avg_logprob=result.avg_logprob,
        no_speech_prob=no_speech,
        compression_ratio=result.compression_ratio,
        temperature=result.temperature,
        words=tuple(
            Word(
                round(seek + w["start"], 2), round(seek + w["end"], 2), w["word"], w["probability"]
            )
            for w in piece.words
        ),
        tokens=tuple(piece.tokens),
        window_start=seek,
    )


def _fit_piece(piece: _Piece, median: float, last_end: float) -> None:
    """faster-whisper's clamps: shorten an over-long first word after a pause and let the words
    set the piece's edges unless a word overshoots them by more than 0.5 s (seconds)."""
    words, longest = piece.words, 2 * median
    first, second = words[0], words[1] if len(words) > 1 else None
    too_long = first["end"] - first["start"] > longest or (
        second is not None and second["end"] - first["start"] > longest * 2
    )
    if first["end"] - last_end > median * 4 and too_long:
        if second is not None and second["end"] - second["start"] > longest:
            first["end"] = second["start"] = max(second["end"] / 2, second["end"] - longest)
        first["start"] = max(0.0, first["end"] - longest)
    if piece.start < first["end"] and piece.start - 0.5 > first["start"]:
        first["start"] = max(0.0, min(first["end"] - median, piece.start))
    else:
        piece.start = first["start"]
    if piece.end > words[-1]["start"] and piece.end + 0.5 < words[-1]["end"]:
        words[-1]["end"] = max(words[-1]["start"] + median, piece.end)
    else:
        piece.end = words[-1]["end"]


def _split_by_timestamps(
    tokens: list[int], timestamp_begin: int, seconds: float
) -> tuple[list[_Piece], float]:
    """A window's generated tokens -> pieces, and the seconds of the window they cover (to the
    last complete timestamp pair, or all `seconds` when the decode ended on one timestamp)."""
    stamps = [t >= timestamp_begin for t in tokens]
    consecutive = [i for i in range(1, len(tokens)) if stamps[i] and stamps[i - 1]]
    if not consecutive:
        times = [t for t in tokens if t >= timestamp_begin]
        last = (times[-1] - timestamp_begin) * TIME_PRECISION if times else 0.0
        return [_Piece(0.0, last or seconds, tokens)], seconds
    single_ending = stamps[-2:] == [False, True]
    pieces, last = [], 0
    for current in consecutive + ([len(tokens)] if single_ending else []):
        sliced = tokens[last:current]
        start, end = ((sliced[k] - timestamp_begin) * TIME_PRECISION for k in (0, -1))
        pieces.append(_Piece(start, end, sliced))
        last = current
    covered = (tokens[last - 1] - timestamp_begin) * TIME_PRECISION
    return pieces, seconds if single_ending or covered <= 0 else min(covered, seconds)


def _median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Median over the last axis of (heads, tokens, frames), reflect-padded (odd `width`)."""
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    padded = torch.nn.functional.pad(x, (pad, pad), mode="reflect")
    return padded.unfold(-1, width, 1).sort()[0][..., pad]


def _dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """openai/whisper's dynamic time warping over `cost` (tokens, frames), vectorised along the
    anti-diagonals; returns the path as (token indices, frame indices)."""
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    trace = np.full((n + 1, m + 1), -1, dtype=np.int8)
    for d in range(2, n + m + 1):
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        c0, c1, c2 = total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]
        step = np.where((c0 < c1) & (c0 < c2), 0, np.where((c1 < c0) & (c1 < c2), 1, 2))
        total[i, j] = cost[i - 1, j - 1] + np.choose(step, [c0, c1, c2])
        trace[i, j] = step
    trace[0, :], trace[:, 0] = 2, 1
    i, j, path = n, m, []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        step = trace[i, j]
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    indices = np.array(path[::-1])
    return indices[:, 0], indices[:, 1]


def _torch_dtype(device: str, compute_type: str) -> torch.dtype:
    """CPU: float32 always. CUDA: float32/bfloat16 when named, else float16 (int8 included)."""
    if device != "cuda":
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(compute_type, torch.float16)
