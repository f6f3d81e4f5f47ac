"""The one workspace root every feature writes under.

Layout: ``models/``, ``datasets/``, ``runs/`` and ``exports/`` below the root, which is
``./workspace`` unless the ``WHISPER_STUDIO_WORKSPACE`` environment variable names another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

WORKSPACE_ENV = "WHISPER_STUDIO_WORKSPACE"
SUBDIRS = ("models", "datasets", "runs", "exports")


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    def ensure(self) -> Workspace:
        """Create the root and its sub-directories; returns self for chaining."""
        for name in SUBDIRS:
            (self.root / name).mkdir(parents=True, exist_ok=True)
        return self


def get_workspace(root: str | os.PathLike | None = None) -> Workspace:
    """The workspace at `root`, else at $WHISPER_STUDIO_WORKSPACE, else at ./workspace (created)."""
    chosen = root or os.environ.get(WORKSPACE_ENV) or "workspace"
    return Workspace(Path(chosen).expanduser().resolve()).ensure()
