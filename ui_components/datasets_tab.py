"""The Datasets tab: import (path or archive), synthesize, filter with live counts, split, and a
dashboard with the worst samples, each playable with its waveform and spectrogram."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from ui_components.dataset_figures import overview_figures, waveform_and_spectrogram
from utils.dataset import actions
from utils.dataset.filtering import FilterOptions, apply_filter, preview_filter
from utils.dataset.importing import ImportOptions, ImportReport
from utils.dataset.manifest import MANIFEST_NAME, iter_manifest
from utils.dataset.overview import overview
from utils.dataset.splits import SplitOptions, assign_splits

FORMATS = ("ljspeech", "commonvoice", "fleurs", "kaldi", "hf", "jsonl", "csv", "folder")
FIGURES = ("duration", "snr", "chars", "tokens", "splits", "speakers", "characters")
WORST_COLUMNS = ["id", "seconds", "SNR dB", "clipping", "chars/s", "text"]
CSV_DEFAULTS = {"audio": "audio", "text": "text", "id": "", "speaker": "", "split": ""}
FILTER_FIELDS = ("min_snr_db", "max_clipping_ratio", "min_seconds", "max_seconds",
                 "min_chars_per_second", "max_chars_per_second")  # fmt: skip


def report_markdown(report: ImportReport, name: str) -> str:
    lines = [f"**{name}**: {report.summary()}"]
    for title, problems in (("Rejected", report.rejected), ("Warnings", report.warnings)):
        if problems:
            lines.append(f"\n**{title}** ({len(problems)}):")
            lines += [f"- {p}" for p in problems[:200]]
    return "\n".join(lines)


def _dataset(name: str) -> Path:
    if not name:
        raise gr.Error("Pick a dataset first (or import one).")
    return actions.dataset_path(name)


def _progress_of(progress: Any, what: str) -> Callable[[int], None]:
    return lambda done: progress((done, None), desc=f"{what}: {done} items")


def import_handler(values: dict[str, Any], progress: Any) -> tuple[str, Any]:
    """Import from an uploaded archive or a server path into the named dataset."""
    name = (values["name"] or "").strip()
    if not name:
        raise gr.Error("Give the new dataset a name.")
    try:
        source = values["path"].strip() if values["path"] else ""
        if values["archive"]:
            source = actions.extract_archive(values["archive"], name)
        if not source:
            raise ValueError("Upload an archive or give a path on the server.")
        options = ImportOptions(language=values["language"] or "am")
        out = actions.dataset_path(name)
        extra = {"columns": _csv_columns(values)} if values["format"] == "csv" else {}
        report = actions.import_dataset(
            values["format"], source, out, options, _progress_of(progress, "importing"), **extra
        )
    except (ValueError, OSError) as exc:
        raise gr.Error(str(exc)) from exc
    text = report_markdown(report, name)
    if values.get("dvc"):
        text += "\n\n" + _track(out)
    return text, gr.Dropdown(choices=actions.list_datasets(), value=name)


def _csv_columns(values: dict[str, Any]):
    from utils.dataset.corpora import CsvColumns

    return CsvColumns(**{c: (values.get(f"csv_{c}") or "").strip() for c in CSV_DEFAULTS})


def _track(out: Path) -> str:
    """Track the dataset with DVC; the reason when it cannot (the dataset is kept either way)."""
    from utils.dataset.dvc import DvcUnavailableError, track_with_dvc

    try:
        return f"Tracked with DVC: `{track_with_dvc(out).name}` (commit it with git)."
    except DvcUnavailableError as exc:
        return f"Not tracked with DVC: {exc}"


def synth_handler(values: dict[str, Any], progress: Any) -> tuple[str, Any]:
    from augmentation.tts import CORPUS, SynthOptions

    name = (values["name"] or "").strip()
    if not name:
        raise gr.Error("Give the new dataset a name.")
    text_file = values["text_file"] or (CORPUS if values["demo"] else None)
    if not text_file or not Path(text_file).is_file():
        raise gr.Error("Upload a text file (one sentence per line) or tick the demo corpus.")
    options = SynthOptions(language=values["language"] or "am", voices=int(values["voices"]),
                           limit=int(values["limit"]) or None)  # fmt: skip
    try:
        out = actions.dataset_path(name)
        report = actions.synthesize(text_file, out, options, _progress_of(progress, "speaking"))
    except (ValueError, OSError) as exc:
        raise gr.Error(str(exc)) from exc
    return report_markdown(report, name), gr.Dropdown(choices=actions.list_datasets(), value=name)


def filter_options(values: dict[str, Any]) -> FilterOptions:
    """Thresholds from the form; 0 or empty means off."""
    return FilterOptions(
        **{k: (float(values[k]) if values.get(k) else None) for k in FILTER_FIELDS}
    )


def filter_counts(name: str, values: dict[str, Any]) -> str:
    if not name:
        return "Pick a dataset to see what the filter keeps."
    counts = preview_filter(_dataset(name), filter_options(values))
    reasons = ", ".join(f"{k}: {v}" for k, v in counts.removed_by_reason.items()) or "none"
    return (f"Keeps **{counts.kept}** of {counts.total} ({counts.kept_hours:.2f} h); removes "
            f"{counts.removed} ({reasons}).")  # fmt: skip


def apply_filter_handler(name: str, values: dict[str, Any]) -> str:
    try:
        result = apply_filter(_dataset(name), filter_options(values))
    except ValueError as exc:  # no bound set, or nothing would be left
        raise gr.Error(str(exc)) from exc
    return f"Wrote version {result.version.number}: " + filter_counts(name, {})


def split_handler(name: str, validation: float, test: float, seed: float, keep: bool) -> str:
    try:
        options = SplitOptions(validation=validation, test=test, seed=int(seed),
                               keep_existing=keep)  # fmt: skip
        result = assign_splits(_dataset(name), options)
    except ValueError as exc:
        raise gr.Error(str(exc)) from exc
    lines = [f"- {split}: {c.utterances} utterances, {c.hours:.3f} h, {c.speakers} speakers"
             for split, c in result.splits.items()]  # fmt: skip
    lines += [f"- warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def dashboard(name: str) -> tuple:
    """The figures and the worst-samples table of a dataset."""
    from utils.dataset.text_checks import default_tokenizer

    data = overview(_dataset(name), default_tokenizer())
    figures = overview_figures(data)
    rows = [[s.id, round(s.duration, 2), s.snr_db, s.clipping_ratio, s.chars_per_second, s.text]
            for s in data.worst]  # fmt: skip
    summary = f"{data.n} utterances, {data.durations.sum() / 3600:.3f} h"
    return (summary, *(figures[k] for k in FIGURES), rows)


def sample_view(name: str, rows: Any, event: gr.SelectData) -> tuple:
    """Play the selected worst sample and draw its waveform and spectrogram."""
    from utils.audio import load_audio

    row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
    utterance_id = rows.iloc[row, 0] if hasattr(rows, "iloc") else rows[row][0]
    root = _dataset(name)
    found = next((u for u in iter_manifest(root / MANIFEST_NAME) if u.id == utterance_id), None)
    if found is None:
        raise gr.Error(f"{utterance_id} is no longer in {name}; refresh the statistics.")
    path = str(found.audio_path(root))
    return path, waveform_and_spectrogram(load_audio(path), f"{found.id}: {found.text}")


def _import_section(language: gr.Textbox) -> tuple[dict[str, Any], gr.Button]:
    with gr.Accordion("Import", open=True), gr.Row():
        controls = {
            "format": gr.Dropdown(list(FORMATS), value="ljspeech", label="Format"),
            "archive": gr.File(label="Archive (.zip / .tar.gz)", file_types=[".zip", ".tar",
                                                                                ".gz", ".tgz"]),
            "path": gr.Textbox(label="Or a path on the server"),
            "name": gr.Textbox(label="New dataset name"),
        }  # fmt: skip
        run = gr.Button("Import", variant="primary")
    with gr.Row():
        controls |= {
            f"csv_{column}": gr.Textbox(default, label=f"CSV {column} column")
            for column, default in CSV_DEFAULTS.items()
        }
        controls["dvc"] = gr.Checkbox(False, label="Track with DVC (dvc add)")
    return controls | {"language": language}, run


def _synth_section(language: gr.Textbox) -> tuple[dict[str, Any], gr.Button]:
    with gr.Accordion("Synthetic speech (espeak-ng)", open=False), gr.Row():
        controls = {
            "text_file": gr.File(label="Sentences (one per line, or the corpus TSV)",
                                 type="filepath"),
            "demo": gr.Checkbox(True, label="Use the Amharic demo corpus"),
            "voices": gr.Slider(1, 8, value=4, step=1, label="Voices"),
            "limit": gr.Number(0, precision=0, label="Sentences at most (0 = all)"),
            "name": gr.Textbox("amharic-demo", label="New dataset name"),
        }  # fmt: skip
        run = gr.Button("Generate")
    return controls | {"language": language}, run


def _filter_section() -> tuple[dict[str, Any], gr.Markdown, gr.Button]:
    with gr.Accordion("Quality filter (writes a new version)", open=False):
        with gr.Row():
            controls = {
                "min_snr_db": gr.Number(None, label="Min SNR (dB)"),
                "max_clipping_ratio": gr.Number(None, label="Max clipping ratio"),
                "min_seconds": gr.Number(None, label="Min seconds"),
                "max_seconds": gr.Number(None, label="Max seconds"),
                "min_chars_per_second": gr.Number(None, label="Min chars/s"),
                "max_chars_per_second": gr.Number(None, label="Max chars/s"),
            }
        counts = gr.Markdown(elem_id="filter-counts")
        run = gr.Button("Apply filter")
    return controls, counts, run


def _split_section() -> tuple[list[Any], gr.Button]:
    with gr.Accordion("Splits (by speaker, deterministic)", open=False), gr.Row():
        inputs = [
            gr.Slider(0, 0.5, value=0.1, step=0.01, label="Validation share"),
            gr.Slider(0, 0.5, value=0.1, step=0.01, label="Test share"),
            gr.Number(0, precision=0, label="Seed"),
            gr.Checkbox(True, label="Keep existing splits"),
        ]
        run = gr.Button("Assign splits")
    return inputs, run


def _dashboard_section():
    with gr.Accordion("Statistics", open=True):
        refresh = gr.Button("Refresh statistics")
        summary = gr.Markdown(elem_id="dataset-summary")
        plots = [gr.Plot(label=key) for key in FIGURES]
        worst = gr.Dataframe(
            headers=WORST_COLUMNS,
            label="Worst samples (lowest SNR): select a row to play it",
            interactive=False,
            elem_id="worst-samples",
        )
        audio = gr.Audio(label="Sample", type="filepath", elem_id="sample-audio")
        picture = gr.Plot(label="Waveform and spectrogram", elem_id="sample-plot")
    return refresh, summary, plots, worst, audio, picture


def _wire(handler, controls: dict[str, Any]):
    names = list(controls)

    def run(*values, progress=gr.Progress()):
        return handler(dict(zip(names, values, strict=True)), progress)

    return run, list(controls.values())


def build_datasets_tab() -> None:
    """Render the tab inside the current Blocks context."""
    with gr.Row():
        dataset = gr.Dropdown(actions.list_datasets(), label="Dataset", allow_custom_value=True,
                              elem_id="dataset-picker",
                              scale=4)  # fmt: skip
        reload = gr.Button("Refresh list", size="sm", scale=1)
        language = gr.Textbox("am", label="Language", scale=1)
    report = gr.Markdown(elem_id="dataset-report")
    imports, run_import = _import_section(language)
    synth, run_synth = _synth_section(language)
    filters, counts, run_filter = _filter_section()
    split_inputs, run_split = _split_section()
    split_report = gr.Markdown()
    refresh, summary, plots, worst, audio, picture = _dashboard_section()
    reload.click(lambda: gr.Dropdown(choices=actions.list_datasets()), outputs=dataset)
    handler, inputs = _wire(import_handler, imports)
    run_import.click(handler, inputs, [report, dataset], api_name="import_dataset")
    handler, inputs = _wire(synth_handler, synth)
    run_synth.click(handler, inputs, [report, dataset], api_name="synthesize_dataset")
    names = list(filters)

    def counts_of(name, *values):
        return filter_counts(name, dict(zip(names, values, strict=True)))

    for control in [dataset, *filters.values()]:
        control.change(counts_of, [dataset, *filters.values()], counts, api_name=False)
    run_filter.click(lambda name, *v: apply_filter_handler(name, dict(zip(names, v, strict=True))),
                     [dataset, *filters.values()], counts, api_name="filter_dataset")  # fmt: skip
    run_split.click(split_handler, [dataset, *split_inputs], split_report, api_name="split_dataset")
    refresh.click(dashboard, dataset, [summary, *plots, worst], api_name="dataset_stats")
    worst.select(sample_view, [dataset, worst], [audio, picture])
