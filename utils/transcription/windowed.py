"""`WindowedEngine`: faster-whisper's decoding rules over any Whisper model's steps.

A file is cut into windows (VAD spans or fixed windows, <= 30 s, capped per language); each
window is encoded once and decoded along the temperature ladder, seeking from timestamp to
timestamp (openai/whisper). Subclasses supply the four model steps: `encode`, `sot_probabilities`,
`generate` and `align` (whose DTW, `find_alignment`, is shared too); everything else here is
model-independent. Tokenizer views, word splitting, punctuation merging and the compression
ratio are faster-whisper's own helpers, so all engines cut text alike.
"""

from __future__ import annotations

import abc
import dataclasses
import itertools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, merge_punctuations
from torch import Tensor
from transformers.models.whisper.generation_whisper import _dynamic_time_warping, _median_filter

from utils.audio import CHUNK_LENGTH, HOP_LENGTH, SAMPLE_RATE, AudioInput, decode_audio
from utils.geez_vocab.alphabet import ethiopic_token_ids, foreign_script_suppression
from utils.transcription import windows
from utils.transcription.guards import drop_hallucinations
from utils.transcription.options import DecodeOptions, OptionNotSupportedError
from utils.transcription.results import Segment, Timings, TranscriptionResult, Word
from utils.transcription.vocabulary import restricted_suppress_tokens
from utils.vad import detect_speech, speech_only

Progress = Callable[[float], None] | None  # gets the fraction done in [0, 1] (_Job: seconds)
Detected = tuple[str | None, float]  # language code (None: no speech) and its probability
TIME_PRECISION = 0.02  # seconds per timestamp step and per encoder position
RESET_TEMPERATURE = 0.5  # faster-whisper's prompt_reset_on_temperature
PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS = "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、"


@dataclasses.dataclass(frozen=True)
class WindowDecode:
    """The decode kept for one window. tokens: generated ids with timestamps, without prompt and
    <|endoftext|>; avg_logprob: natural-log probability per token, the end token counted."""

    tokens: tuple[int, ...]
    avg_logprob: float
    compression_ratio: float  # of the text, zlib
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
    progress: Progress
    all_tokens: list[int]  # initial prompt, then every kept segment's tokens
    reset_since: int = 0  # the prompt conditions on all_tokens[reset_since:]


