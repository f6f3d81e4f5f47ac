"""The Export tab's pruning panel: drop decoder layers and narrow the FFNs, optionally recover
with a short fine-tune, then read the accuracy and speed trade-off against the source."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import gradio as gr

from optimization.prune_job import PruneJob, PruneOutcome, run_prune_job
from optimization.pruning import PruneOptions

TRADEOFF_COLUMNS = ("model", "WER %", "CER %", "RTF", "size MB", "parameters (M)")


def job_from_form(values: dict[str, Any], dataset: str | None, limit: int | None) -> PruneJob:
    layers = int(values["decoder_layers"] or 0) or None
    keep = float(values["ffn_keep"]) if values["ffn_keep"] and values["ffn_keep"] < 1 else None
    options = PruneOptions(decoder_layers=layers, ffn_keep=keep)
    return PruneJob(model=values["source"], options=options, eval_dataset=dataset,
                    language=values.get("language") or None, eval_limit=limit,
                    recover_steps=int(values["recover_steps"] or 0))  # fmt: skip


def _cells(name: str, figures: Any) -> list[str]:
    params = f"{figures.parameters / 1e6:.1f}" if figures.parameters else ""
    return [name, f"{figures.wer * 100:.2f}", f"{figures.cer * 100:.2f}", f"{figures.rtf:.3f}",
            f"{figures.size_bytes / 1e6:.1f}", params]  # fmt: skip


def tradeoff_html(outcome: PruneOutcome) -> str:
    t = outcome.tradeoff
    rows = [_cells("source", t.source), _cells(outcome.model_dir.name, t.pruned)]
    head = "".join(f"<th>{c}</th>" for c in TRADEOFF_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    equal = f"{t.equal_work_speedup:.2f}x" if t.equal_work_speedup else "n/a"
    caption = (f"{t.n} clips, {t.audio_seconds:.0f} s: speedup {t.speedup:.2f}x end to end, "
               f"{equal} at equal output; size x{t.size_ratio:.2f}")  # fmt: skip
    return (f'<table id="prune-table"><caption>{html.escape(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")  # fmt: skip


def prune_handler(values: dict[str, Any], dataset: str | None, limit: int | None,
                  progress: Callable) -> tuple[str, str]:  # fmt: skip
    try:
        job = job_from_form(values, dataset, limit)
        outcome = run_prune_job(job, progress=lambda what, f: progress(f, desc=what))
    except (ValueError, LookupError, OSError, RuntimeError) as exc:
        raise gr.Error(f"Pruning failed: {exc}") from exc
    kept = outcome.report.decoder_layers_kept
    status = (f"Pruned into `{outcome.model_dir}` (decoder layers kept: {list(kept)}; "
              f"registered as **{outcome.registered}**). Export it above to CTranslate2 "
              "or ONNX.")  # fmt: skip
    return status, tradeoff_html(outcome)


HeldoutOf = Callable[[dict[str, Any]], tuple[str | None, int | None]]


def build_prune_panel(form: dict[str, gr.components.Component], heldout: HeldoutOf) -> None:
    """Render the panel; the source, held-out set and language come from the export form."""
    with gr.Accordion("Prune for edge deployment", open=False):
        gr.Markdown("Structured pruning every format can represent: fewer decoder layers (as "
                    "distil-whisper) and a narrower FFN in every layer. Dropping layers needs a "
                    "recovery fine-tune to be usable.")  # fmt: skip
        with gr.Row():
            layers = gr.Number(
                value=0, precision=0, minimum=0, label="Decoder layers kept (0: all)"
            )
            keep = gr.Slider(0.25, 1.0, value=1.0, step=0.05, label="FFN width kept")
            steps = gr.Number(value=0, precision=0, minimum=0, label="Recovery fine-tune steps")
        run = gr.Button("Prune and evaluate")
        status = gr.Markdown(elem_id="prune-status")
        table = gr.HTML(elem_id="prune-table-box")
    inputs = {**form, "decoder_layers": layers, "ffn_keep": keep, "recover_steps": steps}
    names = list(inputs)

    def on_prune(*values, progress=gr.Progress()):
        form_values = dict(zip(names, values, strict=True))
        dataset, limit = heldout(form_values)
        return prune_handler(form_values, dataset, limit, progress)

    run.click(on_prune, list(inputs.values()), [status, table], api_name="prune")
