"""`DecodeOptions`: every decoding setting, one frozen dataclass shared by both engines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from utils.vad import VadOptions

Task = Literal["transcribe", "translate"]
VocabularyMode = Literal["bias", "restrict"]


class OptionNotSupportedError(ValueError):
    """An option the chosen engine cannot honour; the message names the option and the engine."""


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode. Vary it with `dataclasses.replace`.

    Defaults favour robustness over raw speed: the VAD filter is on, the model is not conditioned on
    its previous text (a loop cannot feed itself), and the temperature fallback is bounded to four
    steps. Probabilities are natural-log based; durations are seconds.
    """

    task: Task = "transcribe"
    language: str | None = None  # None: detect per file
    beam_size: int = 5
    best_of: int = 5  # candidates when sampling at temperature > 0
    patience: float = 1.0  # beam search patience factor
    length_penalty: float = 1.0
    temperature: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6)  # fallback ladder
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    initial_prompt: str | None = None
    hotwords: str | None = None
    suppress_tokens: tuple[int, ...] = (-1,)  # -1: the model's default non-speech symbols
    vocabulary: tuple[str, ...] = ()  # words decoding is biased towards or restricted to
    vocabulary_mode: VocabularyMode = "bias"
    vad_filter: bool = True
    vad: VadOptions = field(default_factory=VadOptions)
    condition_on_previous_text: bool = False
    hallucination_silence_threshold: float | None = None  # seconds; needs word timestamps
    word_timestamps: bool = True
    max_new_tokens: int | None = None
    # Decode each 30 s window (or clip, or span) once. Whisper decodes the audio after the last
    # complete segment of a window again as a new window (a second encoder pass); a live
    # stream's next update covers that tail anyway, and alone it is often too short to hold
    # more than a hallucinated word. Every engine honours it.
    single_window: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.task not in ("transcribe", "translate"):
            problems.append(f"task must be 'transcribe' or 'translate', not {self.task!r}")
        if self.beam_size < 1 or self.best_of < 1:
            problems.append("beam_size and best_of must be at least 1")
        if self.patience <= 0:
            problems.append("patience must be positive")
        if not self.temperature or any(t < 0 for t in self.temperature):
            problems.append("temperature needs at least one value, none negative")
        if self.repetition_penalty <= 0:
            problems.append("repetition_penalty must be positive")
        if self.no_repeat_ngram_size < 0:
            problems.append("no_repeat_ngram_size must be 0 (off) or more")
        if self.vocabulary_mode not in ("bias", "restrict"):
            problems.append("vocabulary_mode must be 'bias' or 'restrict'")
        if self.max_new_tokens is not None and not 1 <= self.max_new_tokens <= 224:
            problems.append("max_new_tokens must be between 1 and 224 (half the decoder's 448)")
        if self.hallucination_silence_threshold is not None and not self.word_timestamps:
            problems.append("hallucination_silence_threshold needs word_timestamps=True")
        if problems:
            raise ValueError("invalid DecodeOptions: " + "; ".join(problems))
        object.__setattr__(self, "temperature", tuple(float(t) for t in self.temperature))
        object.__setattr__(self, "suppress_tokens", tuple(int(t) for t in self.suppress_tokens))
        object.__setattr__(
            self, "vocabulary", tuple(w.strip() for w in self.vocabulary if w.strip())
        )

    @property
    def effective_hotwords(self) -> str | None:
        """Hotwords plus, in bias mode, the vocabulary words: both become decoder prompt text."""
        words = [self.hotwords] if self.hotwords else []
        if self.vocabulary_mode == "bias":
            words.extend(self.vocabulary)
        return " ".join(words) or None
