"""Shared fixtures: one workspace per test session, with the default model assembled once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI draws the same property-test examples every run, so a run never fails by chance; to search
# further, run with HYPOTHESIS_PROFILE=explore (new random examples each run).
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TRANSCRIPTS = Path("/usr/share/asterisk/sounds/en/core-sounds-en.txt")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    """A fresh workspace for the session; the default model is linked in, not re-assembled."""
    from utils.model_store import DEFAULT_MODEL, ensure_default_model
    from utils.workspace import WORKSPACE_ENV, get_workspace

    shared = ensure_default_model(get_workspace(Path(__file__).parents[1] / "workspace"))
    root = tmp_path_factory.mktemp("workspace")
    os.environ[WORKSPACE_ENV] = str(root)
    ws = get_workspace(root)
    (ws.models / DEFAULT_MODEL).symlink_to(shared, target_is_directory=True)
    return ws


@pytest.fixture(scope="session")
def default_model_dir(workspace) -> Path:
    from utils.model_store import ensure_default_model

    return ensure_default_model(workspace)


@pytest.fixture(scope="session")
def hf_model_dir(workspace, default_model_dir) -> Path:
    """The default model converted once to transformers format (``models/whisper-base-hf``)."""
    from utils.ct2_convert import ensure_transformers_model

    return ensure_transformers_model(default_model_dir, workspace.models)


@pytest.fixture(scope="session")
def engine(default_model_dir):
    """The default model on the faster-whisper engine (CPU, int8), loaded once."""
    from utils.transcription.engine import load_engine

    return load_engine("whisper-base", device="cpu")


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory, hf_model_dir) -> Path:
    """A randomly initialised tiny Whisper (2+2 layers, d_model 64) in transformers format, with
    the default model's tokenizer, feature extractor and generation config: trains in
    milliseconds per step."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    base = WhisperConfig.from_pretrained(hf_model_dir)
    config = WhisperConfig(
        vocab_size=base.vocab_size, num_mel_bins=base.num_mel_bins, d_model=64,
        encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=448,
        decoder_start_token_id=base.decoder_start_token_id, pad_token_id=base.pad_token_id,
        bos_token_id=base.bos_token_id, eos_token_id=base.eos_token_id,
        begin_suppress_tokens=base.begin_suppress_tokens, suppress_tokens=base.suppress_tokens,
    )  # fmt: skip
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig.from_pretrained(hf_model_dir)
    model.generation_config.alignment_heads = [[1, 0]]
    out = tmp_path_factory.mktemp("tiny-whisper")
    model.save_pretrained(out)
    WhisperProcessor.from_pretrained(hf_model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_dataset_dir(tmp_path_factory) -> Path:
    """Twelve short Amharic utterances spoken by espeak-ng (3 voices), with train/validation/test
    splits; the test split is a held-out voice."""
    from augmentation.tts import Sentence, SynthOptions, synthesize_dataset

    texts = ["ሰላም ነህ ወይ?", "አዲስ አበባ ትልቅ ከተማ ናት።", "ጎንደር ከዚህ ሩቅ ነው።", "ዛሬ ዝናብ ዘነበ።",
             "ገበያ ሄጄ ቲማቲም ገዛሁ።", "ልጆቹ ትምህርት ቤት ሄዱ።", "ቡና እንጠጣ።", "መጽሐፉን አነበብኩ።",
             "ነገ እንገናኛለን።", "ውሃ ጠማኝ።", "አባቴ ገበሬ ነው።", "እናቴ እንጀራ ጋገረች።"]  # fmt: skip
    out = tmp_path_factory.mktemp("datasets") / "tiny-am"
    options = SynthOptions(voices=3, validation=2 / 12, test=2 / 12)
    report = synthesize_dataset(
        [Sentence(f"s{i:02d}", t) for i, t in enumerate(texts)], out, options
    )
    assert report.kept == len(texts), report.rejected
    return out


@pytest.fixture(scope="session")
def onnx_base_dir(tmp_path_factory, hf_model_dir) -> Path:
    """The default model exported once to ONNX, fp32 (encoder.onnx, KV-cache decoder.onnx,
    onnx_config.json, tokenizer and configs): about 15 s on 2 CPU cores. Without the export's
    own check against torch: tests/test_onnx_export.py compares the graphs with the HF model."""
    from optimization.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("onnx-base-fp32")
    export_onnx(hf_model_dir, out, precision="fp32", verify=False)
    return out


@pytest.fixture(scope="session")
def onnx_base_int8_dir(tmp_path_factory, onnx_base_dir) -> Path:
    """`onnx_base_dir` quantized once to dynamic int8 (no second export): about 8 s."""
    from optimization.onnx_export import quantize_onnx_dir

    out = tmp_path_factory.mktemp("onnx-base-int8")
    quantize_onnx_dir(onnx_base_dir, out, "int8")
    return out


@pytest.fixture(scope="module")
def hf_engine(hf_model_dir):
    """The converted default model on the transformers engine, loaded once through load_engine,
    with torch on one thread (two-core machines: no OpenMP oversubscription) while it lives."""
    import torch

    from utils.transcription.engine import load_engine

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_engine(str(hf_model_dir), device="cpu", compute_type="float32")
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def geez_workspace(tmp_path_factory, default_model_dir, hf_model_dir):
    """A workspace of its own for the Ge'ez model (the session's model lists stay as other
    tests expect), with the default model in both forms linked in."""
    from utils.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("geez-workspace")).ensure()
    (ws.models / "whisper-base").symlink_to(default_model_dir, target_is_directory=True)
    (ws.models / "whisper-base-hf").symlink_to(hf_model_dir, target_is_directory=True)
    return ws


@pytest.fixture(scope="session")
def geez_model(geez_workspace):
    """The default model with a Ge'ez vocabulary, chosen on a test-sized corpus and prior."""
    from utils.geez_vocab.build import build_geez_model
    from utils.geez_vocab.design import GeezVocabConfig

    config = GeezVocabConfig(corpus_every=10, min_word_frequency=1e-4)  # seconds, not minutes
    return build_geez_model("whisper-base", "whisper-base-geez", config, geez_workspace)
