"""Reading manifest-like files for the corpus importers (`utils.dataset.corpora`), streamed:
lines and delimited rows named `file:line`, header-keyed records, and one record (JSONL keys:
audio, text, id, speaker, split, language, start, end, translation) made into a `SourceItem`
or a `Problem`. Split names are mapped onto the manifest's: dev/valid/validation ->
"validation"."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any

from utils.dataset.importing import Problem, SourceItem
from utils.dataset.manifest import Translation

Items = Iterator[SourceItem | Problem]
_SPLIT_NAMES = MappingProxyType(
    {"": "", "train": "train", "dev": "validation", "valid": "validation",
     "validation": "validation", "test": "test"}
)  # fmt: skip


def split_name(name: str) -> str | None:
    """The manifest split for a corpus split name ("dev" -> "validation"); None if unknown."""
    return _SPLIT_NAMES.get(name.strip().lower())


def text_lines(path: Path) -> Iterator[tuple[str, str | None]]:
    """(`file:line`, text) per line; text None for a line that is not UTF-8."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                text = None
            yield f"{path}:{number}", text


def delimited_rows(
    path: Path, delimiter: str, quoting: int = csv.QUOTE_MINIMAL
) -> Iterator[tuple[str, list[str] | str]]:
    """(`file:line`, fields) per non-blank row of a delimited file, or (`file:line`, reason) for
    a row that cannot be read. A quoted field may span lines; the row's first line is named."""
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        line = 1
        while True:
            try:
                row: list[str] | str = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                row = f"not readable as CSV: {exc}"
            if isinstance(row, list) and not _is_utf8(row):
                row = "the line is not UTF-8 text"
            if isinstance(row, str) or any(field.strip() for field in row):
                yield f"{path}:{line}", row
            line = reader.line_num + 1


def _is_utf8(fields: list[str]) -> bool:
    try:
        "".join(fields).encode("utf-8")  # bytes that were not UTF-8 are lone surrogates here
    except UnicodeEncodeError:
        return False
    return True


def header_records(
    path: Path, delimiter: str, quoting: int, required: tuple[str, ...]
) -> Iterator[tuple[str, dict[str, str]] | Problem]:
    """(`file:line`, {column: value}) per row of a file with a header line; one Problem for
    the whole file when a required column is missing."""
    rows = delimited_rows(path, delimiter, quoting)
    where, header = next(rows, (f"{path}:1", "the file is empty"))
    if isinstance(header, str):
        yield Problem(where, f"no header: {header}")
        return
    header = [name.strip() for name in header]
    missing = [name for name in required if name not in header]
    if missing:
        found = ", ".join(header)
        yield Problem(where, f"no column {', '.join(missing)} (the header has: {found})")
        return
    for where, row in rows:
        if isinstance(row, str):
            yield Problem(where, row)
        elif len(row) != len(header):
            yield Problem(where, f"expected {len(header)} fields (the header's), found {len(row)}")
        else:
            yield where, dict(zip(header, row, strict=True))


def files_in(root: Path, suffixes: tuple[str, ...]) -> list[Path] | Problem:
    """`root` itself when it is a file, else its files with one of `suffixes`, by name."""
    if root.is_file():
        return [root]
    found = sorted(p for p in root.glob("*") if p.suffix.lower() in suffixes and p.is_file())
    return found or Problem(str(root), f"no {' or '.join(suffixes)} file found")


def jsonl_items(
    path: Path, language: str, convert: Callable[[dict], dict] = lambda record: record
) -> Items:
    """Items of a JSONL file, one object a line, made into JSONL keys by `convert`."""
    for where, line in text_lines(path):
        if line is None:
            yield Problem(where, "the line is not UTF-8 text")
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Problem(where, f"not JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(record, dict):
            yield Problem(where, "a line must be a JSON object")
            continue
        yield record_item(convert(record), path.parent, where, language)


def record_item(
    record: Mapping[str, Any], base: Path, where: str, language: str
) -> SourceItem | Problem:
    """An item from a record with the JSONL keys; audio relative to `base`."""
    audio, text = record.get("audio"), record.get("text")
    if not isinstance(audio, str) or not audio.strip():
        return Problem(where, "no audio path")
    given = PurePath(audio.strip())
    utterance_id = str(record.get("id") or "").strip() or (
        given.stem if given.is_absolute() else given.with_suffix("").as_posix()
    )
    if not isinstance(text, str):
        return Problem(where, "no text", utterance_id)
    split = split_name(str(record.get("split") or ""))
    if split is None:
        reason = f"unknown split {record.get('split')!r}: use train, validation (dev) or test"
        return Problem(where, reason, utterance_id)
    try:
        start, end = _seconds(record, "start"), _seconds(record, "end")
        translation = _translation(record.get("translation"))
    except ValueError as exc:
        return Problem(where, str(exc), utterance_id)
    path = base / given
    if not path.is_file():
        return Problem(where, f"missing audio {path}", utterance_id)
    return SourceItem(
        utterance_id, str(path), text.strip(), where, speaker=str(record.get("speaker") or ""),
        split=split, language=str(record.get("language") or language), start=start, end=end,
        translation=translation,
    )  # fmt: skip


def _seconds(record: Mapping[str, Any], key: str) -> float | None:
    value = record.get(key)
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{key} must be a number of seconds, not {value!r}")
    return seconds


def _translation(value: Any) -> Translation | None:
    if value is None:
        return None
    if isinstance(value, dict) and all(isinstance(value.get(k), str) for k in ("text", "language")):
        return Translation(value["text"], value["language"])
    raise ValueError('translation must be {"text": ..., "language": ...}')


@dataclass(frozen=True)
class CsvColumns:
    """Which header columns of a CSV/TSV file hold what. "" for id, speaker or split: no such
    column (the id is then the audio path without suffix). delimiter "": tab for `.tsv`, comma
    otherwise."""

    audio: str = "audio"
    text: str = "text"
    id: str = ""
    speaker: str = ""
    split: str = ""
    delimiter: str = ""


def csv_items(path: Path, columns: CsvColumns, language: str, split: str = "") -> Items:
    """Items of a CSV/TSV file with a header; `split` unless a split column gives one."""
    delimiter = columns.delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    names = {key: name for key, name in asdict(columns).items() if name and key != "delimiter"}
    for record in header_records(path, delimiter, csv.QUOTE_MINIMAL, tuple(names.values())):
        if isinstance(record, Problem):
            yield record
            continue
        where, row = record
        fields = {"split": split} | {key: row[name] for key, name in names.items()}
        yield record_item(fields, path.parent, where, language)
