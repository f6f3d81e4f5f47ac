"""Corpus importers (Common Voice, FLEURS, Kaldi, Hugging Face saved/audiofolder, JSONL, CSV):
each fixture is built here from real asterisk prompts and holds at least one bad row, which
must come back as a Problem naming its file and line without stopping the import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tests.speech import speech_prompts
from utils.dataset.corpora import (
    CsvColumns,
    read_commonvoice,
    read_csv,
    read_fleurs,
    read_hf,
    read_jsonl,
    read_kaldi,
)
from utils.dataset.formats import READERS
from utils.dataset.importing import ImportOptions, build_dataset
from utils.dataset.manifest import MANIFEST_NAME, Translation, iter_manifest

ROOT = Path(__file__).resolve().parents[1]
CV_HEADER = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale\tsegment"


@pytest.fixture(scope="module")
def prompts() -> list[tuple[Path, str]]:
    return speech_prompts(4, 1.5, 4.0)


def _build(items, out: Path):
    """The report and the manifest's utterances by id."""
    report = build_dataset(items, out, ImportOptions(language="en", measure_quality=False))
    return report, {u.id: u for u in iter_manifest(out / MANIFEST_NAME)}


def _rejected(report) -> dict[str, str]:
    """`file:line` (file name only) -> reason."""
    return {Path(p.where).name: p.reason for p in report.rejected}


def _link(target: Path, source: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)
    return target


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_registered_formats():
    assert sorted(READERS) == sorted(
        ["ljspeech", "commonvoice", "fleurs", "hf", "jsonl", "csv", "folder", "kaldi"]
    )


def test_commonvoice_split_files_mp3_quotes_speakers_and_bad_rows(prompts, tmp_path):
    root = tmp_path / "cv"
    samples, rate = sf.read(str(prompts[0][0]))
    (root / "clips").mkdir(parents=True)
    sf.write(root / "clips" / "cv_a.mp3", samples, rate, format="MP3")  # a real MP3 clip
    for i in (1, 2):
        _link(root / "clips" / f"cv_{'abc'[i]}.wav", prompts[i][0])
    row = "{}\t{}\t{}\t2\t0\t\t\t\t{}\t"
    quoted = f'He said "{prompts[1][1]}'
    _write(root / "train.tsv", [CV_HEADER, row.format("spk1", "cv_a.mp3", prompts[0][1], "en"),
                                row.format("spk2", "cv_b.wav", quoted, "en")])  # fmt: skip
    _write(root / "dev.tsv", [CV_HEADER, row.format("spk1", "cv_c.wav", prompts[2][1], ""),
                              row.format("spk3", "gone.mp3", "no clip", "en")])  # fmt: skip
    _write(root / "test.tsv", ["client_id\tpath\ttext", "spk1\tcv_a.mp3\tx"])
    _write(root / "validated.tsv", [CV_HEADER, row.format("spk9", "cv_a.mp3", "ignored", "en")])
    report, kept = _build(read_commonvoice(root, "am"), tmp_path / "out")
    assert report.kept == 3 and list(kept) == ["cv_a", "cv_b", "cv_c"]
    assert [(u.speaker, u.split, u.language) for u in kept.values()] == [
        ("spk1", "train", "en"), ("spk2", "train", "en"), ("spk1", "validation", "am"),
    ]  # fmt: skip
    assert kept["cv_b"].text == quoted  # QUOTE_NONE: the quote is text
    assert kept["cv_a"].duration == pytest.approx(sf.info(str(prompts[0][0])).duration, abs=0.1)
    reasons = _rejected(report)
    assert set(reasons) == {"dev.tsv:3", "test.tsv:1"}
    assert "missing audio" in reasons["dev.tsv:3"] and "no column sentence" in reasons["test.tsv:1"]


def test_commonvoice_validated_only_has_no_split(prompts, tmp_path):
    root = tmp_path / "cv"
    _link(root / "clips" / "v1.wav", prompts[0][0])
    _write(root / "validated.tsv", ["client_id\tpath\tsentence", f"s\tv1.wav\t{prompts[0][1]}",
                                    "s\tv1.wav\ttoo\tmany\tfields"])  # fmt: skip
    report, kept = _build(read_commonvoice(root), tmp_path / "out")
    assert [(u.id, u.split, u.speaker) for u in kept.values()] == [("v1", "", "s")]
    assert "expected 3 fields" in _rejected(report)["validated.tsv:3"]


