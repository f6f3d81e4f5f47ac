"""Whole dataset operations as the CLI and the Datasets tab run them: list, import (from a path
or an uploaded archive), synthesize, each recorded in the dataset's lineage."""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from utils.dataset.importing import ImportOptions, ImportReport, build_dataset
from utils.dataset.manifest import MANIFEST_NAME
from utils.dataset.store import record_step
from utils.workspace import get_workspace

UPLOADS = ".uploads"  # extracted archives, under the workspace's datasets/


def datasets_root() -> Path:
    return get_workspace().ensure().datasets


def list_datasets() -> list[str]:
    """Names of the datasets (folders with a manifest) in the workspace, sorted."""
    root = datasets_root()
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST_NAME).is_file())


def dataset_path(name_or_path: str) -> Path:
    """A dataset folder: an absolute or relative path as given when it has a folder part, else
    a name under the workspace's datasets/ (a bare name may not leave that folder)."""
    given = Path(name_or_path)
    if given.is_absolute() or given.parent != Path("."):
        return given
    if given.name in ("", ".", "..") or given.name.startswith("."):
        raise ValueError(f"{name_or_path!r} is not a dataset name")
    return datasets_root() / given.name


def extract_archive(archive: str | os.PathLike, name: str) -> Path:
    """Unpack a .zip or .tar(.gz/.bz2/.xz) upload into datasets/.uploads/NAME and return the
    folder holding the data (the single top folder when the archive has one). Members that
    would land outside the folder are refused."""
    archive = Path(archive)
    target = datasets_root() / UPLOADS / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                _inside(target, member)
            bundle.extractall(target)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as bundle:
            bundle.extractall(target, filter="data")  # refuses links and paths outside
    else:
        raise ValueError(f"{archive.name}: not a zip or tar archive")
    entries = [p for p in target.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else target


def _inside(root: Path, member: str) -> None:
    if not (root / member).resolve().is_relative_to(root.resolve()):
        raise ValueError(f"archive member {member!r} would be written outside the upload folder")


def _refuse_existing(out: str | os.PathLike) -> None:
    """A finished dataset is never overwritten by a new import or synthesis."""
    if (Path(out) / MANIFEST_NAME).is_file():
        raise ValueError(
            f"{out} already holds a dataset; choose another name (filters and splits write new "
            "versions of an existing one)"
        )


def import_dataset(
    format_name: str,
    source: str | os.PathLike,
    out: str | os.PathLike,
    options: ImportOptions = ImportOptions(),
    progress: Callable[[int], None] | None = None,
    **reader_options: Any,
) -> ImportReport:
    """Import `source` in `format_name` into the dataset folder `out` and record the step;
    `reader_options` go to the format's reader (e.g. `columns` for csv)."""
    from utils.dataset.formats import READERS

    if format_name not in READERS:
        raise ValueError(f"unknown format {format_name!r}; choose one of {', '.join(READERS)}")
    _refuse_existing(out)
    source = Path(source)
    if not source.exists():
        raise ValueError(f"{source}: no such file or folder")
    items = READERS[format_name](source, options.language, **reader_options)
    report = build_dataset(items, out, options, progress)
    record_step(out, {"step": "import", "format": format_name, "source": str(source.resolve()),
                      "options": {"language": options.language}, "kept": report.kept,
                      "rejected": len(report.rejected)})  # fmt: skip
    return report


def synthesize(
    text_file: str | os.PathLike,
    out: str | os.PathLike,
    options,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Speak the sentences of `text_file` with espeak-ng into the dataset folder `out`."""
    from augmentation.tts import read_sentences, synthesize_dataset

    _refuse_existing(out)
    report = synthesize_dataset(read_sentences(text_file), out, options, progress)
    record_step(out, {"step": "synth", "source": str(Path(text_file).resolve()),
                      "options": {"language": options.language, "voices": options.voices,
                                  "seed": options.seed, "limit": options.limit},
                      "kept": report.kept, "rejected": len(report.rejected)})  # fmt: skip
    return report
