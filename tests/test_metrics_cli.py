"""`python -m evaluation.metrics`: text and JSON reports, clear errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.metrics import main, read_lines

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evaluation.metrics", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("the cat sat on the mat\nhello world\n\n", encoding="utf-8")
    hyp.write_text("the cat sat on a mat\r\nhello world\r\nuh oh\r\n", encoding="utf-8")
    return ref, hyp


def test_text_report(files: tuple[Path, Path]) -> None:
    ref, hyp = files
    result = _run("--ref", str(ref), "--hyp", str(hyp), "--lang", "en", "--bootstrap", "200")
    assert result.returncode == 0, result.stderr
    assert "WER: 12.50%" in result.stdout  # 1 substitution over 8 words
    assert "CER:" in result.stdout and "95% CI" in result.stdout
    assert "empty references: 1" in result.stdout


def test_json_report(files: tuple[Path, Path]) -> None:
    ref, hyp = files
    result = _run("--ref", str(ref), "--hyp", str(hyp), "--lang", "en", "--json", "--utterances")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["wer"] == pytest.approx(1 / 8)
    assert data["n"] == 3 and data["empty_references"]["word_insertions"] == 1
    low, high = data["wer_ci"]
    assert low <= data["wer"] <= high and len(data["cer_ci"]) == 2
    assert len(data["utterances"]) == 3


def test_amharic_json_has_syllable_figures(tmp_path: Path) -> None:
    pytest.importorskip("utils.amharic.normalize")
    pytest.importorskip("utils.amharic.syllables")
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("ሰላም ዓለም።\nለማ\n", encoding="utf-8")
    hyp.write_text("ሰላም አለም\nሉማ\n", encoding="utf-8")
    result = _run("--ref", str(ref), "--hyp", str(hyp), "--lang", "am", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["normalizer"] == "amharic" and data["wer"] == pytest.approx(1 / 3)
    assert data["amharic"]["vowel_errors"] == 1 and data["amharic"]["consonant_errors"] == 0


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    ref = tmp_path / "ref.txt"
    ref.write_text("a\n", encoding="utf-8")
    result = _run("--ref", str(ref), "--hyp", str(tmp_path / "nope.txt"), "--lang", "en")
    assert result.returncode == 1
    assert "nope.txt: no such file" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("ref_bytes", "hyp_bytes", "message"),
    [
        (b"a\n", b"\xff\xfe a\n", "not UTF-8"),
        (b"a\nb\n", b"a\n", "has 2 lines but"),
        (b"", b"", "no utterances"),
        (b"\n", b"x\n", "references are empty"),
    ],
)
def test_bad_input_is_a_clear_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    ref_bytes: bytes,
    hyp_bytes: bytes,
    message: str,
) -> None:
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_bytes(ref_bytes)
    hyp.write_bytes(hyp_bytes)
    assert main(["--ref", str(ref), "--hyp", str(hyp), "--lang", "en"]) == 1
    assert message in capsys.readouterr().err


def test_non_utf8_through_the_command_line(tmp_path: Path) -> None:
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_bytes("ሰላም\n".encode("utf-16"))
    hyp.write_text("ሰላም\n", encoding="utf-8")
    result = _run("--ref", str(ref), "--hyp", str(hyp), "--lang", "am")
    assert result.returncode == 1
    assert "not UTF-8" in result.stderr and "Traceback" not in result.stderr


def test_read_lines_keeps_inner_empty_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffa\r\n\r\nb\u2028c".encode())
    assert read_lines(path) == ["a", "", "b\u2028c"]
