"""The Export tab: pick a model, run or checkpoint, choose formats and quantizations, export with
progress, read the parity table (flagged exports in red), register, download as an archive."""

from __future__ import annotations

import html
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from optimization.archive import archive_model
from optimization.ct2_export import CT2_QUANTIZATIONS
from optimization.parity import ParityReport
from optimization.pipeline import ONNX_PRECISIONS, ExportConfig, ExportTarget, export_models
from ui_components.export_prune_panel import build_prune_panel
from utils.dataset import actions
from utils.registry import is_flagged, list_models
from utils.training.history import list_runs

ENGLISH_SPEECH = "English speech (asterisk prompts)"
TARGETS = [f"ct2 {q}" for q in CT2_QUANTIZATIONS] + [f"onnx {p}" for p in ONNX_PRECISIONS]
FLAGGED_STYLE = "background:#fde2e1;color:#a4161a;font-weight:600"
TABLE_COLUMNS = ("model", "format", "precision", "WER %", "Δ WER", "CER %", "Δ CER",
                 "token agreement %", "size MB", "load s", "RTF", "status", "why")  # fmt: skip


def source_choices() -> list[tuple[str, str]]:
    """Registry models, then training runs (their merged model, adapter or best checkpoint)."""
    models = [(entry.name, entry.name) for entry in list_models() if entry.kind != "onnx"]
    runs = [(f"run: {run.name}", str(run.run_dir)) for run in list_runs()]
    return models + runs


def heldout_choices() -> list[str]:
    return [ENGLISH_SPEECH, *actions.list_datasets()]


def parse_targets(labels: list[str]) -> tuple[ExportTarget, ...]:
    """'ct2 int8' -> ExportTarget('ct2', 'int8'); ValueError when none is chosen."""
    if not labels:
        raise ValueError("choose at least one format and quantization")
    return tuple(ExportTarget(*label.split(" ", 1)) for label in labels)


def heldout_of(values: dict[str, Any]) -> tuple[str | None, int | None]:
    """(evaluation dataset or None for English speech, clip limit) from the form."""
    heldout = values["heldout"]
    dataset = None if heldout in (None, "", ENGLISH_SPEECH) else heldout
    return dataset, int(values["limit"]) if values.get("limit") else None


def config_from_form(values: dict[str, Any]) -> ExportConfig:
    dataset, limit = heldout_of(values)
    return ExportConfig(
        model=values["source"], targets=parse_targets(values["targets"]),
        out=values.get("out") or None, eval_dataset=dataset,
        language=values.get("language") or None, eval_limit=limit, check=values["check"],
        register=values["register"],
    )  # fmt: skip


def table_html(report: ParityReport | None) -> str:
    """The comparison table; flagged rows in red."""
    if report is None:
        return "<p>Parity check skipped.</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in TABLE_COLUMNS)
    rows = []
    for row in report.display_rows():
        style = f' style="{FLAGGED_STYLE}" class="flagged"' if row["status"] == "flagged" else ""
        cells = "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in TABLE_COLUMNS)
        rows.append(f"<tr{style}>{cells}</tr>")
    caption = html.escape(f"Held-out: {report.heldout}, {report.audio_seconds:.0f} s of audio")
    return (f'<table id="parity-table"><caption>{caption}</caption><thead><tr>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>")  # fmt: skip


def export_handler(values: dict[str, Any], progress: Callable[[float, str], Any]) -> tuple:
    """(status markdown, table html, export names for the download picker)."""
    try:
        config = config_from_form(values)
        result = export_models(config, progress=lambda what, f: progress(f, desc=what))
    except (ValueError, LookupError, OSError, RuntimeError) as exc:
        raise gr.Error(f"Export failed: {exc}") from exc
    flagged = [r.name for r in (result.report.rows[1:] if result.report else ()) if r.flagged]
    lines = [f"Exported **{result.source.description}** in {result.seconds:.0f} s:"]
    lines += [f"- `{path}`" for path in result.exports]
    if result.registered:
        lines.append("Registered: " + ", ".join(result.registered) + " (in the Transcribe tab).")
    if flagged:
        lines.append(f"**Flagged** (worse than the source; never a default): {', '.join(flagged)}")
    names = [str(path) for path in result.exports]
    return "\n".join(lines), table_html(result.report), gr.Dropdown(choices=names, value=names[0])


def registry_rows() -> list[list[Any]]:
    return [[e.name, e.kind, e.status, round(e.size_mb, 1), e.source] for e in list_models()]


def download_handler(model: str) -> str:
    """A zip archive of the chosen export or model (resolved through the registry's links)."""
    if not model:
        raise gr.Error("Pick an export to download")
    path = Path(model)
    if not path.is_dir():
        entry = next((e for e in list_models() if e.name == model), None)
        if entry is None:
            raise gr.Error(f"No model named {model!r}")
        path = entry.path
    return str(archive_model(path, Path(tempfile.mkdtemp(prefix="studio-export-"))))


def _flagged_names() -> str:
    names = [e.name for e in list_models() if is_flagged(e)]
    return ("Flagged exports: " + ", ".join(names)) if names else "No export is flagged."


def _form() -> dict[str, gr.components.Component]:
    with gr.Row():
        source = gr.Dropdown(source_choices(), label="Model, run or checkpoint", scale=3,
                             allow_custom_value=True, value="whisper-base")  # fmt: skip
        refresh = gr.Button("Refresh", size="sm", scale=0)
    refresh.click(lambda: gr.Dropdown(choices=source_choices()), outputs=source)
    targets = gr.CheckboxGroup(TARGETS, value=["ct2 int8"], label="Formats and quantizations")
    with gr.Row():
        heldout = gr.Dropdown(heldout_choices(), value=ENGLISH_SPEECH, label="Held-out set")
        language = gr.Textbox(label="Language", info="empty: the dataset's own, else English")
        limit = gr.Number(value=16, precision=0, minimum=1, label="Utterances checked")
    with gr.Row():
        check = gr.Checkbox(value=True, label="Check against the source")
        register = gr.Checkbox(value=True, label="Register (appears in Transcribe)")
        out = gr.Textbox(label="Output directory (default: workspace exports/)")
    return {"source": source, "targets": targets, "heldout": heldout, "language": language,
            "limit": limit, "check": check, "register": register, "out": out}  # fmt: skip


def build_export_tab() -> None:
    """Render the tab inside the current Blocks context."""
    form = _form()
    run = gr.Button("Export and check", variant="primary")
    status = gr.Markdown(elem_id="export-status")
    table = gr.HTML(elem_id="parity-table-box")
    shared = {k: form[k] for k in ("source", "heldout", "language", "limit")}
    build_prune_panel(shared, heldout_of)
    with gr.Accordion("Registry and downloads", open=False):
        registry = gr.Dataframe(registry_rows(), headers=["name", "kind", "status", "MB", "source"],
                                label="Models", interactive=False)  # fmt: skip
        flagged = gr.Markdown(_flagged_names())
        with gr.Row():
            picker = gr.Dropdown([e.name for e in list_models()], label="Export to download",
                                 allow_custom_value=True)  # fmt: skip
            archive = gr.Button("Make archive", size="sm")
        download = gr.File(label="Archive")
    names = list(form)

    def on_export(*values, progress=gr.Progress()):
        return export_handler(dict(zip(names, values, strict=True)), progress)

    run.click(on_export, list(form.values()), [status, table, picker], api_name="export").then(
        lambda: (registry_rows(), _flagged_names()), outputs=[registry, flagged]
    )
    archive.click(download_handler, picker, download, api_name="export_archive")
