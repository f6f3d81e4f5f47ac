"""Manifest versions: a step that rewrites the manifest (filtering, splitting, restoring) writes a
new version and keeps the one it replaces, since training runs record the fingerprint of the
data they saw.

Layout of a dataset directory:

- `manifest.jsonl` is always the current version. Versions are numbered from 1 (the manifest the
  import wrote); the current one is numbered one above the highest archived number.
- `versions/manifest-vN.jsonl` holds version N once a newer version replaced it. Numbers only
  grow: restoring version N writes its content as a new version and archives the current one,
  so no version is ever lost.
- `dataset.json` lineage (via `utils.dataset.store.record_step`) gets one step per new version,
  with its parameters, `version`, `utterances`, `fingerprint` (of the new version) and
  `replaced_version` / `replaced_fingerprint` (the fingerprint dataset.json held for the version
  it replaced, "" when none was recorded).

Replacing is crash-safe: the new version is written in full to a draft first; the current
manifest is then hard-linked (copied where links are unsupported) into `versions/` and the draft
renamed over it, so `manifest.jsonl` exists at every moment. One writer at a time per dataset is
assumed (the app runs dataset steps one by one).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from utils.dataset.manifest import MANIFEST_NAME, ManifestWriter, Utterance, iter_manifest
from utils.dataset.store import INFO_NAME, read_info, record_step

VERSIONS_DIR = "versions"
_ARCHIVED = re.compile(r"manifest-v(\d+)\.jsonl")


@dataclass(frozen=True)
class VersionInfo:
    """One manifest version. `step` names the lineage step that wrote it (for the first version,
    the step recorded before any versioned one, e.g. "import"; "" when unknown); `fingerprint`
    and `at` come from dataset.json ("" when it recorded none)."""

    number: int
    path: Path
    utterances: int
    current: bool
    step: str = ""
    fingerprint: str = ""
    at: str = ""


def archived_path(root: str | os.PathLike, number: int) -> Path:
    """Where version `number` lies once a newer version replaced it."""
    return Path(root) / VERSIONS_DIR / f"manifest-v{number}.jsonl"


def _archived_numbers(root: Path) -> list[int]:
    folder = root / VERSIONS_DIR
    if not folder.is_dir():
        return []
    found = (_ARCHIVED.fullmatch(p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def current_number(root: str | os.PathLike) -> int:
    """The number of the current manifest (1 before any new version was written)."""
    return max(_archived_numbers(Path(root)), default=0) + 1


class VersionDraft:
    """A new manifest version being written: `write` utterances and put the step's parameters
    and counts into `step`; `new_version` commits it on a clean exit and sets `info`."""

    def __init__(self, root: Path, number: int):
        self.number = number
        self.step: dict[str, Any] = {}
        self.info: VersionInfo | None = None
        self.path = root / VERSIONS_DIR / f".draft-v{number}.jsonl"
        self._writer = ManifestWriter(self.path)

    def write(self, utterance: Utterance) -> None:
        self._writer.write(utterance)

    @property
    def count(self) -> int:
        return self._writer.count


@contextmanager
def new_version(root: str | os.PathLike, step_name: str) -> Iterator[VersionDraft]:
    """Write a new manifest version: the body writes into the yielded draft; on a clean exit the
    current manifest is archived, the draft becomes `manifest.jsonl` and the lineage step
    (`step_name`, `draft.step`, counts, fingerprints) is recorded. An exception in the body
    leaves the dataset as it was."""
    root = Path(root)
    if not (root / MANIFEST_NAME).is_file():
        raise FileNotFoundError(f"{root}: no {MANIFEST_NAME}, not a dataset directory")
    draft = VersionDraft(root, current_number(root) + 1)
    with draft._writer:
        yield draft
    draft.info = _commit(root, draft, step_name)


def _commit(root: Path, draft: VersionDraft, step_name: str) -> VersionInfo:
    previous = draft.number - 1
    archive = archived_path(root, previous)
    try:
        os.link(root / MANIFEST_NAME, archive)
    except OSError:
        shutil.copyfile(root / MANIFEST_NAME, archive)
    os.replace(draft.path, root / MANIFEST_NAME)
    step = {
        "step": step_name,
        **draft.step,
        "version": draft.number,
        "utterances": draft.count,
        "replaced_version": previous,
        "replaced_fingerprint": read_info(root).get("fingerprint", ""),
    }
    info = record_step(root, step)
    info["lineage"][-1]["fingerprint"] = info["fingerprint"]
    _write_info(root, info)
    return VersionInfo(
        number=draft.number,
        path=root / MANIFEST_NAME,
        utterances=draft.count,
        current=True,
        step=step_name,
        fingerprint=info["fingerprint"],
        at=info["lineage"][-1]["at"],
    )


def _write_info(root: Path, info: dict[str, Any]) -> None:
    """Rewrite dataset.json atomically (as `record_step` does)."""
    partial = root / f".{INFO_NAME}.partial"
    partial.write_text(json.dumps(info, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(partial, root / INFO_NAME)


@contextmanager
def atomic_lines(path: str | os.PathLike) -> Iterator[IO[str]]:
    """A text file written in full or not at all (a side record such as the filter's list of
    removed utterances): written to a partial file renamed into place on a clean exit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            yield handle
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def list_versions(root: str | os.PathLike) -> list[VersionInfo]:
    """Every version of a dataset, oldest first; the last one is the current manifest."""
    root = Path(root)
    info = read_info(root)
    lineage, info_fingerprint = info.get("lineage", []), info.get("fingerprint", "")
    numbers = [*_archived_numbers(root), current_number(root)]
    return [_version(root, lineage, info_fingerprint, n, n == numbers[-1]) for n in numbers]


