"""Tracking a dataset with DVC, when `dvc` is installed and the dataset lies inside a DVC
repository (a folder above it holds `.dvc/`). `dvc add` stores the folder's content in DVC's
cache and writes `NAME.dvc` beside it, to be committed with git; the manifest's own
fingerprint (dataset.json) stays the studio's record."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


class DvcUnavailableError(RuntimeError):
    """DVC cannot track this dataset; the message says why and what to do."""


def dvc_repository(path: str | os.PathLike) -> Path | None:
    """The DVC repository root holding `path` (the nearest folder with `.dvc/`), or None."""
    for folder in [Path(path).resolve(), *Path(path).resolve().parents]:
        if (folder / ".dvc").is_dir():
            return folder
    return None


def track_with_dvc(root: str | os.PathLike, timeout: float = 3600) -> Path:
    """`dvc add` the dataset folder; returns the `.dvc` file written. DvcUnavailableError when
    dvc is missing, the folder is outside a DVC repository, or dvc fails (its message kept)."""
    root = Path(root).resolve()
    binary = shutil.which("dvc")
    if binary is None:
        raise DvcUnavailableError(
            "dvc is not installed (pip install dvc), so the dataset was not tracked; its "
            "fingerprint is in dataset.json"
        )
    repository = dvc_repository(root)
    if repository is None:
        raise DvcUnavailableError(f"{root} is not inside a DVC repository (run `dvc init` in "
                                  "the git repository that should hold it)")  # fmt: skip
    done = subprocess.run([binary, "add", str(root)], cwd=repository, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    if done.returncode != 0:
        raise DvcUnavailableError(f"dvc add failed: {(done.stderr or done.stdout).strip()}")
    return root.with_name(root.name + ".dvc")
