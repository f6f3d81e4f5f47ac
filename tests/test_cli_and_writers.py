"""The inference_utils.py command line and the transcript writers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.speech import prompt_path
from utils.transcription import Segment, TranscriptionResult, Word
from utils.transcription.writers import format_timestamp, render

ROOT = Path(__file__).parents[1]


def _result() -> TranscriptionResult:
    words = (Word(0.0, 0.5, " Hello", 0.9), Word(0.5, 1.2, " world.", 0.4))
    segments = (
        Segment(0.0, 1.2, " Hello world.", -0.2, 0.01, words=words),
        Segment(3661.5, 3662.25, " Second\tline", -0.3, 0.02),
    )
    return TranscriptionResult(" Hello world. Second line", segments, "en", 0.99, 3663.0)


def test_timestamps():
    assert format_timestamp(3661.5, ",", always_hours=True) == "01:01:01,500"
    assert format_timestamp(61.0042) == "01:01.004"


def test_each_format():
    result = _result()
    assert render(result, "txt") == "Hello world.\nSecond\tline\n"
    srt = render(result, "srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,200\nHello world.\n\n2\n01:01:01,500 --> ")
    vtt = render(result, "vtt")
    assert vtt.startswith("WEBVTT\n") and "00:00.000 --> 00:01.200\nHello world." in vtt
    assert render(result, "tsv").splitlines()[2] == "3661500\t3662250\tSecond line"
    data = json.loads(render(result, "json"))
    assert data["segments"][0]["words"][1] == {
        "start": 0.5,
        "end": 1.2,
        "word": " world.",
        "probability": 0.4,
    }
    assert {"text", "language", "duration", "segments"} <= set(data)


def test_cli_writes_one_file_per_input_and_reports_bad_ones(tmp_path, workspace):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all" * 10)
    good = prompt_path("agent-loginok")
    run = subprocess.run(
        [
            sys.executable,
            "inference_utils.py",
            str(good),
            str(bad),
            "--format",
            "json",
            "--output-dir",
            str(tmp_path / "out"),
            "--language",
            "en",
            "--beam-size",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "broken.wav" in run.stderr and "not readable as audio" in run.stderr
    data = json.loads((tmp_path / "out" / "agent-loginok.json").read_text())
    assert "logged in" in data["text"].lower()
    assert data["language"] == "en" and data["duration"] > 1
    words = data["segments"][0]["words"]
    assert {"start", "end", "word", "probability"} <= set(words[0])
    assert not (tmp_path / "out" / "broken.json").exists()


def test_cli_batch_mode_and_srt(tmp_path, workspace):
    paths = [str(prompt_path(n)) for n in ("agent-loginok", "agent-loggedoff", "auth-thankyou")]
    run = subprocess.run(
        [
            sys.executable,
            "inference_utils.py",
            *paths,
            "--format",
            "srt",
            "--batch-size",
            "3",
            "--output-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "-->" in (tmp_path / "auth-thankyou.srt").read_text()
    assert "thank you" in (tmp_path / "auth-thankyou.srt").read_text().lower()


def test_cli_unknown_model_is_one_clear_line(tmp_path, workspace):
    run = subprocess.run(
        [
            sys.executable,
            "inference_utils.py",
            str(prompt_path("agent-loginok")),
            "--model",
            "no/such-model",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"HF_HUB_OFFLINE": "1", **_env()},
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "not available" in run.stderr and "whisper-base" in run.stderr


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)
