"""Plotly figures and HTML of the Training tab: the live dashboard (loss, learning rate, gradient
norm, validation WER/CER), the progress bar, and log-mel views for the augmentation preview."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from utils.audio import HOP_LENGTH

PANELS = (("loss", "Training loss"), ("lr", "Learning rate"), ("grad_norm", "Gradient norm"))
VAL_KEYS = (("val/wer", "WER"), ("val/cer", "CER"))
MARGIN = {"l": 50, "r": 10, "t": 50, "b": 40}


def _latest_per_step(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per step, the last written (a resumed run may repeat steps), sorted by step."""
    by_step = {row["step"]: row for row in rows if isinstance(row.get("step"), int)}
    return [by_step[step] for step in sorted(by_step)]


def _xy(rows: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pairs = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
    return [s for s, _ in pairs], [float(v) for _, v in pairs]


def dashboard_figure(
    steps: Iterable[dict[str, Any]], vals: Iterable[dict[str, Any]], title: str = ""
) -> go.Figure:
    """2x2 panels over the optimizer step: loss, learning rate, gradient norm, and the
    validation WER and CER (as fractions)."""
    step_rows, val_rows = _latest_per_step(steps), _latest_per_step(vals)
    names = [name for _, name in PANELS] + ["Validation WER / CER"]
    figure = make_subplots(
        rows=2, cols=2, subplot_titles=names, horizontal_spacing=0.1, vertical_spacing=0.16
    )
    for index, (key, name) in enumerate(PANELS):
        x, y = _xy(step_rows, key)
        figure.add_trace(
            go.Scatter(x=x, y=y, mode="lines+markers" if len(x) < 60 else "lines", name=name),
            index // 2 + 1,
            index % 2 + 1,
        )
    for key, name in VAL_KEYS:
        x, y = _xy(val_rows, key)
        figure.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=f"val {name}"), 2, 2)
    figure.update_xaxes(title_text="step", row=2)
    figure.update_yaxes(exponentformat="e", row=1, col=2)  # learning rates are small
    figure.update_layout(
        title=title or None, height=520, margin=MARGIN, legend={"orientation": "h", "y": -0.12}
    )
    return figure


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        return "–"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_html(
    state: str, step: int | None, max_steps: int | None, latest: dict[str, Any] | None
) -> str:
    """A progress bar with step, epoch, throughput and ETA; full when the run finished."""
    latest = latest or {}
    step = step if step is not None else latest.get("step")
    max_steps = max_steps or latest.get("max_steps")
    fraction = min(1.0, step / max_steps) if step and max_steps else 0.0
    if state == "finished":
        fraction = 1.0
    parts = [f"step {step or 0}" + (f" / {max_steps}" if max_steps else "")]
    if isinstance(latest.get("epoch"), int):
        parts.append(f"epoch {latest['epoch'] + 1}")
    if isinstance(latest.get("samples_per_second"), int | float):
        parts.append(f"{latest['samples_per_second']:.1f} samples/s")
    if state == "running":
        parts.append(f"ETA {_duration(latest.get('eta_seconds'))}")
    color = {"failed": "#d9534f", "killed": "#d9534f", "stopped": "#f0ad4e"}.get(state, "#5cb85c")
    text = html.escape(f"{fraction:.0%} · {state} · " + " · ".join(parts))
    return (
        '<div id="training-progress" class="training-progress">'
        '<div style="background:var(--neutral-200,#ddd);border-radius:6px;height:14px;">'
        f'<div style="width:{fraction * 100:.1f}%;background:{color};height:14px;'
        'border-radius:6px;transition:width .5s;"></div></div>'
        f'<div class="training-progress-text" style="margin-top:4px;">{text}</div></div>'
    )


def idle_progress_html(message: str = "No run is being followed.") -> str:
    return f'<div id="training-progress" class="training-progress">{html.escape(message)}</div>'


def log_mel_figure(features: np.ndarray, masked: np.ndarray | None, title: str) -> go.Figure:
    """The log-mel (n_mels, frames) over the same after SpecAugment, when given."""
    rows = 1 if masked is None else 2
    names = ["log-mel"] + ([] if masked is None else ["after SpecAugment"])
    figure = make_subplots(
        rows=rows, cols=1, shared_xaxes=True, subplot_titles=names, vertical_spacing=0.12
    )
    seconds = np.arange(features.shape[1]) * HOP_LENGTH / 16_000
    for row, values in enumerate([features] if masked is None else [features, masked], 1):
        figure.add_trace(
            go.Heatmap(z=values, x=seconds, colorscale="Viridis", showscale=False), row, 1
        )
        figure.update_yaxes(title_text="mel bin", row=row, col=1)
    figure.update_xaxes(title_text="seconds", row=rows, col=1)
    figure.update_layout(title=title, height=220 * rows + 60, margin=MARGIN)
    return figure
