"""Dataset import: the manifest, LJSpeech and folder importers, every bad input of the issue,
the report, validation, statistics and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.speech import asterisk_prompts, prompt_path, speech_prompts
from utils.dataset.formats import read_folder, read_ljspeech
from utils.dataset.importing import ImportOptions, build_dataset
from utils.dataset.manifest import (
    MANIFEST_NAME,
    ManifestError,
    ManifestWriter,
    Translation,
    Utterance,
    iter_manifest,
)
from utils.dataset.store import dataset_stats, fingerprint, record_step, validate_dataset

ROOT = Path(__file__).resolve().parents[1]
AMHARIC = "ሰላም ለዓለም ይሁን"


def _reasons(report) -> dict[str, str]:
    return {p.id or Path(p.where).name: p.reason for p in report.rejected}


@pytest.fixture(scope="module")
def ljspeech_with_bad_items(tmp_path_factory) -> Path:
    """An LJSpeech folder: 3 good prompts (8 kHz) and a stereo 44.1 kHz one, plus one item of
    every bad kind the importer must reject or warn about."""
    root = tmp_path_factory.mktemp("lj")
    wavs = root / "wavs"
    wavs.mkdir()
    lines = []
    for i, (path, _) in enumerate(speech_prompts(3, 1.5, 4.0)):
        (wavs / f"good{i}.wav").write_bytes(path.read_bytes())
        lines.append(f"good{i}|{AMHARIC} {i}|")
    rate = 44_100
    t = np.arange(int(1.5 * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    sf.write(wavs / "stereo.wav", np.stack([tone, tone * 0.5], axis=1), rate)
    lines.append(f"stereo|{AMHARIC}|")
    (wavs / "empty.wav").write_bytes(b"")
    (wavs / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    (wavs / "textfile.wav").write_text("this is not audio\n" * 20)
    sf.write(wavs / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(wavs / "long.wav", np.full(31 * 16000, 0.1, np.float32), 16000)
    (wavs / "notext.wav").write_bytes((wavs / "good0.wav").read_bytes())
    (wavs / "toolong.wav").write_bytes((wavs / "good0.wav").read_bytes())
    (wavs / "latin.wav").write_bytes((wavs / "good1.wav").read_bytes())
    lines += [
        "empty|ባዶ ፋይል|", "corrupt|የተበላሸ|", "textfile|ጽሑፍ|", "silent|ዝምታ|", "long|ረጅም|",
        "notext| |", "toolong|" + "ሀለሐመሠረሰ" * 30 + "|", "latin|this is plain English text|",
        "missing|የሌለ ፋይል|", "good0|ድጋሚ መታወቂያ|", "no separator here",
    ]  # fmt: skip
    body = "\n".join(lines).encode() + b"\nbadbytes|\xff\xfe\xfa|\n"
    (root / "metadata.csv").write_bytes(body)
    return root


@pytest.fixture(scope="module")
def imported(ljspeech_with_bad_items, tmp_path_factory):
    out = tmp_path_factory.mktemp("datasets") / "lj"
    seen: list[int] = []
    report = build_dataset(
        read_ljspeech(ljspeech_with_bad_items, "am"),
        out,
        ImportOptions(language="am", workers=2),
        progress=seen.append,
    )
    return out, report, seen


def test_import_keeps_good_items_and_rejects_each_bad_one_with_its_reason(imported):
    out, report, seen = imported
    reasons = _reasons(report)
    assert report.kept == 5  # good0-2, stereo, latin (a warning only)
    assert "empty" in reasons["empty"] and "not readable" in reasons["corrupt"]
    assert "not readable" in reasons["textfile"]
    assert "empty or all zeros" in reasons["silent"]
    assert "over 30 s" in reasons["long"] and reasons["notext"] == "empty text"
    assert "decoder positions, over 448" in reasons["toolong"]
    assert "missing audio" in reasons["missing"] and "duplicate id" in reasons["good0"]
    assert any("no '|'" in p.reason and p.where.endswith(":15") for p in report.rejected)
    assert any("not UTF-8" in p.reason and p.where.endswith(":16") for p in report.rejected)
    assert all(":" in p.where and "metadata.csv" in p.where for p in report.rejected)
    assert [p.id for p in report.warnings] == ["latin"]
    assert "Ethiopic" in report.warnings[0].reason
    fixes: dict[str, str] = {}
    for p in report.fixed:
        fixes[p.id] = fixes.get(p.id, "") + p.reason + "; "
    assert "resampled from 44100 Hz" in fixes["stereo"] and "8000 Hz" in fixes["good0"]
    assert "mixed down from 2 channels" in fixes["stereo"]
    assert seen[-1] == len(report.rejected) + report.kept  # every item reported progress
    saved = json.loads((out / "import_report.json").read_text())
    assert saved["kept"] == 5 and len(saved["rejected"]) == len(report.rejected)


def test_manifest_lines_and_audio_are_canonical(imported):
    out, _, _ = imported
    utterances = list(iter_manifest(out / MANIFEST_NAME))
    assert [u.id for u in utterances] == ["good0", "good1", "good2", "stereo", "latin"]
    for u in utterances:
        info = sf.info(str(u.audio_path(out)))
        assert (info.samplerate, info.channels, u.sample_rate) == (16000, 1, 16000)
        assert u.duration == pytest.approx(info.duration, abs=1e-3)
        assert u.language == "am" and u.source.startswith(str(Path(u.source).parent))
    assert utterances[0].normalized_text == "ሰላም ለአለም ይሁን 0"  # homophones folded
    assert set(utterances[0].quality) >= {"snr_db", "rms_dbfs", "clipping_ratio"}


def test_manifest_round_trip_and_errors_name_the_line(tmp_path):
    utterance = Utterance(
        "a", "audio/a.wav", 1.5, 16000, "ሰላም", language="am", split="train",
        translation=Translation("hello", "en"), quality={"snr_db": 20.0, "x": None},
    )  # fmt: skip
    assert Utterance.from_json(utterance.to_json()) == utterance
    path = tmp_path / MANIFEST_NAME
    path.write_text(utterance.to_json() + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"manifest.jsonl:3: not JSON"):
        list(iter_manifest(path))
    for bad, message in [
        ('{"id": "a"}', "missing audio, duration, sample_rate, text"),
        ('{"id":"a","audio":"x","duration":1,"sample_rate":16000,"text":"t","split":"dev"}',
         "split must be"),
        ('{"id":"a","audio":"x","duration":1,"sample_rate":16000,"text":"t","colour":1}',
         "unknown fields colour"),
    ]:  # fmt: skip
        with pytest.raises(ManifestError, match=message):
            Utterance.from_json(bad, "m:1")


def test_a_failed_write_keeps_the_previous_manifest(tmp_path):
    path = tmp_path / MANIFEST_NAME
    with ManifestWriter(path) as writer:
        writer.write(Utterance("a", "a.wav", 1.0, 16000, "x"))
    with pytest.raises(RuntimeError), ManifestWriter(path) as writer:
        writer.write(Utterance("b", "b.wav", 1.0, 16000, "y"))
        raise RuntimeError("killed mid-write")
    assert [u.id for u in iter_manifest(path)] == ["a"]
    assert list(tmp_path.iterdir()) == [path]


def test_validate_finds_tampering_and_fingerprint_tracks_content(imported, tmp_path):
    import shutil

    out, _, _ = imported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert validate_dataset(copy) == []
    before = record_step(copy, {"step": "test"})["fingerprint"]
    assert before == fingerprint(out)
    (copy / "audio" / "good1.wav").unlink()
    lines = (copy / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()
    lines.append("{broken")
    (copy / MANIFEST_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")
    problems = [str(p) for p in validate_dataset(copy)]
    assert any("missing audio: audio/good1.wav" in p and ":2:" in p for p in problems)
    assert any(p.endswith("manifest.jsonl:6: not JSON (Expecting property name enclosed in "
                          "double quotes at column 2)") for p in problems)  # fmt: skip
    sf.write(copy / "audio" / "good1.wav", np.full(16000, 0.1, np.float32), 16000)
    (copy / MANIFEST_NAME).write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    assert fingerprint(copy) != before


def test_folder_with_sidecars(tmp_path):
    for speaker in ("spk1", "spk2"):
        (tmp_path / "src" / speaker).mkdir(parents=True)
    for i, (path, text) in enumerate(speech_prompts(4, 1.5, 4.0)):
        target = tmp_path / "src" / f"spk{i % 2 + 1}" / f"clip{i}.wav"
        target.write_bytes(path.read_bytes())
        if i != 3:
            target.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    (tmp_path / "src" / "spk1" / "clip2.txt").write_bytes(b"\xff\xfeabc")
    report = build_dataset(read_folder(tmp_path / "src", "en"), tmp_path / "out")
    assert report.kept == 2
    assert sorted(Path(p.where).name + " " + p.reason for p in report.rejected) == [
        "clip2.txt not UTF-8 text (byte 0)", "clip3.wav no transcript: clip3.txt is missing",
    ]  # fmt: skip
    speakers = {u.id: u.speaker for u in iter_manifest(tmp_path / "out" / MANIFEST_NAME)}
    assert speakers == {"spk1/clip0": "spk1", "spk2/clip1": "spk2"}


def test_real_ljspeech_folder_of_asterisk_prompts_keeps_every_prompt(tmp_path):
    """All prompts are kept; the few over 30 s are cut into utterances at their pauses."""
    prompts = asterisk_prompts()
    (tmp_path / "wavs").mkdir()
    lines, long_ones = [], set()
    for name, text in prompts.items():
        key = name.replace("/", "__")
        (tmp_path / "wavs" / f"{key}.wav").symlink_to(prompt_path(name))
        lines.append(f"{key}|{text}|{text}")
        if sf.info(str(prompt_path(name))).duration > 30:
            long_ones.add(key)
    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    report = build_dataset(read_ljspeech(tmp_path, "en"), out, ImportOptions(language="en"))
    assert report.rejected == [] and 1 <= len(long_ones) <= 5
    cut = {p.id for p in report.fixed if "cut into" in p.reason}
    assert cut == long_ones
    utterances = list(iter_manifest(out / MANIFEST_NAME))
    assert {u.id.rsplit("-", 1)[0] for u in utterances if u.id not in prompts} >= long_ones
    for key in long_ones:  # the pieces hold the whole transcript, in order
        pieces = [u for u in utterances if u.id.startswith(f"{key}-")]
        assert len(pieces) >= 2 and all(u.duration <= 30 for u in pieces)
        assert " ".join(u.text for u in pieces) == " ".join(prompts_text(prompts, key).split())
    stats = dataset_stats(out)
    assert stats.n == report.kept >= len(prompts) and 0.2 < stats.hours < 1.0


def prompts_text(prompts: dict[str, str], key: str) -> str:
    return next(text for name, text in prompts.items() if name.replace("/", "__") == key)


def test_cli_import_validate_and_stats(ljspeech_with_bad_items, tmp_path):
    def cli(*args):
        return subprocess.run(
            [sys.executable, "prepare_ljspeech_dataset.py", *args],
            capture_output=True, text=True, cwd=ROOT, timeout=300,
        )  # fmt: skip

    out = tmp_path / "cli"
    done = cli("import", "--format", "ljspeech", str(ljspeech_with_bad_items), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "kept 5" in done.stdout and "rejected corrupt" not in done.stdout
    assert "metadata.csv:" in done.stderr and "Traceback" not in done.stderr
    assert json.loads((out / "dataset.json").read_text())["lineage"][0]["format"] == "ljspeech"
    assert cli("validate", str(out)).returncode == 0
    stats = json.loads(cli("stats", str(out), "--json").stdout)
    assert stats["n"] == 5 and stats["rejected"] == 11 and set(stats) >= {
        "hours", "splits", "duration_percentiles"
    }  # fmt: skip
    missing = cli("stats", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and missing.stderr.startswith("error:")


def test_export_back_to_ljspeech_layout_reimports_the_same(imported, tmp_path):
    from utils.dataset.export import export_ljspeech

    out, _, _ = imported
    assert export_ljspeech(out, tmp_path / "lj") == 5
    again = build_dataset(read_ljspeech(tmp_path / "lj", "am"), tmp_path / "again",
                          ImportOptions(language="am", measure_quality=False))  # fmt: skip
    assert again.kept == 5 and again.fixed == []  # already 16 kHz mono
    texts = [u.text for u in iter_manifest(out / MANIFEST_NAME)]
    assert [u.text for u in iter_manifest(tmp_path / "again" / MANIFEST_NAME)] == texts
