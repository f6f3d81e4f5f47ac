"""DVC tracking: refused clearly without dvc or outside a DVC repository; `dvc add` run from
the repository root otherwise (a stand-in `dvc` executable records the call)."""

from __future__ import annotations

import os
import stat

import pytest

from utils.dataset.dvc import DvcUnavailableError, dvc_repository, track_with_dvc


def _fake_dvc(folder, exit_code: int = 0):
    script = folder / "dvc"
    script.write_text(
        "#!/bin/sh\n"
        'echo "$PWD $*" > "$(dirname "$0")/called"\n'
        'echo "ERROR: cache is locked" >&2\n'
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_refused_without_dvc_or_outside_a_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DvcUnavailableError, match="not installed"):
        track_with_dvc(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_dvc(bin_dir)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(DvcUnavailableError, match="not inside a DVC repository"):
        track_with_dvc(tmp_path / "data")


def test_dvc_add_runs_from_the_repository_root(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_dvc(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    dataset = repo / "workspace" / "datasets" / "amharic"
    dataset.mkdir(parents=True)
    assert dvc_repository(dataset) == repo.resolve()
    assert track_with_dvc(dataset) == dataset.resolve().with_name("amharic.dvc")
    assert (bin_dir / "called").read_text().split() == [str(repo.resolve()), "add",
                                                        str(dataset.resolve())]  # fmt: skip
    _fake_dvc(bin_dir, exit_code=1)
    with pytest.raises(DvcUnavailableError, match="cache is locked"):
        track_with_dvc(dataset)


def test_cli_keeps_the_dataset_and_says_why_dvc_did_not_track_it(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "prepare_ljspeech_dataset.py", "demo", "--out", str(out), "--limit", "2",
         "--dvc"],
        cwd=root, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PATH": "/usr/bin:/bin"},  # espeak-ng, but no dvc
    )  # fmt: skip
    assert done.returncode == 1 and "kept 2" in done.stdout
    assert "error: dvc is not installed" in done.stderr and "Traceback" not in done.stderr
    assert (out / "manifest.jsonl").is_file() and (out / "dataset.json").is_file()
