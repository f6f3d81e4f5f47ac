"""Designing a Ge'ez vocabulary for one tokenizer: which tokens to add, which ids give way, and
the provenance that makes the choice reproducible (seed, corpus fingerprint, prior source)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.geez_vocab.alphabet import geez_tokens, word_initials
from utils.geez_vocab.corpus import reference_corpus, split_halves
from utils.geez_vocab.prior import MIN_FREQUENCY, emission_prior
from utils.geez_vocab.selection import choose_given_up
from utils.geez_vocab.tokenizer_edit import Swap, edit_tokenizer, restore_tokenizer

METHOD = "geez-vocab/1"
PROVENANCE_FILE = "geez_vocab.json"  # beside tokenizer.json in both model directories


@dataclass(frozen=True)
class GeezVocabConfig:
    """How a Ge'ez vocabulary is chosen. `space_variants`: word-initial characters that also get
    a token with the leading space: 64 give about 1.04 tokens per character (128: 1.02, 0: 1.28)
    and give up 64 fewer tokens (English words) than 128.
    `corpus_every` > 1 keeps every n-th gettext catalog (a smaller corpus, for tests)."""

    space_variants: int = 64
    seed: int = 0
    corpus_every: int = 1
    min_word_frequency: float = MIN_FREQUENCY


@dataclass(frozen=True)
class GeezVocabulary:
    """An edited tokenizer.json, the swaps that made it and their provenance record."""

    tokenizer: dict[str, Any]
    swaps: tuple[Swap, ...]
    provenance: dict[str, Any]


def amharic_texts() -> tuple[str, ...]:
    """The project's Amharic sentences (augmentation/data/amharic_corpus.tsv, column 3)."""
    from augmentation.tts import CORPUS

    rows = CORPUS.read_text(encoding="utf-8").splitlines()[1:]
    return tuple(row.split("\t")[2] for row in rows if row.count("\t") >= 2)


def special_tokens_digest(tokenizer: dict[str, Any]) -> str:
    """sha256 of the added (special and timestamp) tokens with their ids, and the vocab size."""
    added = sorted((t["id"], t["content"], t.get("special", False))
                   for t in tokenizer["added_tokens"])  # fmt: skip
    record = json.dumps([len(tokenizer["model"]["vocab"]), added], ensure_ascii=False)
    return hashlib.sha256(record.encode()).hexdigest()


def design_vocabulary(
    tokenizer: dict[str, Any],
    protected: Iterable[int],
    config: GeezVocabConfig = GeezVocabConfig(),
    progress: Callable[[str], None] | None = None,
) -> GeezVocabulary:
    """The Ge'ez vocabulary for `tokenizer` (a parsed tokenizer.json); `protected` ids (the
    model's suppress lists) are never given up. About two minutes on the full corpus."""
    say = progress or (lambda _: None)
    choosing_amharic, _ = split_halves(amharic_texts(), config.seed)
    new_tokens = geez_tokens(word_initials(choosing_amharic, config.space_variants))
    corpus = reference_corpus(every=config.corpus_every)
    choosing, _ = corpus.halves(config.seed)
    say(f"reference corpus: {len(corpus.texts):,} strings, fingerprint {corpus.fingerprint[:12]}")
    prior = emission_prior(tokenizer, config.min_word_frequency, progress)
    barred = set(protected) | prior.unjudged
    given_up = choose_given_up(tokenizer, len(new_tokens), choosing, barred, prior.by_id)
    say(f"giving up {len(given_up)} tokens for {len(new_tokens)} new ones")
    edited, swaps = edit_tokenizer(tokenizer, new_tokens, given_up)
    provenance = {
        "method": METHOD,
        "seed": config.seed,
        "space_variants": config.space_variants,
        "corpus_fingerprint": corpus.fingerprint,
        "corpus_strings": len(corpus.texts),
        "corpus_every": config.corpus_every,
        "prior": prior.source,
        "source_special_tokens": special_tokens_digest(tokenizer),
        "given_up": [swap.as_dict() for swap in swaps],
    }
    return GeezVocabulary(edited, swaps, provenance)


def copy_provenance(source: Path, target: Path) -> bool:
    """Copy a Ge'ez vocabulary's provenance from model directory `source` to `target`."""
    if not (source / PROVENANCE_FILE).is_file():
        return False
    shutil.copyfile(source / PROVENANCE_FILE, target / PROVENANCE_FILE)
    return True


def swaps_of(provenance: dict[str, Any]) -> tuple[Swap, ...]:
    return tuple(Swap.from_dict(item) for item in provenance.get("given_up", []))


def source_tokenizer(edited: dict[str, Any], provenance: dict[str, Any]) -> dict[str, Any]:
    """The tokenizer a Ge'ez vocabulary was made from, rebuilt from its provenance."""
    return restore_tokenizer(edited, swaps_of(provenance))


def changed_share(
    before: dict[str, Any], after: dict[str, Any], texts: Sequence[str]
) -> tuple[int, int]:
    """(strings whose ids differ, strings compared) between two tokenizers on `texts`."""
    from utils.geez_vocab.selection import ENCODE_BATCH
    from utils.geez_vocab.tokenizer_edit import load_tokenizer

    old, new, changed = load_tokenizer(before), load_tokenizer(after), 0
    for first in range(0, len(texts), ENCODE_BATCH):
        batch = list(texts[first : first + ENCODE_BATCH])
        pairs = zip(old.encode_batch(batch, add_special_tokens=False),
                    new.encode_batch(batch, add_special_tokens=False), strict=True)  # fmt: skip
        changed += sum(a.ids != b.ids for a, b in pairs)
    return changed, len(texts)
