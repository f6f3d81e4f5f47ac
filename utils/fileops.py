"""Writing a directory so readers never see it half-written, even with concurrent writers."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_directory(
    target: Path, is_complete: Callable[[Path], bool], replace: bool = False
) -> Iterator[Path]:
    """Yield a private temporary sibling of `target` to fill; on success it is renamed to
    `target`. A concurrent writer that finished first wins and our copy is discarded; a partial
    leftover (not `is_complete`) or, with `replace`, an existing `target` is replaced. On error
    nothing is left behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        if replace and target.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
            os.rename(target, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(staging, target)
        except OSError:
            if not is_complete(target):
                shutil.rmtree(target, ignore_errors=True)
                os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
