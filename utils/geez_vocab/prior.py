"""An emission prior for Whisper's tokens: how often speech in its languages would make the
model write each token, estimated from the spoken-language word frequencies of `wordfreq`
(subtitles, Wikipedia, news, books in 42 languages, pinned in requirements.txt).

Every word at or above `min_frequency` is tokenized as a transcript writes it: after a space,
capitalized, all capitals, and glued to what precedes it; each token the tokenizer produces earns
the word's frequency. A token no frequent word produces has prior 0. Scripts wordfreq segments
unlike Whisper (CJK, Hangul, kana, Thai: their frequency lists are of morphemes, while Whisper
holds multi-word subtitle phrases) cannot be judged this way; their tokens are `unjudged`, and the
selection never gives them up; nor tokens with digits, symbols only, or letters case folding
changes (ß): wordfreq merges, drops or folds those.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from utils.geez_vocab.tokenizer_edit import load_tokenizer

MIN_FREQUENCY = 1e-6  # words rarer than one in a million barely move a token's prior
ENCODE_BATCH = 50_000
_UNJUDGED_SCRIPTS = re.compile(
    "[\u0e00-\u0e7f\u1100-\u11ff\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u3400-\u4dbf"
    "\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff00-\uffef]"
)


@dataclass(frozen=True)
class EmissionPrior:
    """Per-id prior (summed word frequency; missing ids have 0) and the ids it cannot judge."""

    by_id: dict[int, float]
    unjudged: frozenset[int]
    source: str  # "wordfreq <version>, <n> words >= <min_frequency>"

    def __getitem__(self, index: int) -> float:
        return self.by_id.get(index, 0.0)


def transcript_forms(word: str) -> tuple[str, ...]:
    """The ways a transcript writes `word` (a lower-case wordfreq entry)."""
    title = word[:1].upper() + word[1:]
    return (f" {word}", f" {title}", f" {word.upper()}", word, title)


def _spoken_words(min_frequency: float) -> Iterator[tuple[str, float]]:
    import wordfreq

    for language in sorted(wordfreq.available_languages("best")):
        for word, frequency in wordfreq.get_frequency_dict(language, "best").items():
            if frequency < min_frequency:
                break  # the lists are sorted by falling frequency
            yield word, frequency


def judged_by_words(text: str) -> bool:
    """Whether word frequencies can speak for a token's text: no character of a script
    wordfreq segments unlike Whisper, no digit (wordfreq merges digits), a letter, lower, upper
    or title case only (wordfreq lower-cases: `iPhone` is none of the forms it yields), and no
    character case folding changes unlike lower-casing (ß, İ). Byte fragments of other scripts
    (U+FFFD when decoded alone) are judged: only the corpus can use them."""
    if _UNJUDGED_SCRIPTS.search(text) or any(c.isdigit() for c in text):
        return False
    if "\ufffd" in text:
        return True
    word = text.strip()
    cased = word in (word.lower(), word.upper(), word[:1].upper() + word[1:].lower())
    return any(c.isalpha() for c in word) and cased and word.casefold() == word.lower()


def unjudged_ids(tokenizer: dict[str, Any]) -> frozenset[int]:
    """Ids of regular tokens whose text word frequencies cannot speak for (`judged_by_words`)."""
    encoder = load_tokenizer(tokenizer)
    size = len(tokenizer["model"]["vocab"])
    return frozenset(i for i in range(size) if not judged_by_words(encoder.decode([i])))


def emission_prior(
    tokenizer: dict[str, Any],
    min_frequency: float = MIN_FREQUENCY,
    progress: Callable[[str], None] | None = None,
) -> EmissionPrior:
    """The prior of every token of `tokenizer` (a parsed tokenizer.json); about a minute."""
    frequency_of: dict[str, float] = defaultdict(float)
    for word, frequency in _spoken_words(min_frequency):
        frequency_of[word] += frequency  # the same word in several languages
    words = sorted(frequency_of)
    if progress:
        progress(f"emission prior: {len(words):,} spoken words")
    encoder, prior = load_tokenizer(tokenizer), defaultdict(float)
    for first in range(0, len(words), ENCODE_BATCH):
        batch = words[first : first + ENCODE_BATCH]
        texts = [form for word in batch for form in transcript_forms(word)]
        forms = len(texts) // len(batch)
        encodings = encoder.encode_batch(texts, add_special_tokens=False)
        for position, encoding in enumerate(encodings):
            share = frequency_of[batch[position // forms]]
            for index in encoding.ids:
                prior[index] += share
    source = f"wordfreq {metadata.version('wordfreq')}, {len(words)} words >= {min_frequency:g}"
    return EmissionPrior(dict(prior), unjudged_ids(tokenizer), source)
