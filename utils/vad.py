"""Silero VAD run by onnxruntime on the ONNX model bundled in the `silero-vad` package (no torch).

Audio: 16 kHz (`utils.audio.SAMPLE_RATE`) mono float32 of shape (n_samples,), scored in 512-sample
(32 ms) windows, each prefixed by the previous 64 samples. Times are seconds from the audio or
stream start. One onnxruntime session per process is shared; recurrent state is per call/stream."""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from utils.audio import SAMPLE_RATE

WINDOW_SAMPLES = 512  # samples scored per model call at 16 kHz
CONTEXT_SAMPLES = 64  # samples of the previous window prepended to each window (v5/v6 models)
MODEL_FILE = "silero_vad.onnx"  # inputs: input (1, 576), state (2, 1, 128), sr (int64 scalar)

_SESSIONS: dict[int, Any] = {}
_SESSIONS_LOCK = threading.Lock()
_SR = np.array(SAMPLE_RATE, dtype=np.int64)


@dataclass(frozen=True)
class VadOptions:
    """Settings of silero's `get_speech_timestamps`. A window is speech at >= threshold; in speech
    it is silence below neg_threshold (None: max(threshold - 0.15, 0.01)); speech ends after
    min_silence_duration_ms of silence; spans under min_speech_duration_ms are dropped; spans over
    max_speech_duration_s are split at a silence over min_silence_at_max_speech_ms (the longest, as
    silero 6 does, or the last if not split_at_longest_silence), else cut; then padded by
    speech_pad_ms each side."""

    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_duration_ms: int = 250
    max_speech_duration_s: float = float("inf")
    min_silence_duration_ms: int = 2000  # faster-whisper's default (silero's is 100)
    speech_pad_ms: int = 400  # faster-whisper's default (silero's is 30)
    split_at_longest_silence: bool = True
    min_silence_at_max_speech_ms: int = 98

    def __post_init__(self) -> None:
        neg = self.threshold if self.neg_threshold is None else self.neg_threshold
        ms = (self.min_speech_duration_ms, self.min_silence_duration_ms, self.speech_pad_ms)
        if not (0 <= neg <= self.threshold <= 1 and min(ms) >= 0 < self.max_speech_duration_s):
            raise ValueError(f"invalid VAD options (thresholds in [0, 1], durations >= 0): {self}")

    def to_faster_whisper(self) -> dict[str, Any]:
        """kwargs for `faster_whisper.vad.VadOptions` (`transcribe(vad_parameters=...)`); it always
        splits long spans at the last silence, so the two split settings are left out."""
        params = asdict(self)
        del params["split_at_longest_silence"], params["min_silence_at_max_speech_ms"]
        return params


@dataclass(frozen=True)
class SpeechSpan:
    """One stretch of speech, in seconds from the start of the audio."""

    start: float
    end: float


@dataclass(frozen=True)
class VadEvent:
    """A streaming transition: speech starts or ends at `time` seconds from the stream start."""

    kind: Literal["start", "end"]
    time: float


def model_path() -> Path:
    """The bundled ONNX file, located without importing silero_vad (whose import loads torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the silero-vad package is not installed (pip install silero-vad)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE


def get_session(threads: int = 1) -> Any:
    """The process-wide session with `threads` intra-op threads, built once (thread-safe); it
    holds no stream state and `run` may be called from several threads at once."""
    with _SESSIONS_LOCK:
        if threads not in _SESSIONS:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            path, cpu = str(model_path()), ["CPUExecutionProvider"]
            _SESSIONS[threads] = ort.InferenceSession(path, sess_options=opts, providers=cpu)
        return _SESSIONS[threads]


def _new_memory() -> list[np.ndarray]:
    """A stream's recurrent memory: [LSTM state (2, 1, 128), last 64 samples (1, 64)]."""
    return [np.zeros((2, 1, 128), np.float32), np.zeros((1, CONTEXT_SAMPLES), np.float32)]


def _score(windows: np.ndarray, memory: list[np.ndarray], threads: int) -> np.ndarray:
    """(k, 512) float32 consecutive windows -> (k,) speech probabilities; updates `memory`."""
    session, probs = get_session(threads), np.empty(len(windows), dtype=np.float32)
    for i, window in enumerate(windows):
        x = np.concatenate([memory[1], window[None, :]], axis=1)
        out, memory[0] = session.run(None, {"input": x, "state": memory[0], "sr": _SR})
        memory[1], probs[i] = x[:, -CONTEXT_SAMPLES:], out[0, 0]
    return probs


def _as_mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):  # ints: use load_audio
        raise ValueError(f"expected 1-D float 16 kHz mono audio, got {audio.dtype} {audio.shape}")
    return np.ascontiguousarray(audio, dtype=np.float32)


