"""Workspace, default model assembly, model references and the registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from utils import model_store
from utils.model_store import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_SHA256,
    ModelNotFoundError,
    ensure_default_model,
    resolve_model,
)
from utils.registry import list_models, register_model
from utils.workspace import WORKSPACE_ENV, get_workspace

ROOT = Path(__file__).parents[1]


def test_workspace_layout_and_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv(WORKSPACE_ENV, str(tmp_path / "ws"))
    ws = get_workspace()
    assert ws.root == (tmp_path / "ws").resolve()
    assert all((ws.root / d).is_dir() for d in ("models", "datasets", "runs", "exports"))


def test_default_model_is_complete_and_verified(default_model_dir):
    names = {p.name for p in default_model_dir.iterdir()}
    assert {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.json",
        "preprocessor_config.json",
    } <= names
    assert model_store._sha256(default_model_dir / "model.bin") == DEFAULT_MODEL_SHA256
    assert (
        json.loads((default_model_dir / "preprocessor_config.json").read_text())["feature_size"]
        == 80
    )
    assert (
        default_model_dir / "model.bin"
    ).stat().st_mode & 0o044  # readable, unlike the wheel's 0600


def test_assembly_is_safe_when_two_processes_race(tmp_path):
    code = (
        "import sys; from utils.model_store import ensure_default_model; "
        "from utils.workspace import get_workspace; "
        "print(ensure_default_model(get_workspace(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outputs[0] == outputs[1] == str(tmp_path.resolve() / "models" / DEFAULT_MODEL)
    assert [p.name for p in (tmp_path / "models").iterdir()] == [DEFAULT_MODEL]  # no leftovers
    assert model_store._sha256(Path(outputs[0]) / "model.bin") == DEFAULT_MODEL_SHA256
    # idempotent: a second call returns at once without rewriting
    before = (Path(outputs[0]) / "model.bin").stat().st_mtime_ns
    assert ensure_default_model(get_workspace(tmp_path)) == Path(outputs[0])
    assert (Path(outputs[0]) / "model.bin").stat().st_mtime_ns == before


def test_damaged_parts_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(model_store, "DEFAULT_MODEL_SHA256", "0" * 64)
    with pytest.raises(ModelNotFoundError, match="sha256"):
        ensure_default_model(get_workspace(tmp_path))
    assert not (tmp_path / "models" / DEFAULT_MODEL).exists()
    assert list((tmp_path / "models").iterdir()) == []


def test_references_resolve_to_directories(workspace, default_model_dir, hf_model_dir):
    assert resolve_model(None, workspace).kind == "ctranslate2"
    assert resolve_model(DEFAULT_MODEL, workspace).path == default_model_dir
    assert resolve_model(str(default_model_dir), workspace).kind == "ctranslate2"
    assert resolve_model(str(hf_model_dir), workspace).kind == "transformers"
    assert resolve_model(hf_model_dir.name, workspace).kind == "transformers"


def test_offline_hub_id_names_the_available_models(workspace, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("openai/whisper-large-v3", workspace)
    message = str(info.value)
    assert "unreachable" in message and "not in the local cache" in message
    assert DEFAULT_MODEL in message


def test_a_directory_that_is_no_model_is_a_clear_error(workspace, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelNotFoundError, match="neither a CTranslate2"):
        resolve_model(str(tmp_path), workspace)


def test_registry_lists_models_with_facts(workspace, hf_model_dir):
    entries = {e.name: e for e in list_models(workspace)}
    base = entries[DEFAULT_MODEL]
    assert base.kind == "ctranslate2" and base.status == "ready"
    assert 140e6 < base.size_bytes < 160e6
    assert len(base.languages) == 99 and "am" in base.languages and "en" in base.languages
    assert "PyPI" in base.source and base.created > 0
    hf = entries[hf_model_dir.name]
    assert hf.kind == "transformers" and "am" in hf.languages
    register_model(hf_model_dir, source="test", status="flagged", metrics={"wer": 0.12})
    hf = {e.name: e for e in list_models(workspace)}[hf_model_dir.name]
    assert hf.status == "flagged" and hf.metrics == {"wer": 0.12} and hf.source == "test"
    assert list_models(workspace)[0].name == DEFAULT_MODEL
