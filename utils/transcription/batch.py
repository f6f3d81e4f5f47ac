"""Many short files at once: their windows are batched through the encoder and decoder together.

faster-whisper's `BatchedInferencePipeline` batches the chunks of one file; here chunks of many
files share each batch. Languages are detected in batches first, then each language's chunks are
decoded together. Batched decoding has no temperature fallback, so a chunk that fails the
compression or log-prob guard is decoded again on its own with the full fallback ladder.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from utils.audio import SAMPLE_RATE, AudioInput, DecodedAudio, decode_audio
from utils.transcription.faster_engine import FasterWhisperEngine, _to_segment
from utils.transcription.guards import drop_hallucinations
from utils.transcription.options import DecodeOptions
from utils.transcription.results import Segment, Timings, TranscriptionResult
from utils.transcription.windows import CHUNK_LENGTH, fixed_windows, max_window_seconds
from utils.vad import detect_speech

BatchProgress = Callable[[int, int], None]  # (chunks done, chunks in all)


@dataclass
class _FileWork:
    index: int
    source: str
    audio: DecodedAudio
    spans: list[tuple[float, float]]
    language: str = ""
    language_probability: float = 1.0


@dataclass(frozen=True)
class _Chunk:
    file: int
    start: float  # seconds in the file
    end: float


def _spans(samples: np.ndarray, options: DecodeOptions, window: float) -> list[tuple[float, float]]:
    if options.vad_filter:
        vad = dataclasses.replace(options.vad, max_speech_duration_s=window)
        return [(s.start, s.end) for s in detect_speech(samples, vad)]
    return fixed_windows(samples.size / SAMPLE_RATE, window)


class BatchTranscriber:
    """Batched transcription of many inputs with one `FasterWhisperEngine`."""

    def __init__(self, engine: FasterWhisperEngine, batch_size: int = 8):
        from faster_whisper import BatchedInferencePipeline

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.engine = engine
        self.batch_size = batch_size
        self.pipeline = BatchedInferencePipeline(engine.model)

    def _features(self, samples: np.ndarray, chunk: _Chunk) -> np.ndarray:
        from faster_whisper.audio import pad_or_trim

        piece = samples[int(chunk.start * SAMPLE_RATE) : int(chunk.end * SAMPLE_RATE)]
        return pad_or_trim(self.engine.model.feature_extractor(piece)[..., :-1])

    def _detect_languages(self, files: list[_FileWork]) -> None:
        """Detect each file's language from its first chunk, `batch_size` files per encoder call."""
        pending = [f for f in files if f.spans]
        for i in range(0, len(pending), self.batch_size):
            group = pending[i : i + self.batch_size]
            feats = np.stack(
                [self._features(f.audio.samples, _Chunk(f.index, *f.spans[0])) for f in group]
            )
            encoded = self.engine.model.encode(feats)
            for work, ranked in zip(
                group, self.engine.model.model.detect_language(encoded), strict=True
            ):
                token, probability = ranked[0]
                work.language, work.language_probability = token[2:-2], float(probability)

    def transcribe(
        self,
        sources: Sequence[AudioInput],
        options: DecodeOptions | None = None,
        progress: BatchProgress | None = None,
    ) -> list[TranscriptionResult | Exception]:
        """One result per source, in order; an input that fails holds its exception instead."""
        options = options or DecodeOptions()
        if options.condition_on_previous_text or options.hallucination_silence_threshold:
            return self._sequential(sources, options, progress)  # both chain windows in order
        started = time.perf_counter()
        outcomes: list[TranscriptionResult | Exception | None] = [None] * len(sources)
        files: list[_FileWork] = []
        for index, source in enumerate(sources):
            try:
                audio = decode_audio(source)
            except ValueError as exc:
                outcomes[index] = exc
                continue
            window = max_window_seconds(options.language, self.engine.window_token_limit)
            name = (
                source
                if isinstance(source, str)
                else str(getattr(source, "name", f"input {index}"))
            )
            files.append(_FileWork(index, str(name), audio, _spans(audio.samples, options, window)))
        if options.language:
            for work in files:
                work.language = options.language
        else:
            self._detect_languages(files)
            for work in files:  # re-cut windows for languages the decoder fills quickly
                window = max_window_seconds(work.language, self.engine.window_token_limit)
                if window < CHUNK_LENGTH:
                    work.spans = _spans(work.audio.samples, options, window)
        segments = self._decode_all(files, options, progress)
        elapsed = time.perf_counter() - started
        for work in files:
            outcomes[work.index] = self._result(
                work, segments.get(work.index, []), elapsed / max(1, len(files)), options
            )
        return [o if o is not None else RuntimeError("not transcribed") for o in outcomes]

    def _sequential(self, sources, options, progress) -> list[TranscriptionResult | Exception]:
        outcomes: list[TranscriptionResult | Exception] = []
        for index, source in enumerate(sources):
            try:
                outcomes.append(self.engine.transcribe(source, options))
            except ValueError as exc:
                outcomes.append(exc)
            if progress:
                progress(index + 1, len(sources))
        return outcomes

    def _decode_all(
        self, files: list[_FileWork], options: DecodeOptions, progress: BatchProgress | None
    ) -> dict[int, list[Segment]]:
        by_language: dict[str, list[_Chunk]] = {}
        for work in files:
            for start, end in work.spans:
                by_language.setdefault(work.language, []).append(_Chunk(work.index, start, end))
        total = sum(len(chunks) for chunks in by_language.values())
        done = 0
        found: dict[int, list[Segment]] = {}
        audio_of = {work.index: work.audio.samples for work in files}
        for language, chunks in by_language.items():
            fw_options, tokenizer = self._fw_options(
                dataclasses.replace(options, language=language)
            )
            for i in range(0, len(chunks), self.batch_size):
                batch = chunks[i : i + self.batch_size]
                for chunk, segs in zip(
                    batch, self._decode_batch(batch, audio_of, fw_options, tokenizer), strict=True
                ):
                    if self._needs_fallback(segs, options):
                        segs = self._decode_alone(
                            audio_of[chunk.file],
                            chunk,
                            dataclasses.replace(options, language=language),
                        )
                    found.setdefault(chunk.file, []).extend(segs)
                done += len(batch)
                if progress:
                    progress(done, total)
        return found

    def _decode_batch(self, batch, audio_of, fw_options, tokenizer) -> list[list[Segment]]:
        from faster_whisper.transcribe import Segment as FwSegment

        features = np.stack([self._features(audio_of[c.file], c) for c in batch])
        metadata = [{"offset": c.start, "duration": c.end - c.start, "segments": []} for c in batch]
        self.pipeline.last_speech_timestamp = 0.0  # chunks of different files share no timeline
        outputs = self.pipeline.forward(features, tokenizer, metadata, fw_options)
        results = []
        for chunk_outputs in outputs:
            segs = []
            for raw in chunk_outputs:
                words = raw.get("words")
                fw = FwSegment(
                    id=0,
                    seek=raw["seek"],
                    start=raw["start"],
                    end=raw["end"],
                    text=raw["text"],
                    tokens=raw["tokens"],
                    avg_logprob=raw["avg_logprob"],
                    compression_ratio=raw["compression_ratio"],
                    no_speech_prob=raw["no_speech_prob"],
                    words=[_FwWord(**w) for w in words] if words else None,
                    temperature=fw_options.temperatures[0],
                )
                segs.append(_to_segment(fw))
            results.append(self._drop_no_speech(segs, fw_options))
        return results

    @staticmethod
    def _drop_no_speech(segments: list[Segment], fw_options) -> list[Segment]:
        """The no-speech guard the sequential decoder applies, which batched decoding skips."""
        if fw_options.no_speech_threshold is None:
            return segments
        return [
            s
            for s in segments
            if not (
                s.no_speech_prob > fw_options.no_speech_threshold
                and (
                    fw_options.log_prob_threshold is None
                    or s.avg_logprob < fw_options.log_prob_threshold
                )
            )
        ]

    def _needs_fallback(self, segments: list[Segment], options: DecodeOptions) -> bool:
        """True when the chunk's decode hit the token limit, or failed the compression or
        log-prob guard while the options allow a temperature fallback."""
        tokens = sum(len(s.tokens) for s in segments)
        if options.max_new_tokens is None and tokens >= self.engine.window_token_limit - 8:
            return True
        if len(options.temperature) < 2:
            return False
        ratio, log_prob = options.compression_ratio_threshold, options.log_prob_threshold
        return any(
            (ratio is not None and s.compression_ratio > ratio)
            or (log_prob is not None and s.avg_logprob < log_prob)
            for s in segments
        )

    def _decode_alone(
        self, samples: np.ndarray, chunk: _Chunk, options: DecodeOptions
    ) -> list[Segment]:
        """The sequential decoder on one chunk: full fallback ladder, re-split on overflow."""
        return self.engine.transcribe_spans(samples, options, [(chunk.start, chunk.end)], None)

    def _fw_options(self, options: DecodeOptions):
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

        model = self.engine.model
        tokenizer = Tokenizer(
            model.hf_tokenizer,
            model.model.is_multilingual,
            task=options.task,
            language=options.language,
        )
        kwargs = self.engine.transcribe_kwargs(options)
        suppress = kwargs["suppress_tokens"]
        fw_options = TranscriptionOptions(
            beam_size=options.beam_size,
            best_of=options.best_of,
            patience=options.patience,
            length_penalty=options.length_penalty,
            repetition_penalty=options.repetition_penalty,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
            log_prob_threshold=options.log_prob_threshold,
            no_speech_threshold=options.no_speech_threshold,
            compression_ratio_threshold=options.compression_ratio_threshold,
            condition_on_previous_text=False,
            prompt_reset_on_temperature=0.5,
            temperatures=list(options.temperature[:1]),
            initial_prompt=options.initial_prompt,
            prefix=None,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, suppress) if suppress else suppress,
            without_timestamps=False,
            max_initial_timestamp=0.0,
            word_timestamps=options.word_timestamps,
            prepend_punctuations="\"'“¿([{-",
            append_punctuations="\"'.。,，!！?？:：”)]}、",
            multilingual=False,
            max_new_tokens=options.max_new_tokens,
            clip_timestamps="0",
            hallucination_silence_threshold=None,
            hotwords=kwargs["hotwords"],
        )
        return fw_options, tokenizer

    def _result(
        self,
        work: _FileWork,
        segments: list[Segment],
        decode_seconds: float,
        options: DecodeOptions,
    ) -> TranscriptionResult:
        ordered = sorted(segments, key=lambda s: s.start)
        segments = drop_hallucinations(ordered, work.audio.samples, options)
        return TranscriptionResult(
            text="".join(s.text for s in segments).strip(),
            segments=tuple(segments),
            language=work.language,
            language_probability=work.language_probability,
            duration=work.audio.samples.size / SAMPLE_RATE,
            timings=Timings(load=self.engine.load_seconds, decode=decode_seconds),
            audio_info=work.audio.info,
            source=work.source,
        )


@dataclass
class _FwWord:
    start: float
    end: float
    word: str
    probability: float
