"""Shared fixtures: one workspace per test session, with the default model assembled once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI draws the same property-test examples every run, so a run never fails by chance; to search
# further, run with HYPOTHESIS_PROFILE=explore (new random examples each run).
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TRANSCRIPTS = Path("/usr/share/asterisk/sounds/en/core-sounds-en.txt")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    """A fresh workspace for the session; the default model is linked in, not re-assembled."""
    from utils.model_store import DEFAULT_MODEL, ensure_default_model
    from utils.workspace import WORKSPACE_ENV, get_workspace

    shared = ensure_default_model(get_workspace(Path(__file__).parents[1] / "workspace"))
    root = tmp_path_factory.mktemp("workspace")
    os.environ[WORKSPACE_ENV] = str(root)
    ws = get_workspace(root)
    (ws.models / DEFAULT_MODEL).symlink_to(shared, target_is_directory=True)
    return ws


@pytest.fixture(scope="session")
def default_model_dir(workspace) -> Path:
    from utils.model_store import ensure_default_model

    return ensure_default_model(workspace)


@pytest.fixture(scope="session")
def hf_model_dir(workspace, default_model_dir) -> Path:
    """The default model converted once to transformers format (``models/whisper-base-hf``)."""
    from utils.ct2_convert import ensure_transformers_model

    return ensure_transformers_model(default_model_dir, workspace.models)


@pytest.fixture(scope="session")
def engine(default_model_dir):
    """The default model on the faster-whisper engine (CPU, int8), loaded once."""
    from utils.transcription.engine import load_engine

    return load_engine("whisper-base", device="cpu")