def speech_probabilities(audio: np.ndarray, *, threads: int = 1) -> np.ndarray:
    """Speech probability (float32 in [0, 1]) of each 512-sample window of 16 kHz mono audio of
    shape (n,): shape (ceil(n / 512),); the last partial window is zero-padded."""
    audio = _as_mono(audio)
    windows = np.pad(audio, (0, -len(audio) % WINDOW_SAMPLES)).reshape(-1, WINDOW_SAMPLES)
    return _score(windows, _new_memory(), threads)


class _Segmenter:
    """silero's `get_speech_timestamps_from_probs` state machine, fed one probability at a time.
    Works in samples; `step` returns the raw (unpadded) (start, end) spans it closes."""

    def __init__(self, options: VadOptions) -> None:
        o = self.o = options
        ms = SAMPLE_RATE / 1000  # samples per millisecond
        self.neg = max(o.threshold - 0.15, 0.01) if o.neg_threshold is None else o.neg_threshold
        self.min_speech = ms * o.min_speech_duration_ms
        self.min_silence = ms * o.min_silence_duration_ms
        self.min_sil_at_max = ms * o.min_silence_at_max_speech_ms
        pads = 2 * ms * o.speech_pad_ms
        self.max_speech = SAMPLE_RATE * o.max_speech_duration_s - WINDOW_SAMPLES - pads
        self.index = 0  # windows consumed
        self.start: int | None = None  # open span's start sample; None outside speech
        self._clear()

    def _clear(self) -> None:
        self.temp_end = self.prev_end = self.next_start = 0
        self.possible_ends: list[tuple[int, int]] = []  # (silence start, length) inside the span

    def step(self, prob: float) -> list[tuple[int, int]]:
        """Consume the next window's probability; return the spans (samples) it closes."""
        cur, closed = self.index * WINDOW_SAMPLES, []
        self.index += 1
        if prob >= self.o.threshold and self.temp_end:
            # Only a finite span limit ever uses them; unlimited, an hour of "speech" would
            # keep one per pause.
            if cur - self.temp_end > self.min_sil_at_max and math.isfinite(self.max_speech):
                self.possible_ends.append((self.temp_end, cur - self.temp_end))
            self.temp_end = 0
            if self.next_start < self.prev_end:
                self.next_start = cur
        if prob >= self.o.threshold and self.start is None:
            self.start = cur
            return closed
        if self.start is not None and cur - self.start > self.max_speech:
            if self.o.split_at_longest_silence and self.possible_ends:
                end, silence = max(self.possible_ends, key=lambda e: e[1])
                closed, self.start = [(self.start, end)], end + silence
            elif self.prev_end:
                closed = [(self.start, self.prev_end)]
                self.start = None if self.next_start < self.prev_end else self.next_start
            else:  # no usable silence: cut here
                closed, self.start = [(self.start, cur)], None
            self._clear()
        if prob < self.neg and self.start is not None:
            self.temp_end = self.temp_end or cur
            silence = cur - self.temp_end
            if not self.o.split_at_longest_silence and silence > self.min_sil_at_max:
                self.prev_end = self.temp_end
            if silence >= self.min_silence:
                if self.temp_end - self.start > self.min_speech:
                    closed.append((self.start, self.temp_end))
                self.start = None
                self._clear()
        return closed

    def finish(self, n_samples: int) -> list[tuple[int, int]]:
        """Close the open span at the end of the audio (`n_samples` long) if long enough."""
        start, self.start = self.start, None
        keep = start is not None and n_samples - start > self.min_speech
        return [(start, n_samples)] if keep and start is not None else []


