"""Whisper decoder token sequences for training: plain, timestamped, prompted and packed labels.

One training sequence is, in Whisper's own layout,

    [<|startofprev|>, *prompt, <|startoftranscript|>, <|lang|>, <|task|>, (<|notimestamps|>),
     *text, <|endoftext|>]

where the prompt part is present only with a prompt, `<|notimestamps|>` only without timestamps,
and with timestamps the text is `<|t0|> text<|t1|>` per segment. The decoder reads the sequence
without its last token (`decoder_input_ids`) and predicts it without its first (`labels`); the
loss ignores (-100) the prompt and the `<|startoftranscript|>` targets, so the model learns to
use a prompt, never to produce one.

Packing puts several short utterances into one 30 s window, each between its own timestamps:
`plan_packs` groups (duration, token count) items greedily, `encode_packed` builds the label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from utils.audio import CHUNK_LENGTH, MAX_DECODER_POSITIONS
from utils.dataset.manifest import TimedText

IGNORE_INDEX = -100  # label value the cross-entropy loss skips
TIME_PRECISION = 0.02  # seconds per timestamp token step
PACK_GAP_SECONDS = 0.2  # silence between the members of a packed window
Task = Literal["transcribe", "translate"]


class LabelTooLongError(ValueError):
    """A token sequence longer than the decoder accepts; the message names the count."""


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of Whisper's special tokens in one tokenizer (the multilingual vocabulary:
    sot 50258, eot 50257, ...). `eot` doubles as the padding id."""

    sot: int
    eot: int
    prev: int
    no_timestamps: int
    timestamp_begin: int  # <|0.00|>; <|t|> is timestamp_begin + round(t / 0.02)
    transcribe: int
    translate: int
    languages: tuple[tuple[str, int], ...]  # (code, token id) of every <|code|> in the vocab

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> SpecialTokens:
        """Look the ids up by token string; ValueError names a token the vocabulary lacks."""
        from transformers.models.whisper.tokenization_whisper import LANGUAGES

        ids = {
            name: _token_id(tokenizer, token)
            for name, token in (
                ("sot", "<|startoftranscript|>"),
                ("eot", "<|endoftext|>"),
                ("prev", "<|startofprev|>"),
                ("no_timestamps", "<|notimestamps|>"),
                ("timestamp_begin", "<|0.00|>"),
                ("transcribe", "<|transcribe|>"),
                ("translate", "<|translate|>"),
            )
        }
        languages = tuple(
            (code, _token_id(tokenizer, f"<|{code}|>"))
            for code in LANGUAGES
            if _has_token(tokenizer, f"<|{code}|>")
        )
        return cls(**ids, languages=languages)

    def language(self, code: str) -> int:
        """Id of `<|code|>` ("am" -> 50334); a full name ("amharic") works too."""
        from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

        key = code.strip().lower()
        key = TO_LANGUAGE_CODE.get(key, key)
        for known, token_id in self.languages:
            if known == key:
                return token_id
        raise ValueError(f"language {code!r} is not in the tokenizer's vocabulary")

    def task(self, task: str) -> int:
        if task not in ("transcribe", "translate"):
            raise ValueError(f"task must be transcribe or translate, not {task!r}")
        return self.transcribe if task == "transcribe" else self.translate

    def timestamp(self, seconds: float) -> int:
        """Id of the timestamp token nearest `seconds`, clamped to [0, 30] s."""
        clamped = min(max(float(seconds), 0.0), float(CHUNK_LENGTH))
        return self.timestamp_begin + round(clamped / TIME_PRECISION)


def _has_token(tokenizer: Any, token: str) -> bool:
    token_id = tokenizer.convert_tokens_to_ids(token)
    unknown = getattr(tokenizer, "unk_token", None)
    return token_id is not None and (token == unknown or token_id != tokenizer.unk_token_id)


def _token_id(tokenizer: Any, token: str) -> int:
    if not _has_token(tokenizer, token):
        raise ValueError(f"the tokenizer has no {token} token (not a Whisper tokenizer?)")
    return int(tokenizer.convert_tokens_to_ids(token))


@dataclass(frozen=True)
class TokenizedExample:
    """Decoder input and target ids, both of length T (the decoder positions used)."""

    decoder_input_ids: tuple[int, ...]
    labels: tuple[int, ...]  # IGNORE_INDEX (-100) where no loss is taken

    def __len__(self) -> int:
        return len(self.decoder_input_ids)