def test_fleurs_raw_transcription_file_name_ids_and_both_audio_layouts(prompts, tmp_path):
    root = tmp_path / "fleurs"
    _link(root / "audio" / "train" / "f1.wav", prompts[0][0])
    _link(root / "audio" / "train" / "f2.wav", prompts[1][0])
    _link(root / "dev" / "f3.wav", prompts[2][0])  # a split folder next to the tsv
    row = "{}\t{}\t{}\t{}\tc h a r s\t32000\tFEMALE"
    _write(root / "train.tsv", [row.format(7, "f1.wav", prompts[0][1], "norm"),
                                row.format(7, "f2.wav", prompts[1][1], "norm"),
                                "a row without tabs"])  # fmt: skip
    _write(root / "dev.tsv", [row.format(8, "f3.wav", prompts[2][1], "norm"),
                              row.format(9, "gone.wav", "lost", "lost")])  # fmt: skip
    report, kept = _build(read_fleurs(root, "en"), tmp_path / "out")
    assert [(u.id, u.split, u.speaker) for u in kept.values()] == [
        ("f1", "train", ""), ("f2", "train", ""), ("f3", "validation", ""),
    ]  # fmt: skip
    assert kept["f1"].text == prompts[0][1]
    reasons = _rejected(report)
    assert set(reasons) == {"train.tsv:3", "dev.tsv:2"} and "missing audio" in reasons["dev.tsv:2"]


def test_kaldi_segments_cut_recordings_and_pipes_are_refused(prompts, tmp_path):
    recipe = tmp_path / "s5"
    data = recipe / "data" / "train"
    _link(recipe / "wav" / "rec1.wav", prompts[0][0])  # relative to the recipe folder
    _write(data / "wav.scp", ["rec1 wav/rec1.wav", f"rec2 {prompts[1][0]}",
                              "rec3 sox in.sph -t wav - |"])  # fmt: skip
    _write(data / "segments", ["u1 rec1 0.2 1.2", "u2 rec1 0.5 -1", "u3 rec2 0 1.0",
                               "u4 rec3 0 1", "u5 rec1 soon later", "u7 rec1"])  # fmt: skip
    _write(data / "utt2spk", ["u1 spkA", "u2 spkA", "u3 spkB", "u4 spkB"])
    texts = [f"u{i} {prompts[i % 2][1]}" for i in range(1, 7)]
    _write(data / "text", [*texts[:3], "u4 piped", "u5 bad times", "u6 no segment"])
    report, kept = _build(read_kaldi(data, "en"), tmp_path / "out")
    full = sf.info(str(prompts[0][0])).duration
    assert {u.id: (u.speaker, round(u.duration, 2)) for u in kept.values()} == {
        "u1": ("spkA", 1.0), "u2": ("spkA", round(full - 0.5, 2)), "u3": ("spkB", 1.0),
    }  # fmt: skip
    assert kept["u1"].text == prompts[1][1] and kept["u1"].source.endswith("text:1")
    reasons = _rejected(report)
    assert set(reasons) == {"segments:6", "wav.scp:3", "segments:5", "text:6"}
    assert "pipe command" in reasons["wav.scp:3"] and "seconds" in reasons["segments:5"]
    assert "expected 4 fields" in reasons["segments:6"] and "segments" in reasons["text:6"]


def test_kaldi_without_segments_maps_utterances_to_files(prompts, tmp_path):
    _link(tmp_path / "d" / "a.wav", prompts[0][0])
    _write(tmp_path / "d" / "wav.scp", ["ua a.wav"])
    _write(tmp_path / "d" / "text", [f"ua\t{prompts[0][1]}", "ub orphan"])
    report, kept = _build(read_kaldi(tmp_path / "d"), tmp_path / "out")
    assert list(kept) == ["ua"] and kept["ua"].text == prompts[0][1]
    assert "not in wav.scp" in _rejected(report)["text:2"]