def _version(
    root: Path, lineage: list[Mapping[str, Any]], info_fingerprint: str, number: int, current: bool
) -> VersionInfo:
    path = root / MANIFEST_NAME if current else archived_path(root, number)
    step = _step_for(lineage, number, current)
    fingerprint = step.get("fingerprint") or _replaced_fingerprint(lineage, number)
    if current and not fingerprint:
        fingerprint = info_fingerprint
    utterances = step.get("utterances")
    return VersionInfo(
        number=number,
        path=path,
        utterances=_count_lines(path) if utterances is None else int(utterances),
        current=current,
        step=str(step.get("step", "")),
        fingerprint=str(fingerprint or ""),
        at=str(step.get("at", "")),
    )


def _step_for(lineage: list[Mapping[str, Any]], number: int, current: bool) -> Mapping[str, Any]:
    """The lineage step that wrote version `number`; for a version no step names (the imported
    one), the last step before the one that replaced it (the last step, when it is current)."""
    for step in lineage:
        if step.get("version") == number:
            return step
    end = next(
        (i for i, s in enumerate(lineage) if s.get("replaced_version") == number),
        len(lineage) if current else 0,
    )
    earlier = [s for s in lineage[:end] if "version" not in s]
    if not earlier:
        return {}
    return {k: v for k, v in earlier[-1].items() if k in ("step", "at")}


def _replaced_fingerprint(lineage: list[Mapping[str, Any]], number: int) -> str:
    for step in lineage:
        if step.get("replaced_version") == number:
            return str(step.get("replaced_fingerprint", ""))
    return ""


def _count_lines(path: Path) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def restore_version(root: str | os.PathLike, number: int) -> VersionInfo:
    """Make archived version `number` current again. Its content is written as a new version
    (lineage step "restore" with `restored_from`), so the version it replaces is kept too."""
    root = Path(root)
    source = archived_path(root, number)
    if not source.is_file():
        kept = ", ".join(str(n) for n in _archived_numbers(root)) or "none"
        current = current_number(root)
        raise ValueError(
            f"no archived version {number} in {root} (archived: {kept}; current: {current})"
        )
    with new_version(root, "restore") as draft:
        for utterance in iter_manifest(source):
            draft.write(utterance)
        draft.step["restored_from"] = number
    assert draft.info is not None
    return draft.info