def spans_from_probabilities(
    probs: np.ndarray, n_samples: int, options: VadOptions = VadOptions()
) -> list[SpeechSpan]:
    """Padded speech spans (seconds) from window probabilities of shape (ceil(n_samples / 512),)
    for audio of `n_samples` samples."""
    segmenter = _Segmenter(options)
    raw = [list(span) for prob in probs for span in segmenter.step(float(prob))]
    raw += [list(span) for span in segmenter.finish(n_samples)]
    pad = SAMPLE_RATE * options.speech_pad_ms / 1000
    for i, span in enumerate(raw):  # silero's padding: gaps under 2 pads are shared in the middle
        if i == 0:
            span[0] = int(max(0, span[0] - pad))
        if i == len(raw) - 1:
            span[1] = int(min(n_samples, span[1] + pad))
            continue
        gap = raw[i + 1][0] - span[1]
        shift = gap // 2 if gap < 2 * pad else pad
        span[1] = int(min(n_samples, span[1] + shift))
        raw[i + 1][0] = int(max(0, raw[i + 1][0] - shift))
    return [SpeechSpan(s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in raw]


def detect_speech(
    audio: np.ndarray, options: VadOptions = VadOptions(), *, threads: int = 1
) -> list[SpeechSpan]:
    """Speech spans (seconds) in 16 kHz mono float32 audio of shape (n,): the spans silero's
    `get_speech_timestamps` returns (same windows, state machine, splitting and padding)."""
    probs = speech_probabilities(audio, threads=threads)  # validates the audio
    return spans_from_probabilities(probs, len(audio), options)


def speech_only(
    audio: np.ndarray, options: VadOptions = VadOptions(), *, threads: int = 1
) -> np.ndarray:
    """The speech spans of 16 kHz mono float32 `audio` (n,) joined, shape (m,) with m <= n;
    empty without speech. Language detection listens to this rather than to leading silence."""
    spans = detect_speech(audio, options, threads=threads)
    pieces = [audio[int(s.start * SAMPLE_RATE) : int(s.end * SAMPLE_RATE)] for s in spans]
    return np.concatenate(pieces) if pieces else audio[:0]


class StreamingVad:
    """Voice activity detector for one live 16 kHz mono float32 stream, owning its model state
    (one instance per stream, one thread at a time). Runs the windows and state machine of
    `detect_speech`, so its events match the offline spans: a start once speech has lasted
    min_speech_duration_ms (its padded time lies that far back), an end after
    min_silence_duration_ms of silence (or 2 * speech_pad_ms if longer, to pad as offline)."""

    def __init__(self, options: VadOptions = VadOptions(), *, threads: int = 1) -> None:
        self.options, self._threads = options, threads
        self._pad = int(SAMPLE_RATE * options.speech_pad_ms / 1000)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: model state, buffered samples, position and speech state."""
        self._memory = _new_memory()
        self._segmenter = _Segmenter(self.options)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._n_fed = self._last_end = 0  # samples received; sample of the last end event
        self._opened: int | None = None  # raw start of the open span whose start is reported
        self._pending: int | None = None  # raw end of a closed span whose end is not reported

    @property
    def is_speech(self) -> bool:
        """True between a start event and its end event."""
        return self._opened is not None or self._pending is not None

    @property
    def in_pause(self) -> bool:
        """Inside speech, but silence has begun (an end event follows if it lasts)."""
        return self.is_speech and bool(self._segmenter.temp_end)

    @property
    def pause_end(self) -> float | None:
        """In a pause: the time (seconds from the stream start) its end event will report if
        the silence lasts: where the silence began plus the speech pad. Else None."""
        if not self.in_pause:
            return None
        return (self._segmenter.temp_end + self._pad) / SAMPLE_RATE

    def feed(self, chunk: np.ndarray) -> list[VadEvent]:
        """Add samples (shape (k,), any k >= 0); return the events they complete, in order."""
        chunk = _as_mono(chunk)
        self._n_fed, self._buffer = self._n_fed + len(chunk), np.append(self._buffer, chunk)
        n_full = len(self._buffer) // WINDOW_SAMPLES * WINDOW_SAMPLES
        samples, self._buffer = self._buffer[:n_full], self._buffer[n_full:]
        return self._process(samples)

    def flush(self) -> list[VadEvent]:
        """End the stream: score the buffered tail (zero-padded), close open speech at the end
        of the audio, return the events, then `reset()` for a new stream."""
        events = self._process(np.pad(self._buffer, (0, -len(self._buffer) % WINDOW_SAMPLES)))
        events += self._advance(self._segmenter.finish(self._n_fed))
        if self._pending is not None:
            events.append(self._end(None))
        self.reset()
        return events

    def _process(self, samples: np.ndarray) -> list[VadEvent]:
        """Score whole windows of `samples` (length a multiple of 512); return their events."""
        probs = _score(samples.reshape(-1, WINDOW_SAMPLES), self._memory, self._threads)
        return [e for p in probs for e in self._advance(self._segmenter.step(float(p)))]

    def _advance(self, closed: list[tuple[int, int]]) -> list[VadEvent]:
        """Events for the segmenter's progress, reporting only spans the offline pass keeps."""
        events, seg = [], self._segmenter
        for start, end in closed:
            events += [] if self._pending is None else [self._end(start)]
            events += [] if self._opened == start else [self._open(start)]
            self._pending, self._opened = end, None
        # Later starts and ends lie at >= pos: an unreported span out of silence and longer than
        # min_speech is kept; a pending end is final once no kept start can come within 2 pads.
        pos = min(seg.index * WINDOW_SAMPLES, self._n_fed)
        start = seg.start if seg.start != self._opened and not seg.temp_end else None
        keep = start is not None and pos - start > seg.min_speech
        earliest = pos if seg.start is None else seg.start
        if self._pending is not None and (keep or earliest - self._pending >= 2 * self._pad):
            events.append(self._end(start if keep else None))
        if keep and start is not None:
            events.append(self._open(start))
        return events

    def _open(self, start: int) -> VadEvent:
        self._opened = start
        return VadEvent("start", max(0, start - self._pad, self._last_end) / SAMPLE_RATE)

    def _end(self, next_start: int | None) -> VadEvent:
        end, self._pending = self._pending or 0, None
        gap = 2 * self._pad if next_start is None else next_start - end
        end += gap // 2 if gap < 2 * self._pad else self._pad  # share short gaps, as silero does
        self._last_end = min(end, self._n_fed)
        return VadEvent("end", self._last_end / SAMPLE_RATE)
