"""A model directory as one zip archive, for download."""

from __future__ import annotations

import zipfile
from pathlib import Path

from utils.registry import METADATA_FILE


def archive_model(model_dir: Path, dest_dir: Path) -> Path:
    """Write `dest_dir/<name>.zip` holding the model's files under `<name>/` (links resolved,
    the studio's own registry record left out). Weights barely compress, so they are stored."""
    model_dir = Path(model_dir).resolve()
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model directory")
    name = Path(model_dir).name
    target = Path(dest_dir) / f"{name}.zip"
    partial = target.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", allowZip64=True) as archive:
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
            if path.name == METADATA_FILE:
                continue
            packed = path.suffix in (".json", ".txt", ".md")
            method = zipfile.ZIP_DEFLATED if packed else zipfile.ZIP_STORED
            archive.write(path, f"{name}/{path.relative_to(model_dir)}", compress_type=method)
    partial.replace(target)
    return target
