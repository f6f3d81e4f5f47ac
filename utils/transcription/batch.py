"""Many short files at once: their windows are batched through the encoder and decoder together.

faster-whisper's `BatchedInferencePipeline` batches the chunks of one file; here chunks of many
files share each batch. Files are taken `batch_size` at a time: their first chunks are encoded
together and their languages detected from that encoding, which is then reused for decoding
(on a CPU the 30 s encoder pass costs more than a short file's whole beam search, and sequential
faster-whisper pays it twice). A language's chunks are decoded as soon as a batch of them is
ready, so at most one batch of encodings per language is held. Batched decoding has no
temperature fallback, so a chunk that fails the compression or log-prob guard is decoded again
on its own with the full fallback ladder.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.audio import SAMPLE_RATE, AudioInput, DecodedAudio, decode_audio
from utils.audio_stream import is_long_audio
from utils.transcription.faster_engine import FasterWhisperEngine, _to_segment
from utils.transcription.guards import drop_hallucinations
from utils.transcription.options import DecodeOptions
from utils.transcription.results import Segment, Timings, TranscriptionResult
from utils.transcription.windows import CHUNK_LENGTH, fixed_windows, max_window_seconds
from utils.vad import detect_speech

BatchProgress = Callable[[int, int], None]  # (chunks done, chunks known so far)


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
    encoded: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    """Encoder output (frames, d_model) float32 when already computed, else None."""


def _spans(samples: np.ndarray, options: DecodeOptions, window: float) -> list[tuple[float, float]]:
    if options.vad_filter:
        vad = dataclasses.replace(options.vad, max_speech_duration_s=window)
        return [(s.start, s.end) for s in detect_speech(samples, vad)]
    return fixed_windows(samples.size / SAMPLE_RATE, window)


class _PreEncoded:
    """Stands in for the `WhisperModel` inside the batched pipeline: a batch handed over as a
    `StorageView` is an encoder output already and is not encoded again."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def encode(self, features):
        import ctranslate2

        if isinstance(features, ctranslate2.StorageView):
            return features
        return self._model.encode(features)


@dataclass
class _Progress:
    callback: BatchProgress | None
    done: int = 0
    total: int = 0

    def add(self, chunks: int) -> None:
        self.total += chunks

    def advance(self, chunks: int) -> None:
        self.done += chunks
        if self.callback:
            self.callback(self.done, self.total)


