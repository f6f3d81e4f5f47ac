"""The slow-tokenizer files (vocab.json, merges.txt) of a Ge'ez vocabulary, when the source
model has them: the same vocabulary and merges as the edited tokenizer.json, so
`WhisperTokenizer` (slow) and `WhisperTokenizerFast` agree."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from utils.geez_vocab.tokenizer_edit import Swap, VocabularyEditError, merge_pairs


def edit_slow_files(
    source: Path, target: Path, swaps: Sequence[Swap], edited: dict[str, Any]
) -> None:
    """Write target/vocab.json and target/merges.txt for `edited` when `source` has them."""
    if (source / "vocab.json").is_file():
        vocab = json.loads((source / "vocab.json").read_text(encoding="utf-8"))
        for swap in swaps:
            if vocab.get(swap.old) != swap.id:
                raise VocabularyEditError(
                    f"{source}/vocab.json holds {swap.old!r} at {vocab.get(swap.old)}, "
                    f"not at {swap.id}"
                )
            del vocab[swap.old]
        vocab.update({swap.new: swap.id for swap in swaps})
        text = json.dumps(vocab, ensure_ascii=False)
        (target / "vocab.json").write_text(text, encoding="utf-8")
    if (source / "merges.txt").is_file():
        first = (source / "merges.txt").read_text(encoding="utf-8").splitlines()[:1]
        header = first if first and first[0].startswith("#version") else []
        lines = header + [f"{a} {b}" for a, b in merge_pairs(edited)]
        (target / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