def test_hf_audiofolder_with_split_folders(prompts, tmp_path):
    root = tmp_path / "af"
    _link(root / "train" / "a.wav", prompts[0][0])
    _link(root / "train" / "b.wav", prompts[1][0])
    _link(root / "test" / "c.wav", prompts[2][0])
    _write(root / "train" / "metadata.csv", [
        "file_name,transcription,speaker_id", f'a.wav,"{prompts[0][1]}, said",s1',
        f'b.wav,"{prompts[1][1]}",s2', "gone.wav,lost,s3",
    ])  # fmt: skip
    good = json.dumps({"file_name": "c.wav", "text": prompts[2][1]})
    _write(root / "test" / "metadata.jsonl", [good, '{"file_name": '])
    report, kept = _build(read_hf(root, "en"), tmp_path / "out")
    assert [(u.id, u.split, u.speaker) for u in kept.values()] == [
        ("c", "test", ""), ("a", "train", "s1"), ("b", "train", "s2"),
    ]  # fmt: skip
    assert kept["a"].text == f"{prompts[0][1]}, said"
    reasons = _rejected(report)
    assert set(reasons) == {"metadata.csv:4", "metadata.jsonl:2"}
    assert reasons["metadata.jsonl:2"].startswith("not JSON")


def _saved_split(folder: Path, rows: list[dict]) -> None:
    """One split as `datasets.save_to_disk` writes it: an Arrow stream and state.json."""
    pa = pytest.importorskip("pyarrow")
    folder.mkdir(parents=True)
    audio = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({
        "client_id": pa.array([r["client_id"] for r in rows], pa.string()),
        "audio": pa.array([r["audio"] for r in rows], audio),
        "sentence": pa.array([r["sentence"] for r in rows], pa.string()),
        "locale": pa.array(["en"] * len(rows), pa.string()),
    })  # fmt: skip
    with pa.ipc.new_stream(str(folder / "data-00000-of-00001.arrow"), table.schema) as writer:
        writer.write_table(table, max_chunksize=2)  # two record batches
    state = {"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}
    (folder / "state.json").write_text(json.dumps(state))
    (folder / "dataset_info.json").write_text(json.dumps({"features": {}}))


def test_hf_saved_to_disk_bytes_paths_and_split_names(prompts, tmp_path):
    root = tmp_path / "saved"
    (root / "other").mkdir(parents=True)
    _saved_split(root / "train", [
        {"client_id": "s1", "audio": {"bytes": prompts[0][0].read_bytes(), "path": "cv_1.mp3"},
         "sentence": prompts[0][1]},
        {"client_id": "s1", "audio": {"bytes": None, "path": "nowhere.wav"}, "sentence": "x"},
        {"client_id": "s2", "audio": {"bytes": prompts[1][0].read_bytes(), "path": None},
         "sentence": prompts[1][1]},
    ])  # fmt: skip
    by_path = {"bytes": None, "path": str(prompts[2][0])}  # only a path, absolute
    _saved_split(root / "dev", [{"client_id": "s3", "sentence": prompts[2][1], "audio": by_path}])
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "dev", "other"]}))
    report, kept = _build(read_hf(root, "am"), tmp_path / "out")
    assert [(u.id, u.split, u.speaker, u.language) for u in kept.values()] == [
        ("cv_1", "train", "s1", "en"), ("train-3", "train", "s2", "en"),
        (prompts[2][0].stem, "validation", "s3", "en"),
    ]  # fmt: skip
    assert kept["train-3"].text == prompts[1][1]
    reasons = _rejected(report)
    assert set(reasons) == {"data-00000-of-00001.arrow:2", "other"}
    assert "missing audio" in reasons["data-00000-of-00001.arrow:2"]
    assert "not train, validation or test" in reasons["other"]


def test_hf_saved_without_pyarrow_is_one_problem(tmp_path, monkeypatch):
    (tmp_path / "dataset_dict.json").write_text('{"splits": ["train"]}')
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import fails as if not installed
    problems = list(read_hf(tmp_path))
    assert len(problems) == 1 and "needs pyarrow" in problems[0].reason


