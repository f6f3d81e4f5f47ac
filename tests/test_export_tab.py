"""The Export tab: the form's parsing, the comparison table (flagged rows red), and the tab's
endpoints through gradio_client (export with progress, registration, archive download)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from optimization.parity import ParityReport, ParityRow
from tests.launching import running_app
from ui_components.export_tab import (
    ENGLISH_SPEECH,
    config_from_form,
    parse_targets,
    table_html,
)
from utils.registry import list_models


def _row(name: str, status: str, reasons: tuple[str, ...] = ()) -> ParityRow:
    return ParityRow(name, "ctranslate2", "int8", 0.05, 0.02, 0.01, 0.3, 0.0, 0.9, 0.97, 1.0,
                     "source", 80_000_000, 0.2, 0.1, status, reasons)  # fmt: skip


def test_flagged_rows_are_red_and_say_why():
    bad = _row("bad", "flagged", ("token agreement 97.0% < 99%",))
    report = ParityReport(
        "English", "en", 4, 12.0, (_row("src", "source"), _row("good", "ok"), bad)
    )
    page = table_html(report)
    assert page.count('class="flagged"') == 1
    bad_row = page.split('class="flagged"')[1].split("</tr>")[0]
    assert ">bad<" in bad_row and "token agreement 97.0%" in bad_row and "#a4161a" in page
    assert "Parity check skipped" in table_html(None)


def test_form_values_become_an_export_config(tmp_path):
    values = {"source": "whisper-base", "targets": ["ct2 int8", "onnx fp32"],
              "heldout": ENGLISH_SPEECH, "language": "", "limit": 8, "check": True,
              "register": False, "out": str(tmp_path)}  # fmt: skip
    config = config_from_form(values)
    assert [t.label for t in config.targets] == ["ct2-int8", "onnx-fp32"]
    assert config.eval_dataset is None and config.eval_limit == 8 and not config.register
    with pytest.raises(ValueError, match="at least one"):
        parse_targets([])


@pytest.fixture(scope="module")
def client(workspace):
    from gradio_client import Client

    with running_app() as url:
        yield Client(url, verbose=False)


def test_export_registers_and_downloads_from_the_tab(client, tiny_whisper_dir, workspace):
    status, table, _picker = client.predict(
        str(tiny_whisper_dir), ["ct2 int8", "ct2 float16"], ENGLISH_SPEECH, "", 4, False, True,
        "", api_name="/export",
    )  # fmt: skip
    assert "Exported" in status and "Parity check skipped" in table
    names = {e.name for e in list_models()}
    exported = [Path(line.strip("- `")) for line in status.splitlines() if line.startswith("- `")]
    assert len(exported) == 2 and {p.name for p in exported} <= names
    archive = client.predict(str(exported[0]), api_name="/export_archive")
    with zipfile.ZipFile(archive) as zipped:
        members = set(zipped.namelist())
    assert f"{exported[0].name}/model.bin" in members
    assert f"{exported[0].name}/config.json" in members


def test_a_bad_source_is_a_clear_error_in_the_tab(client, tmp_path):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Export failed"):
        client.predict(str(tmp_path / "nothing"), ["ct2 int8"], ENGLISH_SPEECH, "", 4, False,
                       False, "", api_name="/export")  # fmt: skip


def test_prune_from_the_tab_reports_the_tradeoff_and_registers(client, tiny_whisper_dir):
    status, table = client.predict(
        str(tiny_whisper_dir), ENGLISH_SPEECH, "", 1, 1, 1.0, 0, api_name="/prune"
    )
    assert "Pruned into" in status and 'id="prune-table"' in table
    name = status.split("registered as **")[1].split("**")[0]
    entry = next(e for e in list_models() if e.name == name)
    assert entry.kind == "transformers" and "prune/wer" in entry.metrics