def text_tokens(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text` as Whisper writes it: a leading space, no special tokens; [] for
    empty text."""
    text = text.strip()
    if not text:
        return []
    return list(tokenizer(" " + text, add_special_tokens=False).input_ids)


def encode_example(
    tokenizer: Any,
    text: str,
    *,
    language: str,
    task: str,
    segments: Sequence[TimedText] | None = None,
    prompt: str = "",
    max_length: int = MAX_DECODER_POSITIONS,
    special: SpecialTokens | None = None,
) -> TokenizedExample:
    """The training sequence for one window (see the module docstring for the layout).

    With `segments` (times in seconds from the window start) the label has timestamp tokens and
    its text comes from the segments (`text` is then unused); without, `<|notimestamps|>` and
    `text`. The prompt keeps its last `max_length // 2 - 1` tokens. Raises LabelTooLongError
    when the decoder sequence (T = full length - 1) exceeds `max_length`. Pass `special` to
    skip looking the special ids up again.
    """
    special = special or SpecialTokens.from_tokenizer(tokenizer)
    prefix = []
    if prompt.strip():
        prompt_ids = text_tokens(tokenizer, prompt)[-(max_length // 2 - 1) :]
        prefix = [special.prev, *prompt_ids]
    head = [special.sot, special.language(language), special.task(task)]
    if segments is None:
        body = [special.no_timestamps, *text_tokens(tokenizer, text)]
    else:
        body = _timestamped_tokens(tokenizer, segments, special)
    full = [*prefix, *head, *body, special.eot]
    if len(full) - 1 > max_length:
        raise LabelTooLongError(
            f"the label has {len(full) - 1} decoder tokens, more than the {max_length} allowed"
        )
    masked = len(prefix)  # targets full[1 : len(prefix) + 1]: the prompt after <|startofprev|>
    # and the <|startoftranscript|> that follows it
    labels = [IGNORE_INDEX] * masked + full[masked + 1 :]
    return TokenizedExample(tuple(full[:-1]), tuple(labels))


def _timestamped_tokens(
    tokenizer: Any, segments: Sequence[TimedText], special: SpecialTokens
) -> list[int]:
    """`<|start|> text<|end|>` per segment, in order."""
    tokens: list[int] = []
    for segment in segments:
        tokens.append(special.timestamp(segment.start))
        tokens.extend(text_tokens(tokenizer, segment.text))
        tokens.append(special.timestamp(segment.end))
    return tokens


def label_length(n_text_tokens: int, *, timestamps: int = 0, prompt_tokens: int = 0) -> int:
    """Decoder tokens T of a label with `n_text_tokens` text tokens and `timestamps` segments
    (0: no timestamps) and a prompt of `prompt_tokens` tokens, without tokenizing."""
    prefix = 1 + prompt_tokens if prompt_tokens else 0
    body = n_text_tokens + (2 * timestamps if timestamps else 1)
    return prefix + 3 + body  # sot, language, task; the eot is not a decoder input


@dataclass(frozen=True)
class PackPlan:
    """Members (item indices) of one packed window and their start offsets in it (seconds)."""

    members: tuple[int, ...]
    offsets: tuple[float, ...]
    duration: float  # seconds, last member's end
    tokens: int  # decoder tokens T of the packed label


def plan_packs(
    durations: Sequence[float],
    token_counts: Sequence[int],
    order: Sequence[int] | None = None,
    *,
    max_seconds: float = float(CHUNK_LENGTH),
    gap: float = PACK_GAP_SECONDS,
    max_length: int = MAX_DECODER_POSITIONS,
) -> list[PackPlan]:
    """Greedy packs: walk the items in `order` (default: index order) and add each to the open
    pack while the audio (durations in seconds plus `gap` between members) fits in
    `max_seconds` and the label (text tokens plus two timestamps each) in `max_length`;
    otherwise start a new pack. An item too long on its own gets a pack of its own."""
    if len(durations) != len(token_counts):
        raise ValueError("durations and token_counts must have the same length")
    packs: list[PackPlan] = []
    members: list[int] = []
    offsets: list[float] = []
    end, tokens = 0.0, 3  # sot, language, task
    for index in range(len(durations)) if order is None else order:
        start = end + gap if members else 0.0
        new_end = start + float(durations[index])
        new_tokens = tokens + int(token_counts[index]) + 2
        if members and (new_end > max_seconds or new_tokens > max_length):
            packs.append(PackPlan(tuple(members), tuple(offsets), end, tokens))
            members, offsets, end, tokens = [], [], 0.0, 3
            start, new_end = 0.0, float(durations[index])
            new_tokens = tokens + int(token_counts[index]) + 2
        members.append(int(index))
        offsets.append(round(start, 6))
        end, tokens = new_end, new_tokens
    if members:
        packs.append(PackPlan(tuple(members), tuple(offsets), end, tokens))
    return packs


def encode_packed(
    tokenizer: Any,
    texts: Sequence[str],
    offsets: Sequence[float],
    durations: Sequence[float],
    *,
    language: str,
    task: str = "transcribe",
    max_length: int = MAX_DECODER_POSITIONS,
    special: SpecialTokens | None = None,
) -> TokenizedExample:
    """The label of a packed window: member i as one segment [offsets[i], offsets[i] +
    durations[i]] (seconds from the window start) with texts[i]."""
    segments = [
        TimedText(offset, offset + duration, text)
        for text, offset, duration in zip(texts, offsets, durations, strict=True)
    ]
    return encode_example(
        tokenizer,
        "",
        language=language,
        task=task,
        segments=segments,
        max_length=max_length,
        special=special,
    )


def count_text_tokens(tokenizer: Any, texts: Sequence[str], chunk: int = 1000) -> list[int]:
    """`len(text_tokens(tokenizer, t))` for every text, tokenized in batches (fast)."""
    counts: list[int] = []
    for begin in range(0, len(texts), chunk):
        part = [t.strip() for t in texts[begin : begin + chunk]]
        encoded = tokenizer([" " + t for t in part], add_special_tokens=False).input_ids
        counts.extend(len(ids) if t else 0 for t, ids in zip(part, encoded, strict=True))
    return counts
