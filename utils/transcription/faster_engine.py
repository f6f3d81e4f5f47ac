"""The faster-whisper (CTranslate2) engine."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np

from utils.audio import HOP_LENGTH, SAMPLE_RATE, AudioInput, decode_audio
from utils.audio_stream import is_long_audio
from utils.geez_vocab.alphabet import ethiopic_token_ids, foreign_script_suppression
from utils.transcription.guards import drop_hallucinations
from utils.transcription.options import DecodeOptions
from utils.transcription.results import Segment, Timings, TranscriptionResult, Word
from utils.transcription.vocabulary import restricted_suppress_tokens
from utils.transcription.windows import (
    CHUNK_LENGTH,
    MIN_WINDOW_SECONDS,
    WINDOW_TOKEN_LIMIT,
    fixed_windows,
    max_window_seconds,
    model_token_rates,
    snap,
    split_at_quietest,
)
from utils.vad import detect_speech, speech_only

ProgressCallback = Callable[[float], None]  # fraction done in [0, 1]


class _WindowDone(Exception):
    """Raised by the budgeted encoder inside faster-whisper's segment generator: the one window
    a `single_window` decode allows was decoded."""


class _EncoderBudget:
    """Wraps a model's `encode`: within `allow(n)` on this thread, the (n+1)-th encoder pass
    raises `_WindowDone` instead of running (faster-whisper has no option to stop there)."""

    def __init__(self, encode: Callable[[Any], Any]) -> None:
        self._encode, self._left = encode, threading.local()

    def __call__(self, features: Any) -> Any:
        left = getattr(self._left, "passes", None)
        if left is not None:
            if left <= 0:
                raise _WindowDone
            self._left.passes = left - 1
        return self._encode(features)

    @contextlib.contextmanager
    def allow(self, passes: int) -> Iterator[None]:
        self._left.passes = passes
        try:
            yield
        finally:
            self._left.passes = None


class FasterWhisperEngine:
    """Transcribes with faster-whisper on a CTranslate2 model directory."""

    kind = "ctranslate2"

    def __init__(
        self,
        model_dir: Path,
        device: str,
        compute_type: str,
        cpu_threads: int = 0,
        workers: int = 1,
    ) -> None:
        from faster_whisper import WhisperModel

        started = time.perf_counter()
        self.model_dir = Path(model_dir)
        self.device = device
        self.compute_type = compute_type
        self.model = WhisperModel(
            str(model_dir), device=device, compute_type=compute_type, cpu_threads=cpu_threads,
            num_workers=workers,
        )  # fmt: skip
        self.parallel_decodes = workers  # transcribe() calls from this many threads run at once
        self._encoder_budget = _EncoderBudget(self.model.encode)
        self.model.encode = self._encoder_budget  # generate_segments calls self.encode
        self.load_seconds = time.perf_counter() - started
        self.window_token_limit = WINDOW_TOKEN_LIMIT
        self.token_rates = model_token_rates(self.model.hf_tokenizer)  # a Ge'ez vocabulary: ~1/3
        self.ethiopic_ids = ethiopic_token_ids(self.model.hf_tokenizer.get_vocab())
        self._restrict_cache: dict[tuple[str, ...], tuple[int, ...]] = {}

    # -- options -----------------------------------------------------------------------------
    def _suppress_tokens(self, options: DecodeOptions) -> list[int]:
        # -1 stays: faster-whisper replaces it with the model's non-speech list
        ids = list(options.suppress_tokens)
        ids += foreign_script_suppression(self.ethiopic_ids, options.language)
        if options.vocabulary_mode != "restrict" or not options.vocabulary:
            return ids
        if options.vocabulary not in self._restrict_cache:
            self._restrict_cache[options.vocabulary] = restricted_suppress_tokens(
                self.model.hf_tokenizer, options.vocabulary
            )
        return ids + list(self._restrict_cache[options.vocabulary])

    def transcribe_kwargs(self, options: DecodeOptions) -> dict[str, Any]:
        """faster-whisper `transcribe` keyword arguments for `options` (VAD and clips excluded)."""
        return {
            "task": options.task,
            "language": options.language,
            "beam_size": options.beam_size,
            "best_of": options.best_of,
            "patience": options.patience,
            "length_penalty": options.length_penalty,
            "temperature": list(options.temperature),
            "compression_ratio_threshold": options.compression_ratio_threshold,
            "log_prob_threshold": options.log_prob_threshold,
            "no_speech_threshold": options.no_speech_threshold,
            "repetition_penalty": options.repetition_penalty,
            "no_repeat_ngram_size": options.no_repeat_ngram_size,
            "initial_prompt": options.initial_prompt,
            "hotwords": options.effective_hotwords,
            "suppress_tokens": self._suppress_tokens(options),
            "condition_on_previous_text": options.condition_on_previous_text,
            "hallucination_silence_threshold": options.hallucination_silence_threshold,
            "word_timestamps": options.word_timestamps,
            "max_new_tokens": options.max_new_tokens,
            "vad_filter": options.vad_filter,
            "vad_parameters": options.vad.to_faster_whisper(),
        }

    # -- one file ------------------------------------------------------------------------------
    def transcribe(
        self,
        audio: AudioInput,
        options: DecodeOptions | None = None,
        progress: ProgressCallback | None = None,
        source: str = "",
    ) -> TranscriptionResult:
        """Transcribe one input; the window is capped for languages the decoder fills quickly.

        Files longer than `LONG_AUDIO_SECONDS` are read and decoded block by block, so memory
        stays that of a ten-minute file however long the recording is.
        """
        options = options or DecodeOptions()
        started = time.perf_counter()
        if isinstance(audio, (str, Path)) and is_long_audio(audio):
            from utils.transcription.long_form import transcribe_long

            return transcribe_long(self, audio, options, progress, source or str(audio))
        decoded = decode_audio(audio)
        segments, language, probability = self.transcribe_samples(
            decoded.samples, options, progress
        )
        if progress:
            progress(1.0)
        return TranscriptionResult.from_segments(
            segments,
            language,
            probability,
            decoded.samples.size / SAMPLE_RATE,
            Timings(load=self.load_seconds, decode=time.perf_counter() - started),
            decoded.info,
            source or (str(audio) if isinstance(audio, (str, Path)) else ""),
        )

    def transcribe_samples(
        self,
        samples: np.ndarray,
        options: DecodeOptions,
        progress: ProgressCallback | None = None,
    ) -> tuple[list[Segment], str | None, float]:
        """Segments (times in seconds from the start of `samples`, 16 kHz mono float32), the
        language and its probability (1.0 when given; None, 0.0 when there is no speech)."""
        ctranslate2.set_random_seed(0)  # fallback sampling gives the same text every run
        language, probability = options.language, 1.0
        if language is None:
            language, probability = self.detect_language(samples, options)
        options = dataclasses.replace(options, language=language)
        window = max_window_seconds(language, self.window_token_limit, self.token_rates)
        if window < CHUNK_LENGTH:
            spans = self._spans(samples, options, window)
            segments = self.transcribe_spans(samples, options, spans, progress)
        else:
            segments = self._decode(samples, options, progress, clips=None)
            if self._overflowing_windows(segments, options):
                spans = self._spans(samples, options, CHUNK_LENGTH / 2)
                segments = self.transcribe_spans(samples, options, spans, progress)
        duration = samples.size / SAMPLE_RATE
        segments = [_clamp(segment, duration) for segment in segments]
        return drop_hallucinations(segments, samples, options), language, probability

    def detect_language(
        self, samples: np.ndarray, options: DecodeOptions
    ) -> tuple[str | None, float]:
        """Language and its probability from the first 30 s of speech; (None, 0) without speech."""
        speech = speech_only(samples, options.vad) if options.vad_filter else samples
        if speech.size == 0:
            return None, 0.0
        language, probability, _ = self.model.detect_language(speech[: CHUNK_LENGTH * SAMPLE_RATE])
        return language, float(probability)

    def _spans(
        self, samples: np.ndarray, options: DecodeOptions, window: float
    ) -> list[tuple[float, float]]:
        if options.vad_filter:
            vad = dataclasses.replace(options.vad, max_speech_duration_s=window)
            return [(snap(span.start), snap(span.end)) for span in detect_speech(samples, vad)]
        return fixed_windows(samples.size / SAMPLE_RATE, window)

    def transcribe_spans(
        self,
        samples: np.ndarray,
        options: DecodeOptions,
        spans: list[tuple[float, float]],
        progress: ProgressCallback | None,
    ) -> list[Segment]:
        """Decode each span as its own window; a span whose decode hit the token limit is cut in
        two at its quietest point and decoded again, down to `MIN_WINDOW_SECONDS`."""
        if not spans:
            return []
        segments = self._decode(
            samples, dataclasses.replace(options, vad_filter=False), progress, spans
        )
        overflow = self._overflowing_windows(segments, options)
        redo = [
            s
            for s in spans
            if any(_inside(t, s) for t in overflow) and s[1] - s[0] > 2 * MIN_WINDOW_SECONDS
        ]
        if not redo:
            return segments
        kept = [seg for seg in segments if not any(_inside(seg.window_start, s) for s in redo)]
        halves = [half for span in redo for half in split_at_quietest(samples, span)]
        kept.extend(self.transcribe_spans(samples, options, halves, None))
        return sorted(kept, key=lambda seg: seg.start)

    def _overflowing_windows(self, segments: list[Segment], options: DecodeOptions) -> list[float]:
        """Start times of windows whose decode used up the token budget (text was cut)."""
        if options.max_new_tokens is not None:  # the user's own cap: cutting is what they asked
            return []
        tokens_per_window: dict[float, int] = defaultdict(int)
        for segment in segments:
            tokens_per_window[segment.window_start] += len(segment.tokens)
        limit = self.window_token_limit - 8  # minus the prompt's start-of-transcript tokens
        return [key for key, count in tokens_per_window.items() if count >= limit]

    def _decode(
        self,
        samples: np.ndarray,
        options: DecodeOptions,
        progress: ProgressCallback | None,
        clips: list[tuple[float, float]] | None,
    ) -> list[Segment]:
        if samples.size == 0:
            return []
        if options.single_window and clips is None and samples.size > CHUNK_LENGTH * SAMPLE_RATE:
            clips = fixed_windows(samples.size / SAMPLE_RATE, CHUNK_LENGTH)  # one encode each
        if options.single_window and clips is not None and len(clips) > 1:
            per_clip = (self._decode(samples, options, progress, [clip]) for clip in clips)
            return [segment for segments in per_clip for segment in segments]
        kwargs = self.transcribe_kwargs(options)
        if clips is not None:
            kwargs["clip_timestamps"] = [edge for span in clips for edge in span]
        passes = 1 if options.single_window else None
        segments = []
        with self._encoder_budget.allow(passes) if passes else contextlib.nullcontext():
            raw_segments, info = self.model.transcribe(samples, **kwargs)
            total = max(info.duration, 1e-9)
            with contextlib.suppress(_WindowDone):
                for raw in raw_segments:
                    segments.append(_to_segment(raw))
                    if progress:
                        progress(min(0.99, raw.end / total))
        return segments


def _clamp(segment: Segment, duration: float) -> Segment:
    """Timestamps past the end of the audio (a hallucinated end) brought back within it."""
    if segment.end <= duration:
        return segment
    words = tuple(
        dataclasses.replace(w, start=min(w.start, duration), end=min(w.end, duration))
        for w in segment.words
    )
    return dataclasses.replace(
        segment, start=min(segment.start, duration), end=duration, words=words
    )


def _inside(seconds: float, span: tuple[float, float]) -> bool:
    """Whether a window start (on the 10 ms grid) lies in `span`, allowing for that rounding."""
    return span[0] - 0.005 <= seconds < span[1] - 0.005


def _to_segment(raw: Any) -> Segment:
    words = tuple(
        Word(start=float(w.start), end=float(w.end), word=w.word, probability=float(w.probability))
        for w in (raw.words or ())
    )
    return Segment(
        start=float(raw.start),
        end=float(raw.end),
        text=raw.text,
        avg_logprob=float(raw.avg_logprob),
        no_speech_prob=float(raw.no_speech_prob),
        compression_ratio=float(raw.compression_ratio),
        temperature=float(raw.temperature or 0.0),
        words=words,
        tokens=tuple(raw.tokens),
        window_start=raw.seek * HOP_LENGTH / SAMPLE_RATE,
    )