class WindowedEngine(abc.ABC):
    """The model-independent half of an engine. A subclass sets, before use: `engine_name`
    (for messages), `hf_tokenizer` (a transformers Whisper tokenizer), `languages` (code -> id),
    `default_suppress_tokens`, `max_length` (decoder positions, 448), `window_token_limit`
    (new tokens per window, 224), `load_seconds`, and calls `read_tokenizer()` (for
    `token_rates`, `ethiopic_ids` and an empty `_restrict_cache`); and implements the model steps.
    `patience` != 1 and `hallucination_silence_threshold` raise `OptionNotSupportedError`.
    """

    engine_name = "this engine"
    hf_tokenizer: Any
    languages: dict[str, int]
    default_suppress_tokens: tuple[int, ...]
    max_length: int
    window_token_limit: int
    token_rates: dict[str, float]  # tokens per second of speech, per language (the model's own)
    ethiopic_ids: tuple[int, ...]  # a Ge'ez vocabulary's tokens, kept out of other languages
    load_seconds: float
    _restrict_cache: dict[tuple[str, ...], tuple[int, ...]]  # vocabulary -> suppressed ids

    def read_tokenizer(self) -> None:
        """What decoding needs to know of `hf_tokenizer`'s vocabulary (set it first): the
        model's own token rates and, for a Ge'ez vocabulary, its Ethiopic tokens. The
        suppressed ids of restricted vocabularies are cached per tokenizer, so start afresh."""
        self.token_rates = windows.model_token_rates(self.hf_tokenizer)
        self.ethiopic_ids = ethiopic_token_ids(self.hf_tokenizer.get_vocab())
        self._restrict_cache = {}

    # -- model steps (subclasses) ----------------------------------------------------------------
    @abc.abstractmethod
    def encode(self, samples: np.ndarray) -> Any:
        """16 kHz samples (n <= 480000,) -> the window's encoding, opaque to this class."""

    @abc.abstractmethod
    def sot_probabilities(self, encoded: Any, prompt: Sequence[int] = ()) -> Tensor:
        """Next-token probabilities (vocab,) at <|startoftranscript|> after the prompt (openai)."""

    @abc.abstractmethod
    def generate(
        self, encoded: Any, options: DecodeOptions, prompt: Sequence[int] = (), t: float = 0
    ) -> WindowDecode:
        """One decode of a window at temperature `t` after the <|startofprev|> `prompt`."""

    @abc.abstractmethod
    def align(self, enc: Any, tok: Tokenizer, ids: list[int], frames: int) -> list[dict]:
        """Word dicts (word, tokens, start, end in s from the window start, probability)."""

    # -- options -----------------------------------------------------------------------------
    def _refusal(self, options: DecodeOptions) -> tuple[str, str] | None:
        """(option name, why) for the first option this engine cannot honour, else None."""
        if options.patience != 1.0:
            return "patience", "its beam search has no patience factor"
        if options.hallucination_silence_threshold is not None:
            return "hallucination_silence_threshold", "unsupported here; use a CTranslate2 model"
        if options.language not in (None, *self.languages):
            return "language", f"{options.language!r} is not a language of this model"
        return None

    def check_options(self, options: DecodeOptions) -> None:
        """Raise `OptionNotSupportedError`, naming the option, for what this engine cannot do."""
        refused = self._refusal(options)
        if refused:
            name, why = refused
            raise OptionNotSupportedError(f"{name} is not supported by {self.engine_name}: {why}")

    def suppress_tokens(self, options: DecodeOptions, tokenizer: Tokenizer) -> list[int]:
        """Ids never generated: those listed (-1: the generation config's list), the task/start/
        no-speech specials (faster-whisper) and, to restrict, all text ids not spelling a word."""
        ids = [i for i in options.suppress_tokens if i >= 0]
        if -1 in options.suppress_tokens:
            ids.extend(self.default_suppress_tokens)
        t, words = tokenizer, options.vocabulary
        ids.extend([t.transcribe, t.translate, t.sot, t.sot_prev, t.sot_lm, t.no_speech])
        ids.extend(foreign_script_suppression(self.ethiopic_ids, options.language))
        if options.vocabulary_mode == "restrict" and words:
            if words not in self._restrict_cache:
                self._restrict_cache[words] = restricted_suppress_tokens(t.tokenizer, words)
            ids.extend(self._restrict_cache[words])
        return sorted(set(ids))

    def tokenizer(self, options: DecodeOptions) -> Tokenizer:
        """faster-whisper's tokenizer view (sot sequence, word splitting); needs the language."""
        return Tokenizer(self.hf_tokenizer.backend_tokenizer, True, options.task, options.language)

    # -- one file ------------------------------------------------------------------------------
    def transcribe(
        self,
        audio: AudioInput,
        options: DecodeOptions | None = None,
        progress: Progress = None,
        source: str = "",
    ) -> TranscriptionResult:
        """Transcribe one input; windows are VAD spans (or fixed windows) capped per language."""
        started, options = time.perf_counter(), options or DecodeOptions()
        self.check_options(options)
        decoded = decode_audio(audio)
        samples, duration = decoded.samples, decoded.samples.size / SAMPLE_RATE
        segments: list[Segment] = []
        with torch.inference_mode():
            language, probability = options.language, 1.0
            if language is None:
                language, probability = self.detect_language(samples, options)
            if language is not None:
                options = dataclasses.replace(options, language=language)
                report = (lambda s: progress(min(0.99, s / duration))) if progress else None
                job = self._job(samples, options, report)
                found = self._transcribe_windows(job, self._spans(samples, options))
                segments = drop_hallucinations(found, samples, options)  # as the ct2 engine
        if progress:
            progress(1.0)
        return TranscriptionResult.from_segments(
            segments,
            language,
            probability,
            duration,
            Timings(load=self.load_seconds, decode=time.perf_counter() - started),
            decoded.info,
            source or (str(audio) if isinstance(audio, (str, Path)) else ""),
        )

    def detect_language(self, samples: np.ndarray, options: DecodeOptions) -> Detected:
        """Language and its probability among the language tokens, from the first 30 s of
        speech (VAD-filtered when options.vad_filter); (None, 0) without speech."""
        speech = speech_only(samples, options.vad) if options.vad_filter else samples
        if speech.size == 0:
            return None, 0.0
        encoded = self.encode(speech[: CHUNK_LENGTH * SAMPLE_RATE])
        probabilities = self.sot_probabilities(encoded)[list(self.languages.values())]
        best = int(probabilities.argmax())
        return list(self.languages)[best], float(probabilities[best] / probabilities.sum())

    def decode_with_fallback(
        self, encoded: Any, options: DecodeOptions, prompt: Sequence[int], no_speech: float
    ) -> WindowDecode | None:
        """Try each temperature until the guards pass (faster-whisper's rules; when all fail, the
        likeliest decode under the compression threshold, labelled with the last temperature).
        None for silence: no-speech probability over its threshold and the decode unlikely."""
        results: list[WindowDecode] = []
        ratio, logprob_limit = options.compression_ratio_threshold, options.log_prob_threshold
        silent = options.no_speech_threshold is not None and no_speech > options.no_speech_threshold
        for temperature in options.temperature:
            result = self.generate(encoded, options, prompt, temperature)
            results.append(result)
            repetitive = ratio is not None and result.compression_ratio > ratio
            unlikely = logprob_limit is not None and result.avg_logprob < logprob_limit
            if not (repetitive or unlikely) or (silent and unlikely):
                break
        else:
            below = [r for r in results if ratio is None or r.compression_ratio <= ratio]
            best = max(below or results, key=lambda r: r.avg_logprob)
            result = dataclasses.replace(best, temperature=options.temperature[-1])
        likely = logprob_limit is not None and result.avg_logprob > logprob_limit
        return None if silent and not likely else result

    # -- windows -------------------------------------------------------------------------------
    def _spans(self, samples: np.ndarray, options: DecodeOptions) -> list[tuple[float, float]]:
        """(start, end) seconds of each window: VAD spans or fixed windows, capped per language."""
        window = windows.max_window_seconds(
            options.language, self.window_token_limit, self.token_rates
        )
        if options.vad_filter:
            vad = dataclasses.replace(options.vad, max_speech_duration_s=window)
            return [(span.start, span.end) for span in detect_speech(samples, vad)]
        return windows.fixed_windows(samples.size / SAMPLE_RATE, window)

    def _job(self, samples: np.ndarray, options: DecodeOptions, report: Progress) -> _Job:
        """A fresh pass whose conditioning text starts with the initial prompt."""
        tokenizer, initial = self.tokenizer(options), options.initial_prompt
        prompt = tokenizer.encode(" " + initial.strip()) if initial else []
        return _Job(samples, options, tokenizer, report, prompt)

    def _transcribe_windows(self, job: _Job, spans: list[tuple[float, float]]) -> list[Segment]:
        """Decode each (start, end) span in seconds; a span whose decode hit the token limit is
        cut at its quietest point and decoded again, down to `windows.MIN_WINDOW_SECONDS`."""
        segments, overflowed = [], []
        for span in spans:
            found, overflow = self._decode_span(job, span)
            segments.extend(found)
            if overflow and job.options.max_new_tokens is None:  # a user's own cap cuts on purpose
                overflowed.append(span)
        redo = [s for s in overflowed if s[1] - s[0] > 2 * windows.MIN_WINDOW_SECONDS]
        if not redo:
            return segments
        kept = [seg for seg in segments if not any(a <= seg.window_start < b for a, b in redo)]
        halves = [half for span in redo for half in windows.split_at_quietest(job.samples, span)]
        kept.extend(self._transcribe_windows(self._job(job.samples, job.options, None), halves))
        return sorted(kept, key=lambda seg: seg.start)

    def _prompt(self, job: _Job) -> list[int]:
        """faster-whisper's get_prompt: <|startofprev|> + hotwords + previous text, <= 223 ids."""
        hotwords, most = job.options.effective_hotwords, self.max_length // 2 - 1
        hot = job.tokenizer.encode(" " + hotwords.strip())[:most] if hotwords else []
        previous = job.all_tokens[job.reset_since :][len(hot) - most :] if len(hot) < most else []
        return [job.tokenizer.sot_prev, *hot, *previous] if hot or previous else []

    def _decode_span(self, job: _Job, span: tuple[float, float]) -> tuple[list[Segment], bool]:
        """Decode one span, seeking to the last complete timestamp pair after each window;
        returns its segments and whether a decode ran out of tokens."""
        (seek, end), options, tokenizer = span, job.options, job.tokenizer
        segments, overflow = [], False
        while end - seek > 0.1:  # a shorter remainder is not decoded
            chunk_end = min(end, seek + CHUNK_LENGTH)
            chunk = job.samples[round(seek * SAMPLE_RATE) : round(chunk_end * SAMPLE_RATE)]
            encoded, prompt = self.encode(chunk), self._prompt(job)
            no_speech = float(self.sot_probabilities(encoded, prompt)[tokenizer.no_speech])
            result = self.decode_with_fallback(encoded, options, prompt, no_speech)
            if result is None:  # silence: openai/whisper's no-speech skip
                seek = chunk_end
                continue
            overflow |= result.hit_limit
            pieces, consumed = _split(result.tokens, tokenizer.timestamp_begin, chunk_end - seek)
            pieces = [p for p in pieces if p.start != p.end and tokenizer.decode(p.tokens).strip()]
            if options.word_timestamps:
                self._add_words(pieces, tokenizer, encoded, chunk.size // HOP_LENGTH)
            segments += [_segment(p, seek, chunk_end, tokenizer, result, no_speech) for p in pieces]
            job.all_tokens.extend(t for p in pieces for t in p.tokens)
            if not options.condition_on_previous_text or result.temperature > RESET_TEMPERATURE:
                job.reset_since = len(job.all_tokens)
            # A single-window decode moves on to the next window: the unfinished tail is not
            # decoded again (options.single_window).
            seek = chunk_end if options.single_window else seek + consumed
            if job.progress:
                job.progress(seek)
        return segments, overflow

    def _add_words(self, pieces: list[_Piece], tok: Tokenizer, enc: Any, frames: int) -> None:
        """Align a window's text and hand each piece its word dicts (seconds from the window
        start); the piece's edges move to its first and last word, as faster-whisper's mostly do."""
        text = [[t for t in p.tokens if t < tok.eot] for p in pieces]
        alignment = self.align(enc, tok, [t for tokens in text for t in tokens], frames)
        merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
        words = iter(alignment)
        for piece, tokens in zip(pieces, text, strict=True):
            saved = 0
            while saved < len(tokens) and (word := next(words, None)) is not None:
                piece.words += [word] if word["word"] else []
                saved += len(word["tokens"])
            if piece.words:
                piece.start, piece.end = piece.words[0]["start"], piece.words[-1]["end"]


def alignment_heads(generation_config: Any, layers: int, heads: int) -> list[tuple[int, int]]:
    """The sorted (layer, head) pairs of the decoder whose cross-attention times words: the
    generation config's `alignment_heads`, else every head of the later half of the layers."""
    pairs = getattr(generation_config, "alignment_heads", None)
    pairs = pairs or [(layer, h) for layer in range(layers // 2, layers) for h in range(heads)]
    return sorted((int(layer), int(head)) for layer, head in pairs)


def alignment_tokens(tok: Tokenizer, ids: list[int]) -> list[int]:
    """The ids a word-timing pass feeds the decoder from an empty cache (openai's
    find_alignment): [*sot_sequence, <|notimestamps|>, *ids, <|endoftext|>]."""
    return [*tok.sot_sequence, tok.no_timestamps, *ids, tok.eot]


def find_alignment(
    tok: Tokenizer, ids: list[int], frames: int, logits: Tensor, weights: Tensor, width: int
) -> list[dict]:
    """openai's find_alignment (DTW and median filter: transformers') for the text `ids` of a
    window of `frames` log-mel frames, from one decoder pass over `alignment_tokens(tok, ids)`
    (n tokens): its logits (n, vocab) and the alignment heads' cross-attention probabilities
    (heads, n, 1500); `width`: the median filter's (config.median_filter_width). -> word dicts
    (word, tokens, start, end in seconds from the window start, probability)."""
    sot = len(tok.sot_sequence)
    probs = logits[sot : sot + len(ids), : tok.eot].float().softmax(-1)
    token_probs = probs[range(len(ids)), ids].cpu().numpy()
    weights = weights.float()[:, :, : max(1, frames // 2)]  # 2 frames per encoder position
    weights = weights / weights.sum(-1, keepdim=True)  # = softmax over the audio frames only
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = _median_filter((weights - mean) / std, width)
    cost = -weights.mean(0)[sot:-1].double().cpu().numpy()  # (1 + len(ids), frames // 2)
    text_indices, time_indices = _dynamic_time_warping(cost)
    words, word_tokens = tok.split_to_word_tokens([*ids, tok.eot])
    bounds = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    times = time_indices[jumps] * TIME_PRECISION
    return [
        {"word": w, "tokens": t, "start": float(times[i]), "end": float(times[j]),
         "probability": float(np.mean(token_probs[i:j]))}
        for w, t, i, j in zip(words, word_tokens, bounds[:-1], bounds[1:], strict=False)
    ]  # fmt: skip


def window_decode(
    generated: Sequence[int], logprob: float, tok: Tokenizer, temperature: float, limit: int
) -> WindowDecode:
    """Generated ids (anything after <|endoftext|> is ignored) and the summed natural-log
    probability of the scored ones (the ids up to and including <|endoftext|>) -> WindowDecode."""
    tokens = list(generated)
    ended = tok.eot in tokens
    tokens = tokens[: tokens.index(tok.eot)] if ended else tokens
    return WindowDecode(
        tokens=tuple(tokens),
        avg_logprob=logprob / (len(tokens) + 1),
        compression_ratio=get_compression_ratio(tok.decode(tokens).strip()),
        temperature=temperature,
        hit_limit=not ended and len(tokens) >= limit,
    )


def _candidate(
    sequence: Tensor, scores: Tensor, tok: Tokenizer, temperature: float, limit: int
) -> WindowDecode:
    """Generated ids (steps,) and their processed step scores (steps, vocab) -> WindowDecode."""
    tokens = sequence.tolist()
    scored = tokens[: tokens.index(tok.eot) + 1] if tok.eot in tokens else tokens
    steps = scores[: len(scored)] * (temperature or 1.0)  # undo the temperature warper
    chosen = torch.tensor(scored, device=steps.device)[:, None]
    logprob = float(steps.log_softmax(-1).gather(-1, chosen).sum())
    return window_decode(scored, logprob, tok, temperature, limit)


def _segment(
    piece: _Piece, seek: float, chunk_end: float, tok: Tokenizer, result: WindowDecode, p0: float
) -> Segment:
    """A piece of the window starting at `seek` s -> Segment (absolute s); p0: no-speech prob."""
    words = [Word(round(seek + w["start"], 2), round(seek + w["end"], 2), w["word"],
                  w["probability"]) for w in piece.words]  # fmt: skip
    return Segment(
        start=round(seek + piece.start, 3),
        end=round(min(seek + piece.end, chunk_end), 3),
        text=tok.decode(piece.tokens),
        avg_logprob=result.avg_logprob,
        no_speech_prob=p0,
        compression_ratio=result.compression_ratio,
        temperature=result.temperature,
        words=tuple(words),
        tokens=tuple(piece.tokens),
        window_start=seek,
    )


def _split(tokens: Sequence[int], begin: int, seconds: float) -> tuple[list[_Piece], float]:
    """A window's generated tokens (timestamps are ids >= `begin`) -> (pieces, seconds of the
    window they cover): up to the last complete timestamp pair, or all `seconds` when the decode
    ended on a single timestamp or holds no pair."""
    tokens, stamps = list(tokens), [t >= begin for t in tokens]
    pairs = [i for i in range(1, len(tokens)) if stamps[i] and stamps[i - 1]]
    if not pairs:
        last = max((t - begin for t in tokens if t >= begin), default=0) * TIME_PRECISION
        return [_Piece(0.0, last or seconds, tokens)], seconds
    single_ending = stamps[-2:] == [False, True]
    cuts = [0, *pairs, *([len(tokens)] if single_ending else [])]
    times = [(t - begin) * TIME_PRECISION for t in tokens]
    pieces = [_Piece(times[a], times[b - 1], tokens[a:b]) for a, b in itertools.pairwise(cuts)]
    covered = times[cuts[-1] - 1]
    return pieces, seconds if single_ending or covered <= 0 else min(covered, seconds)
