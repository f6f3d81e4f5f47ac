"""Importers for public corpus layouts: Common Voice, FLEURS, Kaldi data directories, Hugging
Face datasets (saved to disk, or an audiofolder), and JSONL or CSV/TSV manifests.

Each is a generator `read_X(root, language="") -> Iterator[SourceItem | Problem]`, like those of
`utils.dataset.formats`: it streams its source row by row, a row it cannot use becomes a
`Problem` naming `file:line` (`file:row` for Arrow) and the reason, and it never raises for bad
data. Audio paths inside a manifest file are relative to that file. Split names are mapped onto
the manifest's: dev/valid/validation -> "validation". The shared line, row and record helpers
live in `utils.dataset.records`. This module does not import `formats` (which adds
`CORPUS_READERS` to its `READERS`), so the two never import each other.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any

from utils.dataset.importing import Problem, SourceItem
from utils.dataset.records import (
    CsvColumns,
    Items,
    csv_items,
    delimited_rows,
    files_in,
    header_records,
    jsonl_items,
    split_name,
    text_lines,
)

TEXT_COLUMNS = ("sentence", "text", "transcription", "normalized_text")  # first present wins
SPEAKER_COLUMNS = ("speaker_id", "speaker", "client_id")
CORPUS_SPLITS = (("train", "train"), ("dev", "validation"), ("test", "test"))  # file -> split


def read_commonvoice(root: str | os.PathLike, language: str = "") -> Items:
    """Common Voice: `train.tsv`, `dev.tsv` and `test.tsv` (those present; split set, dev ->
    validation) or else `validated.tsv` (split ""), with `clips/`. Tab-separated with a header
    and no quoting (sentences hold quotes). Needs columns client_id (the speaker), path and
    sentence; locale, when present, is the language. The id is the clip name without suffix.
    other.tsv and invalidated.tsv are never read."""
    root = Path(root)
    tables = [(root / f"{name}.tsv", split) for name, split in CORPUS_SPLITS]
    tables = [(table, split) for table, split in tables if table.is_file()]
    if not tables and (root / "validated.tsv").is_file():
        tables = [(root / "validated.tsv", "")]
    if not tables:
        yield Problem(str(root), "no train/dev/test.tsv or validated.tsv: not Common Voice")
    for table, split in tables:
        yield from _commonvoice_table(table, root / "clips", split, language)


def _commonvoice_table(table: Path, clips: Path, split: str, language: str) -> Items:
    for record in header_records(table, "\t", csv.QUOTE_NONE, ("client_id", "path", "sentence")):
        if isinstance(record, Problem):
            yield record
            continue
        where, row = record
        name = row["path"].strip()
        audio = clips / name
        if name and not audio.is_file() and not PurePath(name).suffix:
            audio = clips / f"{name}.mp3"  # early releases leave the suffix out
        utterance_id = PurePath(name).stem
        if not name or not audio.is_file():
            yield Problem(where, f"missing audio {audio}", utterance_id)
            continue
        yield SourceItem(
            utterance_id, str(audio), row["sentence"].strip(), where,
            speaker=row["client_id"].strip(), split=split,
            language=row.get("locale", "").strip() or language,
        )  # fmt: skip


def read_fleurs(root: str | os.PathLike, language: str = "") -> Items:
    """FLEURS: `train.tsv`, `dev.tsv`, `test.tsv` without a header (id, file name, raw
    transcription, normalized transcription, characters, num_samples, gender), audio in
    `audio/SPLIT/` or `SPLIT/`. The label is the raw transcription (cased, punctuated); the id
    is the file name without suffix (the id column is shared by every reading of a sentence).
    FLEURS names no speakers, so speaker is ""."""
    root = Path(root)
    tables = [(root / f"{name}.tsv", name, split) for name, split in CORPUS_SPLITS]
    tables = [entry for entry in tables if entry[0].is_file()]
    if not tables:
        yield Problem(str(root), "no train.tsv, dev.tsv or test.tsv: not a FLEURS folder")
    for table, name, split in tables:
        folders = (root / "audio" / name, root / name)
        folder = next((f for f in folders if f.is_dir()), folders[0])
        yield from _fleurs_table(table, folder, split, language)


def _fleurs_table(table: Path, folder: Path, split: str, language: str) -> Items:
    for where, row in delimited_rows(table, "\t", csv.QUOTE_NONE):
        if isinstance(row, str):
            yield Problem(where, row)
            continue
        if len(row) < 3:
            yield Problem(where, f"expected id, file name, transcription, ...; found {len(row)}")
            continue
        name = row[1].strip()
        audio, utterance_id = folder / name, PurePath(name).stem
        if not name or not audio.is_file():
            yield Problem(where, f"missing audio {audio}", utterance_id)
            continue
        yield SourceItem(
            utterance_id, str(audio), row[2].strip(), where, split=split, language=language
        )


@dataclass(frozen=True)
class _KaldiMaps:
    """The small Kaldi tables, id -> (`file:line`, rest of the line)."""

    recordings: Mapping[str, tuple[str, str]]  # wav.scp
    speakers: Mapping[str, tuple[str, str]]  # utt2spk
    segments: Mapping[str, tuple[str, str]] | None  # None: no segments file


def read_kaldi(root: str | os.PathLike, language: str = "") -> Items:
    """A Kaldi data directory: `text` (utt id, transcript) streamed line by line; `wav.scp`,
    optional `utt2spk` and optional `segments` (utt id, recording id, start, end in seconds;
    end -1: to the end) are read into dicts first (ids and paths only, small). With segments
    the items cut the recording. Pipe commands in wav.scp (`... |`) are never run: their items
    are rejected. A relative path is found under the data directory or two levels up (the
    recipe folder holding `data/NAME`)."""
    root = Path(root)
    missing = [name for name in ("text", "wav.scp") if not (root / name).is_file()]
    if missing:
        yield Problem(str(root), f"no {' or '.join(missing)}: not a Kaldi data directory")
        return
    problems: list[Problem] = []
    has_segments = (root / "segments").is_file()
    maps = _KaldiMaps(
        _kaldi_table(root / "wav.scp", 2, problems),
        _kaldi_table(root / "utt2spk", 2, problems),
        _kaldi_table(root / "segments", 4, problems) if has_segments else None,
    )
    yield from problems
    for where, line in text_lines(root / "text"):
        if line is None:
            yield Problem(where, "the line is not UTF-8 text")
        elif line.strip():
            utterance_id, *transcript = line.split(maxsplit=1)
            yield _kaldi_item(utterance_id, "".join(transcript), where, maps, root, language)


def _kaldi_table(path: Path, fields: int, problems: list[Problem]) -> dict[str, tuple[str, str]]:
    """id -> (`file:line`, rest) for a Kaldi table (absent: empty); bad lines go to problems."""
    table: dict[str, tuple[str, str]] = {}
    if not path.is_file():
        return table
    for where, line in text_lines(path):
        parts = (line or "").split(maxsplit=1)
        if line is None:
            problems.append(Problem(where, "the line is not UTF-8 text"))
        elif parts and (len(parts) < 2 or len(parts[1].split()) < fields - 1):
            problems.append(Problem(where, f"expected {fields} fields", parts[0]))
        elif parts:
            table[parts[0]] = (where, parts[1].strip())
    return table


def _kaldi_item(
    utterance_id: str, transcript: str, where: str, maps: _KaldiMaps, root: Path, language: str
) -> SourceItem | Problem:
    recording, start, end = utterance_id, None, None
    if maps.segments is not None:
        if utterance_id not in maps.segments:
            return Problem(where, "no line for it in segments", utterance_id)
        segment_where, segment = maps.segments[utterance_id]
        recording, first, last = segment.split()[:3]
        try:
            start, end = float(first), float(last)
        except ValueError:
            return Problem(segment_where, f"start and end must be seconds: {segment}", utterance_id)
        end = None if end < 0 else end  # Kaldi's -1: to the end of the recording
    if recording not in maps.recordings:
        return Problem(where, f"recording {recording!r} is not in wav.scp", utterance_id)
    scp_where, entry = maps.recordings[recording]
    if entry.endswith("|"):
        reason = "a pipe command is never run: write its audio to a file and list that path"
        return Problem(scp_where, reason, utterance_id)
    audio = _kaldi_path(root, entry)
    if not audio.is_file():
        return Problem(where, f"missing audio {audio} (from {scp_where})", utterance_id)
    return SourceItem(
        utterance_id, str(audio), " ".join(transcript.split()), where,
        speaker=maps.speakers.get(utterance_id, ("", ""))[1], language=language,
        start=start, end=end,
    )  # fmt: skip


def _kaldi_path(root: Path, entry: str) -> Path:
    path = Path(entry)
    if path.is_absolute():
        return path
    return next((base / path for base in (root, root.parent.parent) if (base / path).exists()),
                root / path)  # fmt: skip


def read_jsonl(root: str | os.PathLike, language: str = "") -> Items:
    """A `.jsonl` file, or each `.jsonl` file in a folder: one object a line with `audio` (a
    path relative to the file) and `text`; optional `id` (default: the audio path without
    suffix), `speaker`, `split`, `language`, `start`/`end` (seconds) and `translation`
    ({"text", "language"})."""
    files = files_in(Path(root), (".jsonl",))
    if isinstance(files, Problem):
        yield files
        return
    for path in files:
        yield from jsonl_items(path, language)


def read_csv(
    root: str | os.PathLike, language: str = "", *, columns: CsvColumns = CsvColumns()
) -> Items:
    """A `.csv` or `.tsv` file with a header (or each one in a folder); audio paths relative
    to the file; `columns` names the columns. A missing column is one Problem for the file."""
    files = files_in(Path(root), (".csv", ".tsv"))
    if isinstance(files, Problem):
        yield files
        return
    for path in files:
        yield from csv_items(path, columns, language)


def read_hf(root: str | os.PathLike, language: str = "") -> Items:
    """A Hugging Face `datasets` dataset: saved with `save_to_disk` (a DatasetDict with
    `dataset_dict.json`, or one Dataset with `state.json`; its Arrow files are read with
    pyarrow, batch by batch, never decoded through `datasets`) or an audiofolder
    (`metadata.csv` or `metadata.jsonl` with `file_name`, at the top or in split folders).
    The text is the first of TEXT_COLUMNS present, the speaker the first of SPEAKER_COLUMNS,
    the language a locale/language column or `language`. The split is the DatasetDict key or
    the folder name (dev/validation -> "validation"); a saved split of another name (e.g.
    Common Voice's "other") is not imported. Audio bytes stored in the dataset are decoded as
    they are; else its path is read. The id is the audio file name without suffix, else an
    `id` column, else `SPLIT-ROW`."""
    root = Path(root)
    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        yield from _saved_dataset(root, language)
        return
    metadata = _audiofolder_metadata(root)
    if not metadata:
        reason = "neither a saved Hugging Face dataset nor an audiofolder (no dataset_dict.json,"
        yield Problem(str(root), f"{reason} state.json, metadata.csv or metadata.jsonl)")
    for path, split in metadata:
        yield from _audiofolder_items(path, split, language)


def _saved_dataset(root: Path, language: str) -> Items:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        yield Problem(str(root), "reading a saved Hugging Face dataset needs pyarrow")
        return
    parts = [(root, "")]
    if (root / "dataset_dict.json").is_file():
        try:
            names = json.loads((root / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
            parts = [(root / str(name), str(name)) for name in names]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            yield Problem(str(root / "dataset_dict.json"), f"not readable: {exc!r}")
            return
    for folder, name in parts:
        split = split_name(name)
        if split is None:
            yield Problem(str(folder), f"split {name!r} is not train, validation or test: skipped")
            continue
        for arrow in _arrow_files(folder):
            yield from _arrow_items(arrow, split, language)


def _arrow_files(folder: Path) -> list[Path]:
    """The Arrow files of one saved Dataset, in `state.json`'s order (else by name)."""
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        return [folder / entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return sorted(folder.glob("*.arrow"))


def _arrow_items(arrow: Path, split: str, language: str) -> Items:
    """Items of one Arrow stream file (the `save_to_disk` format), a record batch at a time."""
    import pyarrow as pa

    row = 0
    try:
        with pa.memory_map(str(arrow)) as source:
            reader = pa.ipc.open_stream(source)
            columns = _hf_columns(reader.schema)
            if "audio" not in columns or "text" not in columns:
                found = ", ".join(reader.schema.names)
                yield Problem(str(arrow), f"no audio column or no text column (found: {found})")
                return
            for record in _arrow_records(reader, list(columns.values())):
                row += 1
                fields = {key: record[name] for key, name in columns.items()}
                yield _hf_item(fields, arrow, row, split, language)
    except (OSError, pa.ArrowException) as exc:
        yield Problem(f"{arrow}:{row + 1}", f"not readable as an Arrow stream: {exc}")


def _arrow_records(reader: Any, names: list[str], rows: int = 32) -> Iterator[dict[str, Any]]:
    """The rows of `names`, converted to Python `rows` at a time (a record batch can hold
    hundreds of clips' bytes)."""
    for batch in reader:
        batch = batch.select(names)
        for start in range(0, batch.num_rows, rows):
            yield from batch.slice(start, rows).to_pylist()


def _hf_columns(schema: Any) -> dict[str, str]:
    """Item field -> column name, for the columns present."""
    import pyarrow as pa

    names = schema.names
    structs = [f.name for f in schema if pa.types.is_struct(f.type)
               and {"bytes", "path"} <= {s.name for s in f.type}]  # fmt: skip
    candidates = {
        "audio": ("audio", *structs), "text": TEXT_COLUMNS, "speaker": SPEAKER_COLUMNS,
        "language": ("locale", "language"), "id": ("id",),
    }  # fmt: skip
    found = {key: _first_present(options, names) for key, options in candidates.items()}
    return {key: name for key, name in found.items() if name}


def _first_present(options: tuple[str, ...], names: Any) -> str:
    return next((name for name in options if name in names), "")


def _hf_item(
    record: Mapping[str, Any], arrow: Path, row: int, split: str, language: str
) -> SourceItem | Problem:
    where, audio = f"{arrow}:{row}", record["audio"]
    data, path = (audio.get("bytes"), audio.get("path")) if isinstance(audio, dict) else ("", audio)
    fallback = str(record.get("id") or f"{split or 'row'}-{row}")
    utterance_id = PurePath(path).stem if path else fallback
    source: str | bytes | None = data
    if not data and path:
        source = str(arrow.parent / path)  # an absolute path stays as it is
        if not Path(source).is_file():
            return Problem(where, f"missing audio {source}", utterance_id)
    if not source:
        return Problem(where, "the audio has neither bytes nor a path", utterance_id)
    text = record["text"] if isinstance(record["text"], str) else ""
    return SourceItem(
        utterance_id, source, text.strip(), where, speaker=str(record.get("speaker") or ""),
        split=split, language=str(record.get("language") or language),
    )  # fmt: skip


def _audiofolder_metadata(root: Path) -> list[tuple[Path, str]]:
    """(metadata file, split) at the top of `root` and in its sub-folders; a folder named
    train/dev/validation/test gives the split, any other none."""
    found = []
    folders = [root, *sorted(p for p in root.glob("*") if p.is_dir())] if root.is_dir() else []
    for folder in folders:
        split = "" if folder == root else split_name(folder.name) or ""
        for name in ("metadata.jsonl", "metadata.csv"):
            if (folder / name).is_file():
                found.append((folder / name, split))
    return found


def _audiofolder_items(path: Path, split: str, language: str) -> Items:
    if path.suffix == ".jsonl":
        yield from jsonl_items(path, language, lambda record: _audiofolder_record(record, split))
        return
    rows = delimited_rows(path, ",")
    header = next(rows, ("", ""))[1]
    rows.close()
    present = header if isinstance(header, list) else []
    text = _first_present(TEXT_COLUMNS, present)
    if not text:
        yield Problem(f"{path}:1", f"no text column: one of {', '.join(TEXT_COLUMNS)} is needed")
        return
    speaker = _first_present(SPEAKER_COLUMNS, present)
    columns = CsvColumns(audio="file_name", text=text, speaker=speaker, delimiter=",")
    yield from csv_items(path, columns, language, split)


def _audiofolder_record(record: dict, split: str) -> dict:
    """An audiofolder metadata.jsonl object with the JSONL keys `record_item` reads."""
    text, speaker = _first_present(TEXT_COLUMNS, record), _first_present(SPEAKER_COLUMNS, record)
    return {"audio": record.get("file_name"), "text": record.get(text) if text else None,
            "speaker": record.get(speaker, ""), "split": split}  # fmt: skip


CORPUS_READERS: Mapping[str, Callable[..., Items]] = MappingProxyType(
    {"commonvoice": read_commonvoice, "fleurs": read_fleurs, "kaldi": read_kaldi,
     "hf": read_hf, "jsonl": read_jsonl, "csv": read_csv}
)  # fmt: skip
