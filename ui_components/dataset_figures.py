"""Plotly figures for the Datasets tab, from `utils.dataset.overview` data."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from utils.audio import HOP_LENGTH, N_FFT, SAMPLE_RATE
from utils.dataset.overview import DatasetOverview

HEIGHT = 260


def _histogram(values: np.ndarray, title: str, unit: str) -> go.Figure:
    shown = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    figure = go.Figure(go.Histogram(x=shown, nbinsx=40))
    figure.update_layout(title=f"{title} (n={shown.size})", xaxis_title=unit, height=HEIGHT,
                         margin={"l": 40, "r": 10, "t": 40, "b": 40})  # fmt: skip
    return figure


def _bars(values: dict[str, float], title: str, unit: str, limit: int = 40) -> go.Figure:
    items = list(values.items())[:limit]
    figure = go.Figure(go.Bar(x=[k for k, _ in items], y=[v for _, v in items]))
    figure.update_layout(title=title, yaxis_title=unit, height=HEIGHT,
                         margin={"l": 40, "r": 10, "t": 40, "b": 40})  # fmt: skip
    return figure


def overview_figures(data: DatasetOverview) -> dict[str, go.Figure]:
    """Histograms of duration, SNR, characters and tokens per utterance; hours per split and
    speaker; the character inventory."""
    return {
        "duration": _histogram(data.durations, "Duration", "seconds"),
        "snr": _histogram(data.snr_db, "Estimated SNR", "dB"),
        "chars": _histogram(data.chars, "Characters per utterance", "characters"),
        "tokens": _histogram(data.tokens, "Decoder tokens per utterance", "tokens"),
        "splits": _bars(data.hours_per_split, "Hours per split", "hours"),
        "speakers": _bars(data.hours_per_speaker, "Hours per speaker (top 40)", "hours"),
        "characters": _bars(
            {k: float(v) for k, v in data.characters.items()},
            f"Character inventory (top 40; Ge'ez coverage {data.geez_coverage:.0%})",
            "count",
        ),
    }


def waveform_and_spectrogram(samples: np.ndarray, title: str) -> go.Figure:
    """Waveform over a log-magnitude spectrogram of 16 kHz mono samples (n,)."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    step = max(1, samples.size // 4000)  # enough points to draw, few enough to send
    times = np.arange(0, samples.size, step) / SAMPLE_RATE
    figure.add_trace(go.Scatter(x=times, y=samples[::step], mode="lines", name="waveform"), 1, 1)
    spectrum = _spectrogram(samples)
    figure.add_trace(
        go.Heatmap(
            z=spectrum, x=np.arange(spectrum.shape[1]) * HOP_LENGTH / SAMPLE_RATE,
            y=np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE), colorscale="Viridis", showscale=False,
        ),
        2, 1,
    )  # fmt: skip
    figure.update_layout(title=title, height=420, showlegend=False,
                         margin={"l": 50, "r": 10, "t": 40, "b": 40})  # fmt: skip
    figure.update_yaxes(title_text="amplitude", row=1, col=1)
    figure.update_yaxes(title_text="Hz", row=2, col=1)
    figure.update_xaxes(title_text="seconds", row=2, col=1)
    return figure


def _spectrogram(samples: np.ndarray) -> np.ndarray:
    """dB magnitude, shape (N_FFT // 2 + 1, frames)."""
    if samples.size < N_FFT:
        samples = np.pad(samples, (0, N_FFT - samples.size))
    frames = np.lib.stride_tricks.sliding_window_view(samples, N_FFT)[::HOP_LENGTH]
    magnitude = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1)).T
    return 20 * np.log10(np.maximum(magnitude, 1e-6))