def test_jsonl_all_fields_cut_translation_and_bad_lines(prompts, tmp_path):
    folder = tmp_path / "j"
    _link(folder / "clips" / "j1.wav", prompts[0][0])
    _link(folder / "clips" / "j2.wav", prompts[1][0])
    full = {"audio": "clips/j1.wav", "text": prompts[0][1], "id": "j-one", "speaker": "s1",
            "split": "dev", "language": "en", "start": 0.25, "end": 1.25,
            "translation": {"text": "ሰላም", "language": "am"}}  # fmt: skip
    _write(folder / "data.jsonl", [
        json.dumps(full, ensure_ascii=False), json.dumps({"audio": "clips/j2.wav", "text": "hi"}),
        '{"audio": "clips/j2.wav", "text":', "",
        json.dumps({"audio": "clips/j1.wav", "text": "x", "split": "holdout"}),
        json.dumps({"audio": "clips/none.wav", "text": "x"}),
        json.dumps({"audio": "clips/j1.wav", "text": "x", "start": "soon"}), "[1, 2]",
    ])  # fmt: skip
    report, kept = _build(read_jsonl(folder, "am"), tmp_path / "out")
    assert list(kept) == ["j-one", "clips/j2"]
    one = kept["j-one"]
    assert (one.speaker, one.split, one.language, one.duration) == ("s1", "validation", "en", 1.0)
    assert one.translation == Translation("ሰላም", "am") and kept["clips/j2"].language == "am"
    reasons = _rejected(report)
    assert set(reasons) == {f"data.jsonl:{n}" for n in (3, 5, 6, 7, 8)}
    assert reasons["data.jsonl:3"].startswith("not JSON") and "split" in reasons["data.jsonl:5"]
    assert "missing audio" in reasons["data.jsonl:6"] and "seconds" in reasons["data.jsonl:7"]


def test_csv_named_columns_tab_detection_and_missing_column(prompts, tmp_path):
    _link(tmp_path / "src" / "wavs" / "a.wav", prompts[0][0])
    _link(tmp_path / "src" / "wavs" / "b.wav", prompts[1][0])
    table = _write(tmp_path / "src" / "list.tsv", [
        "path\tsentence\tutt\twho\tpart", f"wavs/a.wav\t{prompts[0][1]}\tid1\tsp1\ttrain",
        f"wavs/b.wav\t{prompts[1][1]}\tid2\tsp2\ttest", "wavs/c.wav\tthree\tfields",
    ])  # fmt: skip
    columns = CsvColumns(audio="path", text="sentence", id="utt", speaker="who", split="part")
    report, kept = _build(read_csv(table, "en", columns=columns), tmp_path / "out")
    assert [(u.id, u.speaker, u.split) for u in kept.values()] == [
        ("id1", "sp1", "train"), ("id2", "sp2", "test"),
    ]  # fmt: skip
    assert "expected 5 fields" in _rejected(report)["list.tsv:4"]
    bad = _write(tmp_path / "bad.csv", ["audio,words", "a.wav,hello"])
    problems = list(read_csv(bad))
    assert len(problems) == 1 and problems[0].where.endswith("bad.csv:1")
    assert "no column text" in problems[0].reason


def test_cli_imports_csv_with_named_columns(prompts, tmp_path):
    _link(tmp_path / "a.wav", prompts[0][0])
    _link(tmp_path / "b.wav", prompts[1][0])
    _write(tmp_path / "clips.csv", [
        "file,transcript,who", f'a.wav,"{prompts[0][1]}, ""quoted""",s1',
        f'b.wav,"{prompts[1][1]}",s2', "c.wav",
    ])  # fmt: skip
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "prepare_ljspeech_dataset.py", "import", "--format", "csv",
         str(tmp_path / "clips.csv"), "--out", str(out), "--language", "en", "--workers", "2",
         "--audio-column", "file", "--text-column", "transcript", "--speaker-column", "who"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "kept 2" in done.stdout and "clips.csv:4" in done.stderr
    kept = {u.id: u for u in iter_manifest(out / MANIFEST_NAME)}
    assert kept["a"].text == f'{prompts[0][1]}, "quoted"' and kept["b"].speaker == "s2"