class BatchTranscriber:
    """Batched transcription of many inputs with one `FasterWhisperEngine`."""

    def __init__(self, engine: FasterWhisperEngine, batch_size: int = 8):
        from faster_whisper import BatchedInferencePipeline

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.engine = engine
        self._rates = getattr(engine, "token_rates", None)  # the model's own tokens per second
        self.batch_size = batch_size
        self.pipeline = BatchedInferencePipeline(_PreEncoded(engine.model))

    def _features(self, samples: np.ndarray, start: float, end: float) -> np.ndarray:
        """Log-mel of samples[start:end] (seconds), padded or cut to (n_mels, 3000) frames."""
        from faster_whisper.audio import pad_or_trim

        piece = samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        return pad_or_trim(self.engine.model.feature_extractor(piece)[..., :-1])

    def _encode(self, features: np.ndarray) -> np.ndarray:
        """(batch, n_mels, 3000) log-mel -> (batch, 1500, d_model) float32 on the host, which
        every device accepts back (faster-whisper does the same across GPUs)."""
        return np.asarray(self.engine.model.model.encode(_storage(features), to_cpu=True))

    def _detect_languages(
        self, group: list[_FileWork], options: DecodeOptions
    ) -> dict[int, np.ndarray]:
        """Set each file's language from its first chunk; returns the first chunks' encodings
        by file index, for files whose first chunk the decoder will use unchanged."""
        group = [f for f in group if f.spans]
        if not group:
            return {}
        feats = np.stack([self._features(f.audio.samples, *f.spans[0]) for f in group])
        encoded = self._encode(feats)
        # per file: [(language token, probability), ...], best first
        ranked = self.engine.model.model.detect_language(_storage(encoded))
        kept: dict[int, np.ndarray] = {}
        for row, (work, languages) in enumerate(zip(group, ranked, strict=True)):
            token, probability = languages[0]
            work.language, work.language_probability = token[2:-2], float(probability)
            first = work.spans[0]
            window = max_window_seconds(work.language, self.engine.window_token_limit, self._rates)
            if window < CHUNK_LENGTH:  # re-cut windows for languages the decoder fills quickly
                work.spans = _spans(work.audio.samples, options, window)
            if work.spans and work.spans[0] == first:
                kept[work.index] = encoded[row]
        return kept

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
        long_files = []  # read block by block on their own: whole, they would not fit memory
        for index, source in enumerate(sources):
            if isinstance(source, (str, Path)) and is_long_audio(source):
                long_files.append(index)
                continue
            try:
                audio = decode_audio(source)
            except ValueError as exc:
                outcomes[index] = exc
                continue
            window = max_window_seconds(
                options.language, self.engine.window_token_limit, self._rates
            )
            name = (
                source
                if isinstance(source, str)
                else str(getattr(source, "name", f"input {index}"))
            )
            files.append(_FileWork(index, str(name), audio, _spans(audio.samples, options, window)))
        segments = self._decode_files(files, options, _Progress(progress))
        elapsed = time.perf_counter() - started
        for work in files:
            outcomes[work.index] = self._result(
                work, segments.get(work.index, []), elapsed / max(1, len(files)), options
            )
        for index in long_files:
            outcomes[index] = self._transcribe_one(sources[index], options)
        return [o if o is not None else RuntimeError("not transcribed") for o in outcomes]

    def _transcribe_one(
        self, source: AudioInput, options: DecodeOptions
    ) -> TranscriptionResult | Exception:
        try:
            return self.engine.transcribe(source, options)
        except ValueError as exc:
            return exc

    def _decode_files(
        self, files: list[_FileWork], options: DecodeOptions, progress: _Progress
    ) -> dict[int, list[Segment]]:
        """Segments by file index; files `batch_size` at a time, each language's chunks
        decoded whenever a full batch of them is waiting, the rest at the end."""
        queues: dict[str, list[_Chunk]] = {}
        found: dict[int, list[Segment]] = {}
        audio_of = {work.index: work.audio.samples for work in files}
        for i in range(0, len(files), self.batch_size):
            group = files[i : i + self.batch_size]
            if options.language:
                encoded: dict[int, np.ndarray] = {}
                for work in group:
                    work.language = options.language
            else:
                encoded = self._detect_languages(group, options)
            for work in group:
                chunks = [_Chunk(work.index, *span) for span in work.spans]
                if chunks and work.index in encoded:
                    chunks[0] = dataclasses.replace(chunks[0], encoded=encoded[work.index])
                queues.setdefault(work.language, []).extend(chunks)
                progress.add(len(chunks))
            for language, queue in queues.items():
                while len(queue) >= self.batch_size:
                    batch, queue[:] = queue[: self.batch_size], queue[self.batch_size :]
                    self._decode_into(found, batch, language, audio_of, options, progress)
        for language, queue in queues.items():
            for j in range(0, len(queue), self.batch_size):
                batch = queue[j : j + self.batch_size]
                self._decode_into(found, batch, language, audio_of, options, progress)
        return found

    def _sequential(self, sources, options, progress) -> list[TranscriptionResult | Exception]:
        outcomes: list[TranscriptionResult | Exception] = []
        for index, source in enumerate(sources):
            outcomes.append(self._transcribe_one(source, options))
            if progress:
                progress(index + 1, len(sources))
        return outcomes

    def _decode_into(
        self,
        found: dict[int, list[Segment]],
        batch: list[_Chunk],
        language: str,
        audio_of: dict[int, np.ndarray],
        options: DecodeOptions,
        progress: _Progress,
    ) -> None:
        """Decode one batch of same-language chunks and add their segments to `found`."""
        options = dataclasses.replace(options, language=language)
        fw_options, tokenizer = self._fw_options(options)
        for chunk, segs in zip(
            batch, self._decode_batch(batch, audio_of, fw_options, tokenizer), strict=True
        ):
            if self._needs_fallback(segs, options):
                segs = self._decode_alone(audio_of[chunk.file], chunk, options)
            found.setdefault(chunk.file, []).extend(segs)
        progress.advance(len(batch))

    def _batch_encoding(self, batch: list[_Chunk], audio_of: dict[int, np.ndarray]):
        """The batch's encoder output as one `StorageView`, encoding only the chunks whose
        encoding is not known yet."""
        missing = [c for c in batch if c.encoded is None]
        fresh = iter(())
        if missing:
            feats = np.stack([self._features(audio_of[c.file], c.start, c.end) for c in missing])
            fresh = iter(self._encode(feats))
        rows = [c.encoded if c.encoded is not None else next(fresh) for c in batch]
        return _storage(np.stack(rows))

    def _decode_batch(self, batch, audio_of, fw_options, tokenizer) -> list[list[Segment]]:
        from faster_whisper.transcribe import Segment as FwSegment

        encoded = self._batch_encoding(batch, audio_of)
        metadata = [{"offset": c.start, "duration": c.end - c.start, "segments": []} for c in batch]
        self.pipeline.last_speech_timestamp = 0.0  # chunks of different files share no timeline
        outputs = self.pipeline.forward(encoded, tokenizer, metadata, fw_options)
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
        return TranscriptionResult.from_segments(
            segments,
            work.language,
            work.language_probability,
            work.audio.samples.size / SAMPLE_RATE,
            Timings(load=self.engine.load_seconds, decode=decode_seconds),
            work.audio.info,
            work.source,
        )


@dataclass
class _FwWord:
    start: float
    end: float
    word: str
    probability: float


def _storage(array: np.ndarray):
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array, dtype=np.float32))
