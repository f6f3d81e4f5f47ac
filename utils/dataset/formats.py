"""Importers: each reads one source layout and yields `SourceItem`s (or `Problem`s for what it
cannot read), streaming; `utils.dataset.importing.build_dataset` does the rest."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from utils.dataset.corpora import CORPUS_READERS
from utils.dataset.importing import Problem, SourceItem

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm", ".aac")
Items = Iterator[SourceItem | Problem]


def _text_lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per line, text None for a line that is not UTF-8."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                yield number, None


def read_ljspeech(root: str | os.PathLike, language: str = "") -> Items:
    """LJSpeech layout: `metadata.csv` with `id|text[|normalized text]` and `wavs/ID.wav`.
    The third column (the text with numbers spelled out) is the label when present."""
    root = Path(root)
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        yield Problem(str(root), "no metadata.csv: not an LJSpeech-layout folder")
        return
    for number, line in _text_lines(metadata):
        where = f"{metadata}:{number}"
        if line is None:
            yield Problem(where, "the line is not UTF-8 text")
            continue
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2:
            yield Problem(where, "expected id|text[|normalized text], found no '|'")
            continue
        label = fields[2] if len(fields) > 2 and fields[2].strip() else fields[1]
        utterance_id = fields[0].strip()
        audio = root / "wavs" / f"{utterance_id}.wav"
        if not audio.is_file():
            yield Problem(where, f"missing audio {audio}", utterance_id)
            continue
        yield SourceItem(utterance_id, str(audio), label.strip(), where, language=language)


def read_folder(root: str | os.PathLike, language: str = "") -> Items:
    """A folder (searched recursively) of audio files, each with a `.txt` sidecar of the same
    name holding its transcript. The id is the path relative to the folder, without suffix;
    a sub-folder name becomes the speaker."""
    root = Path(root)
    if not root.is_dir():
        yield Problem(str(root), "not a folder")
        return
    for audio in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        relative = audio.relative_to(root).with_suffix("")
        sidecar = audio.with_suffix(".txt")
        if not sidecar.is_file():
            yield Problem(str(audio), f"no transcript: {sidecar.name} is missing")
            continue
        try:
            text = sidecar.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            yield Problem(str(sidecar), f"not UTF-8 text (byte {exc.start})")
            continue
        speaker = relative.parent.as_posix() if relative.parent != Path(".") else ""
        yield SourceItem(
            relative.as_posix(), str(audio), " ".join(text.split()), str(sidecar),
            speaker=speaker, language=language,
        )  # fmt: skip


# CLI format name -> importer; corpora.py never imports this module, so no import cycle.
READERS = {"ljspeech": read_ljspeech, "folder": read_folder, **CORPUS_READERS}
