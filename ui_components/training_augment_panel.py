"""Augmentation preview of the Training tab: one dataset sample (or an upload) before and after
the waveform augmentation training would apply with a seed and strength, both playable with
their waveform and spectrogram, and the SpecAugment masks on its log-mel."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from ui_components.dataset_figures import waveform_and_spectrogram
from ui_components.training_figures import log_mel_figure
from utils.audio import HOP_LENGTH, SAMPLE_RATE, AudioDecodeError, load_audio
from utils.dataset import actions
from utils.dataset.manifest import MANIFEST_NAME, iter_manifest

MAX_SAMPLES = 200  # sample ids offered in the picker


def sample_ids(dataset: str) -> list[str]:
    """The first utterance ids of `dataset` (none when it has no manifest)."""
    try:
        manifest = actions.dataset_path(dataset) / MANIFEST_NAME if dataset else None
    except ValueError:  # not a dataset name
        return []
    if manifest is None or not manifest.is_file():
        return []
    return [u.id for u in itertools.islice(iter_manifest(manifest), MAX_SAMPLES)]


def _sample_audio(dataset: str, sample: str) -> tuple[np.ndarray, str]:
    """The samples of utterance `sample` of `dataset` (the first one when empty), and a title."""
    root = actions.dataset_path(dataset)
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise ValueError(f"dataset {dataset!r} has no {MANIFEST_NAME}")
    found = next((u for u in iter_manifest(manifest) if not sample or u.id == sample), None)
    if found is None:
        raise ValueError(f"{sample!r} is not a sample of {dataset}")
    return load_audio(found.audio_path(root)), f"{found.id}: {found.text}"


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper's log-mel of `audio` (80 bins), cut to the frames that hold audio."""
    from transformers import WhisperFeatureExtractor

    features = WhisperFeatureExtractor(feature_size=80)(
        audio, sampling_rate=SAMPLE_RATE, return_tensors="np"
    ).input_features[0]
    return features[:, : max(1, min(features.shape[1], audio.size // HOP_LENGTH))]


def spec_augment_view(audio: np.ndarray, seed: int) -> Any:
    """The log-mel before and after SpecAugment's masks (always masked, for the preview)."""
    from augmentation.spec_aug import SpecAugment, SpecAugmentConfig

    features = log_mel(audio)
    masked = SpecAugment(SpecAugmentConfig(p=1.0))(features, seed, features.shape[1])
    return log_mel_figure(features, masked, f"SpecAugment (seed {seed})")


def _pcm16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


def preview_handler(
    dataset: str, sample: str, upload: str | None, strength: float, seed: float
) -> tuple:
    """(original audio, augmented audio, what fired, their two figures, the SpecAugment view)."""
    from augmentation.audio_aug import AudioAugmentConfig, preview

    try:
        if upload:
            audio, title = load_audio(upload), Path(upload).name
        elif dataset:
            audio, title = _sample_audio(dataset, sample)
        else:
            raise ValueError("pick a dataset (and a sample) or upload a clip")
        result = preview(
            audio, SAMPLE_RATE, AudioAugmentConfig(strength=float(strength)), int(seed or 0)
        )
    except (ValueError, AudioDecodeError, OSError) as exc:
        raise gr.Error(f"Cannot preview: {exc}") from exc
    fired = "\n".join(f"- {line}" for line in result.details) or "- nothing fired with this seed"
    return (
        (SAMPLE_RATE, _pcm16(result.original)),
        (SAMPLE_RATE, _pcm16(result.augmented)),
        f"**Applied** (strength {strength:.2f}, seed {result.seed}):\n{fired}",
        waveform_and_spectrogram(result.original, f"original: {title}"),
        waveform_and_spectrogram(result.augmented, "augmented"),
        spec_augment_view(result.augmented, result.seed),
    )


def build_augment_panel(dataset: gr.Dropdown) -> None:
    """Render the preview; `dataset` is the tab's dataset picker."""
    with gr.Accordion("Augmentation preview", open=False):
        with gr.Row():
            sample = gr.Dropdown(
                [], label="Sample", allow_custom_value=True, elem_id="augment-sample"
            )
            upload = gr.Audio(type="filepath", label="Or upload a clip", sources=["upload"])
            strength = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Strength")
            seed = gr.Number(0, precision=0, label="Seed")
        run = gr.Button("Preview augmentation")
        applied = gr.Markdown()
        with gr.Row():
            original = gr.Audio(label="Original", type="numpy", interactive=False)
            augmented = gr.Audio(label="Augmented", type="numpy", interactive=False)
        with gr.Row():
            original_plot = gr.Plot(label="Original")
            augmented_plot = gr.Plot(label="Augmented")
        spec_plot = gr.Plot(label="SpecAugment on the log-mel")
    dataset.change(
        lambda name: gr.Dropdown(choices=sample_ids(name), value=None),
        dataset,
        sample,
        api_visibility="private",
    )
    run.click(
        preview_handler,
        [dataset, sample, upload, strength, seed],
        [original, augmented, applied, original_plot, augmented_plot, spec_plot],
        api_name="augment_preview",
    )
