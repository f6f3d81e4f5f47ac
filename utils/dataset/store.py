"""A dataset directory's record (`dataset.json`): content fingerprint and lineage; validation
and statistics of an existing dataset. Everything streams over the manifest."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from utils.dataset.importing import REPORT_NAME, Problem
from utils.dataset.manifest import MANIFEST_NAME, ManifestError, Utterance, iter_manifest

INFO_NAME = "dataset.json"
_BLOCK = 1 << 20


def fingerprint(root: str | os.PathLike) -> str:
    """sha256 over every utterance's id, text and audio bytes, in manifest order."""
    root = Path(root)
    digest = hashlib.sha256()
    for utterance in iter_manifest(root / MANIFEST_NAME):
        digest.update(f"{utterance.id}\0{utterance.text}\0".encode())
        with open(utterance.audio_path(root), "rb") as handle:
            while block := handle.read(_BLOCK):
                digest.update(block)
    return digest.hexdigest()


def read_info(root: str | os.PathLike) -> dict[str, Any]:
    path = Path(root) / INFO_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def record_step(root: str | os.PathLike, step: dict[str, Any]) -> dict[str, Any]:
    """Add a lineage step (source, importer options, filters...) and refresh the fingerprint;
    returns the new record."""
    root = Path(root)
    info = read_info(root)
    info.setdefault("name", root.name)
    info.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
    info["lineage"] = [*info.get("lineage", []), {**step, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}]
    info["fingerprint"] = fingerprint(root)
    partial = root / f".{INFO_NAME}.partial"
    partial.write_text(json.dumps(info, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(partial, root / INFO_NAME)
    return info


def validate_dataset(root: str | os.PathLike) -> list[Problem]:
    """Problems of an existing dataset: unreadable manifest lines, missing or undecodable audio,
    durations that disagree with the audio, empty texts, duplicate ids."""
    import soundfile as sf

    root = Path(root)
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        return [Problem(str(root), f"no {MANIFEST_NAME}: not a dataset directory")]
    problems, seen = [], set()
    with open(manifest, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{manifest}:{number}"
            try:
                utterance = Utterance.from_json(line, where)
            except ManifestError as exc:
                problems.append(Problem(where, str(exc).removeprefix(f"{where}: ")))
                continue
            problems += _utterance_problems(root, utterance, where, seen, sf)
    return problems


def _utterance_problems(
    root: Path, utterance: Utterance, where: str, seen: set, sf: Any
) -> list[Problem]:
    found = []
    if utterance.id in seen:
        found.append(Problem(where, f"duplicate id {utterance.id!r}", utterance.id))
    seen.add(utterance.id)
    if not utterance.text.strip():
        found.append(Problem(where, "empty text", utterance.id))
    path = utterance.audio_path(root)
    try:
        seconds = sf.info(str(path)).duration
    except (RuntimeError, OSError) as exc:
        reason = "missing audio" if not path.exists() else f"unreadable audio ({exc})"
        return [*found, Problem(where, f"{reason}: {utterance.audio}", utterance.id)]
    if utterance.start is None and abs(seconds - utterance.duration) > 0.05:
        found.append(
            Problem(
                where,
                f"duration {utterance.duration:.2f} s in the manifest, {seconds:.2f} s in audio",
                utterance.id,
            )
        )
    return found


@dataclass(frozen=True)
class DatasetStats:
    n: int
    hours: float
    splits: dict[str, int]  # utterances per split ("" for unassigned)
    speakers: int
    duration_percentiles: dict[str, float]  # p0 p5 p50 p95 p100, seconds
    rejected: int  # items the import rejected
    rejected_reasons: dict[str, int]  # by reason (its first words)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def dataset_stats(root: str | os.PathLike) -> DatasetStats:
    root = Path(root)
    durations, splits, speakers = [], Counter(), set()
    for utterance in iter_manifest(root / MANIFEST_NAME):
        durations.append(utterance.duration)
        splits[utterance.split] += 1
        speakers.add(utterance.speaker)
    values = np.asarray(durations or [0.0])
    report_path = root / REPORT_NAME
    rejected = json.loads(report_path.read_text())["rejected"] if report_path.is_file() else []
    reasons = Counter(" ".join(r["reason"].split()[:3]) for r in rejected)
    return DatasetStats(
        n=len(durations),
        hours=round(float(np.sum(durations)) / 3600, 4),
        splits=dict(splits),
        speakers=len(speakers),
        duration_percentiles={
            f"p{q}": round(float(np.percentile(values, q)), 3) for q in (0, 5, 50, 95, 100)
        },
        rejected=len(rejected),
        rejected_reasons=dict(reasons),
    )
