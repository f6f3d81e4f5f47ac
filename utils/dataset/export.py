"""A dataset written back in LJSpeech layout: `metadata.csv` (id|text|normalized text) and
`wavs/ID.wav`, for tools that read that layout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from utils.dataset.manifest import MANIFEST_NAME, iter_manifest


def export_ljspeech(root: str | os.PathLike, out: str | os.PathLike, split: str = "") -> int:
    """Write the utterances of `root` (only those of `split` when given) to `out`; returns how
    many. The label goes in both text columns: LJSpeech's third column is the text with
    numbers spelled out, which readers train on, and our `normalized_text` is a scoring form
    (no punctuation), not that. Audio is hard-linked when possible (same file system), else
    copied. A text's `|` and line breaks, which the layout cannot hold, become spaces."""
    root, out = Path(root), Path(out)
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    count = 0
    partial = out / ".metadata.csv.partial"
    with open(partial, "w", encoding="utf-8") as metadata:
        for utterance in iter_manifest(root / MANIFEST_NAME):
            if split and utterance.split != split:
                continue
            name = Path(utterance.audio).stem
            _link_or_copy(utterance.audio_path(root), out / "wavs" / f"{name}.wav")
            text = _field(utterance.text)
            metadata.write(f"{name}|{text}|{text}\n")
            count += 1
    os.replace(partial, out / "metadata.csv")
    return count


def _field(text: str) -> str:
    return " ".join(text.replace("|", " ").split())


def _link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
