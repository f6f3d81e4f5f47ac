"""The Transcribe tab: files or microphone in; text, coloured words, segments and downloads out."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from ui_components.presentation import (
    AUTO_LANGUAGE,
    CONFIDENCE_COLORS,
    SEGMENT_COLUMNS,
    audio_facts,
    highlighted_words,
    options_from_form,
    segment_rows,
    write_downloads,
)
from utils.registry import default_choice, list_models, model_choices
from utils.transcription import TranscriptionResult
from utils.transcription.batch import BatchTranscriber
from utils.transcription.engine import load_engine

LANGUAGES = (AUTO_LANGUAGE, "am", "en", "ar", "fr", "de", "es", "sw", "so", "ti", "zh", "hi", "ru")


def _advanced_controls() -> dict[str, gr.components.Component]:
    """Every DecodeOptions field beyond the basics, keyed by the name `options_from_form` reads."""
    with gr.Accordion("Advanced decoding", open=False):
        with gr.Row():
            controls = {
                "batch_size": gr.Slider(1, 32, value=8, step=1, label="Batch size (many files)"),
                "beam_size": gr.Slider(1, 10, value=5, step=1, label="Beam size"),
                "best_of": gr.Slider(1, 10, value=5, step=1, label="Best of (sampling)"),
                "patience": gr.Number(1.0, label="Beam patience"),
                "length_penalty": gr.Number(1.0, label="Length penalty"),
            }
        with gr.Row():
            controls |= {
                "temperature": gr.Textbox("0,0.2,0.4,0.6", label="Temperature fallback"),
                "repetition_penalty": gr.Number(1.0, label="Repetition penalty"),
                "no_repeat_ngram_size": gr.Number(0, precision=0, label="No-repeat n-gram size"),
                "max_new_tokens": gr.Number(
                    0, precision=0, label="Max new tokens (0 = model limit)"
                ),
            }
        with gr.Row():
            controls |= {
                "initial_prompt": gr.Textbox("", label="Initial prompt"),
                "hotwords": gr.Textbox("", label="Hotwords"),
                "suppress_tokens": gr.Textbox("-1", label="Suppress token ids"),
            }
        with gr.Row():
            controls |= {
                "vocabulary": gr.Textbox("", lines=3, label="Vocabulary (one word per line)"),
                "vocabulary_mode": gr.Radio(
                    ["bias", "restrict"], value="bias", label="Vocabulary mode"
                ),
            }
        with gr.Row():
            controls |= {
                "vad_filter": gr.Checkbox(True, label="VAD filter"),
                "vad_threshold": gr.Slider(0.1, 0.9, value=0.5, step=0.05, label="VAD threshold"),
                "vad_min_silence_ms": gr.Number(2000, precision=0, label="VAD min silence (ms)"),
                "condition_on_previous_text": gr.Checkbox(
                    False, label="Condition on previous text"
                ),
                "word_timestamps": gr.Checkbox(True, label="Word timestamps"),
                "hallucination_silence_threshold": gr.Number(
                    0, label="Hallucination silence threshold (s, 0 = off)"
                ),
            }
    return controls


def _inputs_of(files, recording) -> list[str]:
    paths = [str(getattr(f, "name", f)) for f in (files or [])]
    if recording:
        paths.append(str(recording))
    return paths


def _run(paths: list[str], model: str, form: dict[str, Any], report: Callable) -> list[Any]:
    """One file: the sequential decoder (full fallback; long files block by block). Many files:
    their windows batched together on CTranslate2 models."""
    batch_size = int(form.pop("batch_size", 8))
    options = options_from_form(form)
    engine = load_engine(model)
    if len(paths) == 1:
        return [
            engine.transcribe(paths[0], options, lambda f: report(f, "decoding"), source=paths[0])
        ]
    if engine.kind == "ctranslate2" and batch_size > 1:
        batch = BatchTranscriber(engine, batch_size=batch_size)
        return batch.transcribe(paths, options, lambda done, total: report(done / total, "batch"))
    outcomes = []
    for index, path in enumerate(paths):
        try:
            outcomes.append(engine.transcribe(path, options, source=path))
        except ValueError as exc:
            outcomes.append(exc)
        report((index + 1) / len(paths), "files")
    return outcomes


def transcribe_handler(values: dict[str, Any], progress: Callable) -> tuple:
    """Event handler: `values` maps control names (option names for the decoding controls) to
    their values."""
    values = dict(values)
    paths = _inputs_of(values.pop("files", None), values.pop("recording", None))
    if not paths:
        raise gr.Error("Add an audio file or record from the microphone first.")
    model = values.pop("model")
    try:
        outcomes = _run(paths, model, values, lambda frac, what: progress(frac, desc=what))
    except (ValueError, LookupError, RuntimeError) as exc:
        raise gr.Error(str(exc)) from exc
    return _present(outcomes, paths)


def _present(outcomes: list[Any], paths: list[str]):
    results = [o for o in outcomes if isinstance(o, TranscriptionResult)]
    errors = [
        f"{Path(p).name}: {o}"
        for p, o in zip(paths, outcomes, strict=True)
        if isinstance(o, Exception)
    ]
    for message in errors:
        gr.Warning(message)
    if not results:
        raise gr.Error("No file could be transcribed. " + " ".join(errors))
    download_dir = Path(tempfile.mkdtemp(prefix="transcripts-"))
    downloads = [
        str(path)
        for index, result in enumerate(results)
        for path in write_downloads(result, download_dir / str(index))
    ]
    text = "\n\n".join(
        (f"[{Path(r.source).name}]\n" if len(results) > 1 else "") + r.text for r in results
    )
    words = [pair for r in results for pair in highlighted_words(r)]
    rows = [row for r in results for row in segment_rows(r)]
    facts = [audio_facts(r) for r in results]
    return text, words, rows, downloads, facts if len(facts) > 1 else facts[0]


def model_picker_update() -> gr.Dropdown:
    """The model list as the registry holds it now (exports appear, flagged ones marked)."""
    return gr.Dropdown(choices=model_choices(list_models()))


def model_picker(default_model: str | None, **layout: Any) -> gr.Dropdown:
    """The model dropdown of the Transcribe and Live tabs: the registry's models (flagged ones
    marked), `default_model` preselected unless it failed a parity check."""
    entries = list_models()
    choices = model_choices(entries)
    if default_model and default_model not in {name for _, name in choices}:
        choices.insert(0, (default_model, default_model))  # a path or hub id: resolved when used
    value = default_choice(entries, default_model) or (choices[0][1] if choices else None)
    return gr.Dropdown(choices, value=value, allow_custom_value=True, label="Model", **layout)


def build_transcribe_tab(default_model: str | None = None) -> gr.Dropdown:
    """Render the tab inside the current Blocks context; `default_model` is preselected unless
    it failed a parity check. Returns the model picker, refreshed by `model_picker_update`."""
    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(
                file_count="multiple", file_types=["audio", "video"], label="Audio files"
            )
            recording = gr.Audio(sources=["microphone"], type="filepath", label="Or record")
            with gr.Row():
                model = model_picker(default_model, scale=4)
                refresh = gr.Button("Refresh models", size="sm", scale=1)
            with gr.Row():
                language = gr.Dropdown(
                    list(LANGUAGES), value=AUTO_LANGUAGE, allow_custom_value=True, label="Language"
                )
                task = gr.Radio(["transcribe", "translate"], value="transcribe", label="Task")
            advanced = _advanced_controls()
            run = gr.Button("Transcribe", variant="primary")
        with gr.Column(scale=2):
            text = gr.Textbox(label="Transcript", lines=8, buttons=["copy"], elem_id="transcript")
            words = gr.HighlightedText(
                label="Words by confidence", color_map=CONFIDENCE_COLORS, show_legend=True
            )
            segments = gr.Dataframe(headers=SEGMENT_COLUMNS, label="Segments", wrap=True)
            downloads = gr.File(label="Downloads (SRT, VTT, JSON, TXT)", file_count="multiple")
            facts = gr.JSON(label="Audio")
    controls = {
        "files": files,
        "recording": recording,
        "model": model,
        "language": language,
        "task": task,
    } | advanced
    names = list(controls)
    refresh.click(model_picker_update, outputs=model)

    def on_click(*values, progress=gr.Progress()):
        return transcribe_handler(dict(zip(names, values, strict=True)), progress)

    run.click(
        on_click,
        inputs=list(controls.values()),
        outputs=[text, words, segments, downloads, facts],
        api_name="transcribe",
    )
    return model
