"""The Datasets tab through gradio_client: import from a server path and from an archive,
statistics, live filter counts, filter, splits, synthesis; bad input is a clear error."""

from __future__ import annotations

import tarfile

import pytest
from gradio_client import Client, handle_file

from tests.launching import running_app
from tests.speech import speech_prompts
from utils.dataset.manifest import MANIFEST_NAME, iter_manifest


@pytest.fixture(scope="module")
def client(workspace):
    with running_app() as url:
        yield Client(url, verbose=False)


@pytest.fixture(scope="module")
def ljspeech(tmp_path_factory):
    root = tmp_path_factory.mktemp("tab-lj")
    (root / "wavs").mkdir()
    lines = []
    for i, (path, text) in enumerate(speech_prompts(6, 1.5, 4.0)):
        (root / "wavs" / f"u{i}.wav").write_bytes(path.read_bytes())
        lines.append(f"u{i}|{text}|")
    lines.append("u9|missing audio|")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _import(client, **overrides):
    form = {"format": "ljspeech", "archive": None, "path": "", "name": ""}
    form |= {"csv_audio": "audio", "csv_text": "text", "csv_id": "", "csv_speaker": "",
             "csv_split": "", "dvc": False, "language": "en"}  # fmt: skip
    form |= overrides
    return client.predict(*form.values(), api_name="/import_dataset")


def test_import_from_path_then_stats_filter_and_split(client, ljspeech, workspace):
    report, dataset = _import(client, path=str(ljspeech), name="tab-lj")
    assert "kept 6" in report and "rejected 1" in report and "missing audio" in report
    assert dataset["value"] == "tab-lj"
    summary, *plots, worst = client.predict("tab-lj", api_name="/dataset_stats")
    assert summary.startswith("6 utterances") and len(plots) == 7
    assert len(worst["data"]) == 6
    snrs = sorted(row[2] for row in worst["data"])
    threshold = (snrs[2] + snrs[3]) / 2
    form = [threshold, None, None, None, None, None]
    counts = client.predict("tab-lj", *form, api_name="/filter_dataset")
    assert "Wrote version" in counts and "Keeps **3** of 3" in counts
    kept = list(iter_manifest(workspace.datasets / "tab-lj" / MANIFEST_NAME))
    assert len(kept) == 3 and all(u.quality["snr_db"] >= threshold for u in kept)
    splits = client.predict("tab-lj", 0.34, 0.0, 1, False, api_name="/split_dataset")
    assert "train:" in splits and "validation:" in splits
    before = (workspace.datasets / "tab-lj" / MANIFEST_NAME).read_bytes()
    with pytest.raises(Exception, match="already holds a dataset"):
        _import(client, path=str(ljspeech), name="tab-lj")
    assert (workspace.datasets / "tab-lj" / MANIFEST_NAME).read_bytes() == before


def test_import_csv_with_named_columns_and_say_why_dvc_did_not_track(client, ljspeech, tmp_path):
    import csv

    table = tmp_path / "clips.csv"
    with open(table, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "transcript", "who"])
        for i in range(3):
            writer.writerow([str(ljspeech / "wavs" / f"u{i}.wav"), f"words {i}", f"spk{i % 2}"])
    report, _ = _import(client, format="csv", path=str(table), name="tab-csv", csv_audio="file",
                        csv_text="transcript", csv_speaker="who", dvc=True)  # fmt: skip
    assert "kept 3" in report and "Not tracked with DVC" in report


def test_import_from_an_uploaded_archive(client, ljspeech, tmp_path):
    archive = tmp_path / "lj.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(ljspeech, arcname="LJSpeech-mini")
    report, dataset = _import(client, archive=handle_file(str(archive)), name="tab-archive")
    assert "kept 6" in report and dataset["value"] == "tab-archive"


def test_bad_requests_are_clear_errors_and_the_app_keeps_serving(client, tmp_path):
    with pytest.raises(Exception, match="name"):
        _import(client, path="/nowhere")
    with pytest.raises(Exception, match="no such file"):
        _import(client, path=str(tmp_path / "nowhere"), name="x")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive")
    with pytest.raises(Exception, match="not a zip or tar"):
        _import(client, archive=handle_file(str(junk)), name="junk")
    no_bounds = [None] * 6
    with pytest.raises(Exception, match="no filter criterion"):
        client.predict("tab-archive", *no_bounds, api_name="/filter_dataset")
    with pytest.raises(Exception, match="Pick a dataset"):
        client.predict("", api_name="/dataset_stats")


def test_synthesize_a_small_amharic_set(client, tmp_path):
    text = tmp_path / "sentences.txt"
    text.write_text("ሰላም ነህ ወይ?\nዛሬ ፲፪ ሰዎች መጡ።\nአዲስ አበባ ትልቅ ከተማ ናት።\n", encoding="utf-8")
    report, dataset = client.predict(
        handle_file(str(text)), False, 2, 0, "tab-synth", "am", api_name="/synthesize_dataset"
    )
    assert "kept 3" in report and dataset["value"] == "tab-synth"
