"""Incremental transcription of one live stream: partial text that may change and final text that
never does, with words timed from the stream start.

Audio (16 kHz float32, chunks of any size) goes to a per-stream Silero VAD and a rolling buffer.
While speech lasts, the buffer is decoded again once enough new audio arrived; LocalAgreement
commits the words two successive hypotheses agree on (`agreement.py`), committed text prompts the
next decode, and the buffer is cut at a committed word before it passes its cap in seconds or in
decoder tokens (Amharic spends about 3 tokens per character). At the end of speech the remaining
words are final. Memory and work per update are bounded by the caps, not by the stream's length.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from utils.audio import SAMPLE_RATE
from utils.streaming.agreement import LocalAgreement
from utils.streaming.turns import AHEAD, FINAL, PARTIAL, EngineTurns
from utils.transcription.options import DecodeOptions
from utils.transcription.results import Word
from utils.transcription.windows import max_window_seconds, token_budget
from utils.vad import StreamingVad, VadOptions

PROMPT_WORDS = 30  # committed words before the buffer that prompt the next decode
KEPT_WORDS = 400  # committed words remembered: the prompt picks those before the buffer
UNCONFIRMED_MIN_PROBABILITY = 0.3  # trailing unconfirmed words below it are not made final
# The final is decoded ahead once a pause lasted the speech pad and this much more. Waiting
# longer throws away fewer decodes (pauses inside speech) but delays every final as much:
# measured, 0.15 s raised the single stream's p95 final latency from 1.6 s to 1.8 s.
AHEAD_AFTER = 0.0
PARTIAL_PACE = 2.0  # partial updates at most every this many times a decode's duration
LANGUAGE_LOCK_SECONDS = 3.0  # a detected language is kept once this much audio confirmed it
REPETITION_LIMIT = 2.4  # gzip compression ratio above which a segment is a decoding loop
REMAINDER_SECONDS = 0.5  # audio after a final's last word (beyond the pad) decoded once more
SILENCE_KEPT = 2.0  # seconds kept in silence: the VAD reports a start this far back at most


@dataclass(frozen=True)
class StreamOptions:
    """How a stream is decoded. Vary with `dataclasses.replace`."""

    language: str | None = None  # None: detected on the first decode, then kept
    task: Literal["transcribe", "translate"] = "transcribe"
    update_seconds: float = 1.0  # decode again once this much new audio arrived
    max_buffer_seconds: float = 15.0  # also capped per language (windows.max_window_seconds)
    max_buffer_tokens: int = 180  # decoder tokens of the uncommitted hypothesis
    partials: bool = True  # decode while speech lasts; False: finals at the end of speech only
    # A busy shared engine skips partial updates; after this much undecoded speech a partial
    # update waits for its turn instead (the tail would otherwise never be shown).
    partial_max_gap: float = 4.0
    vad: VadOptions = field(
        default_factory=lambda: VadOptions(min_silence_duration_ms=600, speech_pad_ms=200)
    )

    def __post_init__(self) -> None:
        if not 0.1 <= self.update_seconds <= self.max_buffer_seconds:
            raise ValueError("update_seconds must be in [0.1, max_buffer_seconds]")
        if self.max_buffer_seconds > 30 or self.max_buffer_tokens < 16:
            raise ValueError("max_buffer_seconds must be <= 30 and max_buffer_tokens >= 16")


@dataclass(frozen=True)
class StreamEvent:
    """`partial`: the whole unstable tail (replaces the previous partial); `final`: append-only,
    numbered by `seq`; `vad`: speech started (`speech` True) or ended. Times in seconds from the
    stream start."""

    kind: Literal["partial", "final", "vad"]
    text: str = ""
    words: tuple[Word, ...] = ()
    seq: int = 0
    start: float = 0.0
    end: float = 0.0
    speech: bool | None = None


def _text(words: list[Word] | tuple[Word, ...]) -> str:
    return "".join(w.word for w in words).strip()


def _kept_words(segments: Any) -> tuple[list[Word], int]:
    """The words of `segments` and their tokens, without decoding loops: a segment like "Please
    enter your agent login." x 40 (seen after a prompt much like the audio) is no hypothesis;
    without it the next update simply tries again."""
    kept = [s for s in segments if s.compression_ratio <= REPETITION_LIMIT]
    return [w for s in kept for w in s.words], sum(len(s.tokens) for s in kept)


class StreamingTranscriber:
    """One stream's state over a shared engine (`transcribe(samples, DecodeOptions)` returning a
    `TranscriptionResult` with word timings). Not thread-safe: one caller per stream; streams
    sharing an engine share its `EngineTurns` (None: this stream has the engine to itself)."""

    def __init__(
        self, engine: Any, options: StreamOptions | None = None, turns: EngineTurns | None = None
    ) -> None:
        self.engine, self.options = engine, options or StreamOptions()
        self._turns = turns
        self._rates = getattr(engine, "token_rates", None)  # the model's own tokens per second
        self.language = self.options.language
        self._vad = StreamingVad(self.options.vad)
        self._agreement = LocalAgreement()
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0.0  # seconds: stream time of the buffer's first sample
        self._received = 0  # samples received
        self._undecoded = 0  # samples since the last decode
        self._decode_seconds = 0.0  # recent wall time of one decode (moving average)
        self._speech = False
        self._seq = 0
        self._committed: list[Word] = []  # the last KEPT_WORDS final words
        self._last_decode: tuple[tuple, Any] | None = None  # (key, (words, tokens, language))
        self._decoded_ahead: float | None = None  # stream time a pause was decoded up to

    # -- input -----------------------------------------------------------------------------------
    def feed(self, samples: np.ndarray) -> list[StreamEvent]:
        """Add 16 kHz mono float32 samples (n,); return the events they caused, in order."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._buffer = np.concatenate([self._buffer, samples])
        self._received += samples.size
        self._undecoded += samples.size
        events = self._vad_events(self._vad.feed(samples))
        # In a pause the tail cannot change: instead of a partial, the final is decoded ahead.
        if self._speech and self._vad.in_pause:
            self._decode_ahead()
        elif self._speech and self._due() and self._near_cap():
            events += self._update()  # unbroken speech: commit and cut, partials or not
        elif self._speech and self.options.partials and self._partial_due():
            events += self._update(urgent=False)
        if not self._speech:
            self._drop_silence()
        return events

    def finish(self) -> list[StreamEvent]:
        """End of stream: decode what speech remains and make it final."""
        events = self._vad_events(self._vad.flush())
        if self._speech:
            events += self._end_of_speech(self.now)
        return events

    @property
    def now(self) -> float:
        """Seconds of audio received."""
        return self._received / SAMPLE_RATE

    @property
    def speaking(self) -> bool:
        """Whether the VAD is inside speech now."""
        return self._speech

    # -- speech state ----------------------------------------------------------------------------
    def _vad_events(self, vad_events: list) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for event in vad_events:
            if event.kind == "start" and not self._speech:
                self._speech = True
                self._cut(event.time)  # the buffer starts where the VAD says speech starts
                self._undecoded = round((self.now - event.time) * SAMPLE_RATE)
                events.append(StreamEvent("vad", speech=True, start=event.time))
            elif event.kind == "end" and self._speech:
                events += self._end_of_speech(event.time)
                events.append(StreamEvent("vad", speech=False, end=event.time))
        return events

    def _end_of_speech(self, end: float) -> list[StreamEvent]:
        """Decode the speech that ended at stream time `end`, make all of it final and drop its
        audio (a tail left in the buffer would be transcribed again with the next speech)."""
        events = self._update(until=end, show_tail=False)  # the tail is made final just below
        final = self._agreement.flush(drop_below=UNCONFIRMED_MIN_PROBABILITY)
        self._speech = False
        events += self._finals(final)
        if final and self.options.partials:
            events.append(StreamEvent("partial"))  # the tail is now empty
        self._cut(max(end, self._agreement.committed_end))
        return events

    def _drop_silence(self) -> None:
        """Outside speech keep only the last SILENCE_KEPT seconds (the VAD's padded start)."""
        self._cut(self.now - SILENCE_KEPT)

    # -- decoding --------------------------------------------------------------------------------
    def _due(self) -> bool:
        return self._undecoded >= self.options.update_seconds * SAMPLE_RATE

    def _partial_due(self) -> bool:
        """A partial update waits for `update_seconds` of new audio, and for PARTIAL_PACE times
        a decode's recent duration: the engine stays free half the time, so the end of speech
        seldom finds a partial running ahead of its final (which then waits for it). A loaded
        machine decodes slower, so its partials slow down first."""
        interval = max(self.options.update_seconds, PARTIAL_PACE * self._decode_seconds)
        return self._undecoded >= interval * SAMPLE_RATE

    def _decode_options(self, seconds: float) -> DecodeOptions:
        # One window per decode: faster-whisper would decode the audio after the last word again
        # as a second window, twice the encoder work for a tail that the next update covers, or
        # that is the pause before a final (where it hallucinated "fact.", "in.", "word.").
        # Only text before the buffer prompts it: words inside are transcribed again, and a
        # prompt holding them makes Whisper skip them and misplace what follows (whisper_streaming).
        before = [w for w in self._committed if w.end <= self._buffer_start + 0.01]
        prompt = _text(before[-PROMPT_WORDS:])
        return DecodeOptions(
            language=self.language, task=self.options.task, beam_size=1, temperature=(0.0,),
            vad_filter=False, word_timestamps=True, condition_on_previous_text=False,
            initial_prompt=prompt or None, single_window=True,
            # A loop (a prompt much like the audio can start one) costs up to 224 steps, seconds
            # of a shared engine; speech needs a fraction of that.
            max_new_tokens=token_budget(self.language, seconds, rates=self._rates),
        )  # fmt: skip

    def _hypothesis(self, until: float | None) -> tuple[list[Word], int]:
        """Words of the buffer up to stream time `until` (None: all of it), in absolute times,
        and the decoder tokens they cost."""
        stop = None if until is None else max(0, round((until - self._buffer_start) * SAMPLE_RATE))
        audio = self._buffer[:stop]
        if audio.size < SAMPLE_RATE // 10:
            return [], 0
        final = until is not None
        options = self._decode_options(audio.size / SAMPLE_RATE)
        key = (self._buffer_start, audio.size, options, final)  # same key: the same decode
        if self._last_decode is not None and self._last_decode[0] == key:
            decoded = self._last_decode[1]  # decoded ahead, in the pause before the end of speech
        else:
            decoded = self._decode(audio, options, final)
            self._last_decode = (key, decoded)
        words, tokens, language = decoded
        if self.language is None and (audio.size >= LANGUAGE_LOCK_SECONDS * SAMPLE_RATE or final):
            self.language = language or None  # a second of speech can fool detection
        offset = self._buffer_start
        return [dataclasses.replace(w, start=w.start + offset, end=w.end + offset)
                for w in words], tokens  # fmt: skip

    def _decode(
        self, audio: np.ndarray, options: DecodeOptions, final: bool
    ) -> tuple[list[Word], int, str | None]:
        """One window's words (times from the audio's start), their tokens, and the language.
        For a final, Whisper leaves an unfinished last segment out of the window's text: if the
        words end well before the audio (more than the speech pad and REMAINDER_SECONDS), the
        rest is decoded too, as faster-whisper's next window would be."""
        result = self.engine.transcribe(audio, options)
        words, tokens = _kept_words(result.segments)
        rest = audio.size / SAMPLE_RATE - (words[-1].end if words else 0.0)
        if final and words and rest > self.options.vad.speech_pad_ms / 1000 + REMAINDER_SECONDS:
            extra, extra_tokens = self._decode_rest(audio, options, words, result.language)
            words, tokens = words + extra, tokens + extra_tokens
        return words, tokens, result.language

    def _decode_rest(
        self, audio: np.ndarray, options: DecodeOptions, words: list[Word], language: str | None
    ) -> tuple[list[Word], int]:
        """The words after `words` (those of the audio's first window), prompted by them."""
        start = round(words[-1].end * SAMPLE_RATE)
        before = f"{options.initial_prompt or ''} {_text(words)}".split()[-PROMPT_WORDS:]
        rest = dataclasses.replace(
            options, initial_prompt=" ".join(before),
            max_new_tokens=token_budget(
                language, (audio.size - start) / SAMPLE_RATE, rates=self._rates
            ),
        )  # fmt: skip
        extra, tokens = _kept_words(self.engine.transcribe(audio[start:], rest).segments)
        shift = start / SAMPLE_RATE
        return [dataclasses.replace(w, start=w.start + shift, end=w.end + shift)
                for w in extra], tokens  # fmt: skip

    def _decode_ahead(self) -> None:
        """Once a pause has lasted the VAD's speech pad (and AHEAD_AFTER), decode the buffer up
        to where its end event will put the end of speech, while the VAD still waits to be sure
        (600 ms). If the silence lasts, the end of speech finds that decode ready (the cache in
        `_hypothesis`) and the final comes without a decode; if speech resumes, it was an idle
        engine's work. It does not wait for a turn: queued, these decodes delayed other
        sessions' finals more than they sped up their own (measured with 2 to 10 streams)."""
        until = self._vad.pause_end
        if until is None or self.now < until + AHEAD_AFTER or until == self._decoded_ahead:
            return
        with self._engine_turn(AHEAD) as granted:
            if granted:  # else tried again with the next frame
                self._decoded_ahead = until
                self._hypothesis(until)

    @contextmanager
    def _engine_turn(self, priority: int) -> Iterator[bool]:
        """Whether this decode may run now: finals wait for the engine, partials take it only
        when free (or once `partial_max_gap` of speech went undecoded)."""
        if self._turns is None:
            yield True
            return
        starving = self._undecoded >= self.options.partial_max_gap * SAMPLE_RATE
        wait = priority == FINAL or (priority == PARTIAL and starving)
        with self._turns.turn(priority, wait=wait) as granted:
            yield granted

    def _update(
        self, until: float | None = None, urgent: bool = True, show_tail: bool = True
    ) -> list[StreamEvent]:
        with self._engine_turn(FINAL if urgent else PARTIAL) as granted:
            if not granted:
                return []
            self._undecoded = 0  # (a decode ahead does not count: it updates no agreement)
            started = time.perf_counter()
            words, tokens = self._hypothesis(until)
            took = time.perf_counter() - started
            self._decode_seconds = took if not self._decode_seconds else (
                0.7 * self._decode_seconds + 0.3 * took)  # fmt: skip
        final, tail = self._agreement.update(words)
        events = self._finals(final)
        if self.options.partials and show_tail:
            events.append(StreamEvent("partial", _text(tail), tuple(tail),
                                      start=tail[0].start if tail else 0.0,
                                      end=tail[-1].end if tail else 0.0))  # fmt: skip
        return events + self._bound(tokens)

    def _finals(self, words: list[Word]) -> list[StreamEvent]:
        if not words:
            return []
        self._seq += 1
        self._committed = (self._committed + words)[-KEPT_WORDS:]
        return [StreamEvent("final", _text(words), tuple(words), self._seq,
                            words[0].start, words[-1].end)]  # fmt: skip

    # -- the buffer's bounds ---------------------------------------------------------------------
    def _cap_seconds(self) -> float:
        window = max_window_seconds(self.language, rates=self._rates) if self.language else 30.0
        return min(self.options.max_buffer_seconds, window)

    def _near_cap(self) -> bool:
        return self._buffer.size / SAMPLE_RATE >= self._cap_seconds() * 0.8

    def _bound(self, tokens: int) -> list[StreamEvent]:
        """Cut at the last committed word once the buffer nears a cap; with nothing committed,
        finalize the tail first, and with no words at all keep only the last update's audio,
        so the buffer can never grow without limit."""
        if not self._near_cap() and tokens < self.options.max_buffer_tokens:
            return []
        events = []
        if self._agreement.committed_end <= self._buffer_start:  # keep the possibly cut word
            events = self._finals(self._agreement.flush(keep_last=1))
        if self._agreement.committed_end <= self._buffer_start:  # speech without words
            self._cut(self.now - self.options.update_seconds)
        self._cut(self._agreement.committed_end)
        return events

    def _cut(self, at: float) -> None:
        """Drop the buffer's audio before stream time `at` (seconds)."""
        drop = round((at - self._buffer_start) * SAMPLE_RATE)
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop / SAMPLE_RATE
