"""Synthetic speech datasets from text with espeak-ng (any espeak-ng language; Amharic first).

Each voice variant (an espeak-ng variant with its own speaking rate and pitch) is recorded as a
speaker. Sentences are split into train/validation/test by a seeded shuffle, so test sentences
never appear in training, and with three voices or more the last voice speaks only the test
sentences, so the test split also holds a voice never heard in training. espeak-ng says
nothing for Ge'ez numerals and reads Arabic digits in its own way, so numbers in Ethiopic-script
text are written as Amharic words first; that spoken form is the label.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.dataset.importing import ImportOptions, ImportReport, Problem, SourceItem, build_dataset
from utils.dataset.manifest import Translation

# Variants that stay intelligible (the novelty voices of espeak-ng are left out).
VARIANTS = ("m1", "f3", "m3", "f2", "m2", "f4", "m4", "f1", "m5", "f5", "m6", "m7")
CORPUS = Path(__file__).parent / "data" / "amharic_corpus.tsv"
_DIGITS = re.compile(r"\d+")


class TtsUnavailableError(RuntimeError):
    """espeak-ng is missing or fails; the message says how to install it."""


@dataclass(frozen=True)
class Voice:
    variant: str  # espeak-ng variant name
    rate: int  # words per minute
    pitch: int  # 0..99

    @property
    def name(self) -> str:
        return f"{self.variant}-r{self.rate}-p{self.pitch}"


@dataclass(frozen=True)
class Sentence:
    id: str
    text: str
    translation: Translation | None = None


@dataclass(frozen=True)
class SynthOptions:
    language: str = "am"
    voices: int = 4
    rate_range: tuple[int, int] = (130, 175)  # words per minute
    pitch_range: tuple[int, int] = (35, 70)
    validation: float = 0.1  # share of sentences
    test: float = 0.1
    seed: int = 0
    limit: int | None = None  # sentences at most


def voice_variants(count: int, options: SynthOptions) -> list[Voice]:
    """`count` distinct voices: variants in a fixed order, rate and pitch drawn from the seed."""
    rng = np.random.default_rng(options.seed)
    return [
        Voice(
            VARIANTS[i % len(VARIANTS)],
            int(rng.integers(*options.rate_range, endpoint=True)),
            int(rng.integers(*options.pitch_range, endpoint=True)),
        )
        for i in range(count)
    ]


def spoken_text(text: str, language: str) -> str:
    """The text as it should be spoken: for Ethiopic-script languages, numerals and digits as
    Amharic words (espeak-ng's Amharic voice skips Ge'ez numerals)."""
    if language not in ("am", "ti"):
        return text
    from utils.amharic.number_words import number_to_amharic_words
    from utils.amharic.numerals import ethiopic_numerals_to_arabic

    text = ethiopic_numerals_to_arabic(text)
    words = _DIGITS.sub(lambda m: f" {number_to_amharic_words(int(m.group()))} ", text)
    return " ".join(words.split())


def speak(text: str, language: str, voice: Voice) -> bytes:
    """WAV bytes (22.05 kHz mono) of espeak-ng speaking `text`."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise TtsUnavailableError("espeak-ng is not installed (Debian: apt install espeak-ng)")
    command = [binary, "-v", f"{language}+{voice.variant}", "-s", str(voice.rate), "-p",
               str(voice.pitch), "--stdout", text]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=120)
    if done.returncode != 0 or len(done.stdout) < 100:
        raise TtsUnavailableError(f"espeak-ng failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


def assign_sentence_splits(sentences: list[Sentence], options: SynthOptions) -> list[str]:
    """One split per sentence, from a seeded shuffle (test and validation sentences never
    reach training)."""
    order = np.random.default_rng(options.seed).permutation(len(sentences))
    n_test = round(options.test * len(sentences))
    n_validation = round(options.validation * len(sentences))
    splits = ["train"] * len(sentences)
    for rank, index in enumerate(order):
        if rank < n_test:
            splits[index] = "test"
        elif rank < n_test + n_validation:
            splits[index] = "validation"
    return splits


def synth_items(sentences: list[Sentence], options: SynthOptions) -> Iterator[SourceItem | Problem]:
    """Each sentence spoken by one voice: training voices take turns on train and validation
    sentences; with 3 voices or more the last one speaks only (and all) test sentences."""
    voices = voice_variants(options.voices, options)
    held_out = voices[-1:] if len(voices) >= 3 else []
    seen_voices = voices[: len(voices) - len(held_out)]
    for k, (sentence, split) in enumerate(
        zip(sentences, assign_sentence_splits(sentences, options), strict=True)
    ):
        pool = held_out if split == "test" and held_out else seen_voices
        voice = pool[k % len(pool)]
        text = spoken_text(sentence.text, options.language)
        where = f"{sentence.id} ({voice.name})"
        try:
            audio = speak(text, options.language, voice)
        except (TtsUnavailableError, subprocess.TimeoutExpired) as exc:
            yield Problem(where, str(exc), sentence.id)
            continue
        yield SourceItem(
            sentence.id, audio, text, where, speaker=voice.name, split=split,
            language=options.language, translation=sentence.translation,
        )  # fmt: skip


def read_sentences(path: str | Path, translation_language: str = "en") -> list[Sentence]:
    """Sentences of a text file: one per line, or a TSV with a header holding `id`, the
    language's text (`amharic` or `text`) and optionally `english`."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t") if lines and "\t" in lines[0] else []
    if not header:
        texts = [line.strip() for line in lines if line.strip()]
        return [Sentence(f"s{i:05d}", text) for i, text in enumerate(texts, 1)]
    column = "amharic" if "amharic" in header else "text"
    rows = [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if line]
    return [
        Sentence(
            row.get("id") or f"s{i:05d}",
            row[column].strip(),
            Translation(row["english"].strip(), translation_language)
            if row.get("english")
            else None,
        )
        for i, row in enumerate(rows, 1)
        if row.get(column, "").strip()
    ]


def synthesize_dataset(
    sentences: Iterable[Sentence],
    out: str | Path,
    options: SynthOptions = SynthOptions(),
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Speak the sentences and write them as a dataset at `out` (manifest, audio, report)."""
    chosen = list(sentences)[: options.limit]
    import_options = ImportOptions(language=options.language, segment_long=False)
    return build_dataset(synth_items(chosen, options), out, import_options, progress)
