"""Structured pruning (optimization.pruning and the modules behind it): layer choice, FFN neuron
choice (by weights and by activations, calibrated on given clips or by default on English
speech), the pruned model equal to the source with the pruned parts masked out, exports
(CTranslate2, faster-whisper), bad inputs, the trade-off report, the recovery fine-tune and the
command line."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

from optimization.pruning import (
    DEFAULT_CALIBRATION_CLIPS,
    PruneOptions,
    TradeoffReport,
    evaluate_tradeoff,
    ffn_activations,
    ffn_width,
    fine_tune_language,
    greedy_options,
    kept_layers,
    load_whisper,
    main,
    parameter_count,
    prune_model,
    prune_whisper,
    recover,
    remap_alignment_heads,
)
from utils.transcription.results import Segment, TranscriptionResult

# Ranked by weights: the directory's tensors are checked against that rule written out below,
# and no calibration is spent on the fixture (2 -> 1 decoder layers, FFN 128 -> 96).
TINY_OPTIONS = PruneOptions(
    decoder_layers=1, ffn_keep=0.75, ffn_multiple=32, ffn_importance="weights"
)
BASE_HEADS = [[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]]


def _importance_order(fc1_w: torch.Tensor, fc1_b: torch.Tensor, fc2_w: torch.Tensor):
    """Neuron indices, most important first, by the documented rule written out independently:
    sqrt(|fc1 row|^2 + bias^2) * |fc2 column|."""
    incoming = (fc1_w.pow(2).sum(1) + fc1_b.pow(2)).sqrt()
    return torch.argsort(incoming * fc2_w.pow(2).sum(0).sqrt(), descending=True)


def _logits(model: WhisperForConditionalGeneration, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(1, model.config.num_mel_bins, 3000, generator=generator)
    ids = torch.tensor([[50258, 50259, 50359, 50364, 400, 1000, 2000, 50257]])
    with torch.inference_mode():
        return model(input_features=features, decoder_input_ids=ids).logits


@pytest.fixture(scope="module")
def four_layer_model(tiny_whisper_dir: Path) -> WhisperForConditionalGeneration:
    """A random tiny Whisper with 4 decoder layers (2 heads, FFN 128), alignment heads in
    layers 1 and 3, in memory."""
    config = WhisperConfig.from_pretrained(tiny_whisper_dir)
    config.decoder_layers = 4
    torch.manual_seed(1)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig.from_pretrained(tiny_whisper_dir)
    model.generation_config.alignment_heads = [[1, 0], [3, 1], [3, 0]]
    return model


@pytest.fixture(scope="module")
def pruned_dir(tiny_whisper_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pruned") / "tiny-pruned"
    prune_model(tiny_whisper_dir, out, TINY_OPTIONS)
    return out


# -- choices -----------------------------------------------------------------------------------
def test_kept_layers_follow_distil_whisper() -> None:
    assert kept_layers(32, 2) == (0, 31)
    assert kept_layers(6, 2) == (0, 5) and kept_layers(6, 3) == (0, 2, 5)
    assert kept_layers(6, 4) == (0, 1, 3, 5) and kept_layers(6, 6) == tuple(range(6))
    assert kept_layers(6, 1) == (5,)
    for bad in (0, 7):
        with pytest.raises(ValueError, match="between 1 and 6"):
            kept_layers(6, bad)


def test_ffn_width_is_a_multiple_within_bounds() -> None:
    assert ffn_width(2048, 0.75, 64) == 1536 and ffn_width(2048, 0.7, 64) == 1408
    assert ffn_width(128, 0.75, 32) == 96 and ffn_width(128, 0.01, 64) == 64
    assert ffn_width(48, 0.5, 64) == 48  # narrower than one multiple: kept whole
    assert ffn_width(1500, 1.0, 64) == 1500 and ffn_width(1500, None, 64) == 1500


def test_alignment_heads_remapped_or_defaulted() -> None:
    assert remap_alignment_heads(BASE_HEADS, (0, 5), 8) == [[1, 1], [1, 2], [1, 4], [1, 6]]
    assert remap_alignment_heads(BASE_HEADS, (0, 2, 4, 5), 8)[:3] == [[2, 2], [2, 3], [2, 7]]
    # none left: every head of the last half of the kept layers
    assert remap_alignment_heads([[1, 0]], (0, 2, 3), 2) == [[1, 0], [1, 1], [2, 0], [2, 1]]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "nothing to prune"),
        ({"decoder_layers": 0}, "at least 1"),
        ({"decoder_layers": 2.0}, "must be an integer"),
        ({"ffn_keep": 0.0}, r"ffn_keep must be in \(0, 1\]"),
        ({"ffn_keep": 1.5}, r"ffn_keep must be in \(0, 1\]"),
        ({"ffn_keep": 0.5, "ffn_stacks": ("mlp",)}, "ffn_stacks must name"),
        ({"ffn_keep": 0.5, "ffn_multiple": 0}, "ffn_multiple"),
        ({"ffn_keep": 0.5, "ffn_importance": "gradients"}, "ffn_importance must be"),
    ],
)
def test_invalid_options_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PruneOptions(**changes)


# -- the pruned network ------------------------------------------------------------------------
def _masked(model: WhisperForConditionalGeneration, kept: tuple[int, ...], widths: dict):
    """The source with the pruned parts switched off: a dropped decoder layer's output
    projections zeroed (a pre-norm residual layer is then the identity), a dropped FFN neuron's
    fc1 row, bias and fc2 column zeroed (GELU(0) = 0)."""
    masked = copy.deepcopy(model)
    for index, layer in enumerate(masked.model.decoder.layers):
        if index not in kept:
            for linear in (layer.self_attn.out_proj, layer.encoder_attn.out_proj, layer.fc2):
                linear.weight.data.zero_()
                linear.bias.data.zero_()
    for stack in ("encoder", "decoder"):
        for layer in getattr(masked.model, stack).layers:
            order = _importance_order(layer.fc1.weight, layer.fc1.bias, layer.fc2.weight)
            dropped = order[widths[stack] :]
            layer.fc1.weight.data[dropped] = 0
            layer.fc1.bias.data[dropped] = 0
            layer.fc2.weight.data[:, dropped] = 0
    return masked


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_pruned_model_equals_the_masked_source(four_layer_model, keep: int) -> None:
    options = PruneOptions(decoder_layers=keep, ffn_keep=0.5, ffn_importance="weights")  # 128 -> 64
    pruned = prune_whisper(four_layer_model, options)
    assert pruned.decoder_layers_kept == kept_layers(4, keep)
    assert pruned.ffn_widths == {"encoder": 64, "decoder": 64}
    masked = _masked(four_layer_model, pruned.decoder_layers_kept, dict(pruned.ffn_widths))
    want, got = _logits(masked), _logits(pruned.model)
    assert got.shape == want.shape and torch.isfinite(got).all()
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    if keep == 3:  # renumbered layers (3 -> 2) must find their own KV cache entries
        assert_cached_decoding_matches(pruned.model)


def assert_cached_decoding_matches(model: WhisperForConditionalGeneration) -> None:
    """Token-by-token decoding through the KV cache gives the full pass's logits."""
    features = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(3))
    ids = [50258, 50259, 50359, 50364, 400, 1000]
    with torch.inference_mode():
        encoded = model.model.encoder(features)
        full = model(encoder_outputs=encoded, decoder_input_ids=torch.tensor([ids])).logits[0]
        out = model(encoder_outputs=encoded, decoder_input_ids=torch.tensor([ids[:3]]))
        steps = [out.logits[0, -1]]
        for token in ids[3:]:
            out = model(encoder_outputs=encoded, decoder_input_ids=torch.tensor([[token]]),
                        past_key_values=out.past_key_values)  # fmt: skip
            steps.append(out.logits[0, -1])
    torch.testing.assert_close(torch.stack(steps), full[2:], atol=1e-5, rtol=1e-4)


def test_keeping_everything_reproduces_the_source_exactly(four_layer_model) -> None:
    pruned = prune_whisper(four_layer_model, PruneOptions(decoder_layers=4, ffn_keep=1.0))
    assert torch.equal(_logits(pruned.model), _logits(four_layer_model))
    heads = four_layer_model.generation_config.alignment_heads
    assert pruned.model.generation_config.alignment_heads == heads
    assert four_layer_model.config.decoder_layers == 4  # the source is left as it was


def test_ffn_stacks_limit_the_narrowing(four_layer_model) -> None:
    options = PruneOptions(ffn_keep=0.5, ffn_stacks=("decoder",), ffn_importance="weights")
    pruned = prune_whisper(four_layer_model, options)
    assert pruned.ffn_widths == {"encoder": 128, "decoder": 64}
    assert pruned.decoder_layers_kept == (0, 1, 2, 3)
    assert pruned.model.model.encoder.layers[0].fc1.weight.shape == (128, 64)


def test_activation_ranking_drops_a_dead_neuron_that_weights_keep(
    four_layer_model, tiny_whisper_dir: Path, tmp_path: Path
) -> None:
    from transformers import WhisperFeatureExtractor

    model = copy.deepcopy(four_layer_model)
    layer = model.model.encoder.layers[0]
    with torch.no_grad():
        layer.fc1.bias[7] = -60.0  # the largest fc1 norm, yet GELU(-60 + w.x) is 0: never fires
    extractor = WhisperFeatureExtractor.from_pretrained(tiny_whisper_dir)
    clip = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    activations = ffn_activations(model, extractor, [clip], max_tokens=4)
    assert [len(activations[s]) for s in ("encoder", "decoder")] == [2, 4]
    assert activations["encoder"][0][7] < 1e-6 and activations["encoder"][0].mean() > 1e-3
    calibrated = PruneOptions(ffn_keep=0.5, ffn_stacks=("encoder",))
    assert calibrated.ffn_importance == "activations" and calibrated.needs_calibration  # default
    by_weights = prune_whisper(model, dataclasses.replace(calibrated, ffn_importance="weights"))
    by_activations = prune_whisper(model, calibrated, activations)
    assert (by_weights.model.model.encoder.layers[0].fc1.bias == -60).any()
    scores = activations["encoder"][0] * layer.fc2.weight.detach().norm(dim=0)
    want = layer.fc1.bias.detach()[scores.argsort(descending=True)[:64].sort().values]
    assert torch.equal(by_activations.model.model.encoder.layers[0].fc1.bias, want)
    with pytest.raises(ValueError, match="needs calibration activations"):
        prune_whisper(model, calibrated)
    out = tmp_path / "calibrated"
    with pytest.raises(ValueError, match="needs calibration audio"):
        prune_model(tiny_whisper_dir, out, calibrated, calibration=[])
    with pytest.raises(ValueError, match="not a single clip"):
        prune_model(tiny_whisper_dir, out, calibrated, calibration=clip)
    assert not out.exists()
    report = prune_model(
        tiny_whisper_dir, out, calibrated, calibration=[clip], calibration_tokens=4
    )
    assert report.calibration_clips == 1 and report.ffn_widths_after["encoder"] == 64
    assert report.calibration_source == "1 given clips"
    # weights alone are ranked when every neuron is kept: no calibration asked for
    assert not PruneOptions(ffn_keep=1.0).needs_calibration


def test_default_calibration_is_english_speech(tiny_whisper_dir: Path, tmp_path: Path) -> None:
    """No clips given: the FFN neurons are ranked on DEFAULT_CALIBRATION_CLIPS English prompts,
    exactly as on the same prompts given by hand."""
    from safetensors.torch import load_file
    from transformers import WhisperFeatureExtractor

    from optimization.heldout_sets import english_heldout

    options, out = PruneOptions(ffn_keep=0.5), tmp_path / "english"
    report = prune_model(tiny_whisper_dir, out, options, calibration_tokens=4)
    english = english_heldout(DEFAULT_CALIBRATION_CLIPS)
    assert report.calibration_clips == DEFAULT_CALIBRATION_CLIPS == english.n == 16
    assert report.calibration_source == english.description
    assert report.calibration_source.startswith("English speech")
    model = load_whisper(tiny_whisper_dir)
    extractor = WhisperFeatureExtractor.from_pretrained(tiny_whisper_dir)
    activations = ffn_activations(model, extractor, english.audios, max_tokens=4)
    want = prune_whisper(model, options, activations).model.state_dict()
    for key, tensor in load_file(out / "model.safetensors").items():
        assert torch.equal(tensor, want[key]), key


def test_a_fine_tune_on_another_language_needs_its_own_clips(
    tiny_whisper_dir: Path, tmp_path: Path
) -> None:
    """A studio run's model (studio.json names the run, whose config names the language) is not
    calibrated on English speech unless it was fine-tuned on English."""
    run, tuned = tmp_path / "run", tmp_path / "tuned"
    run.mkdir()
    tuned.mkdir()
    (run / "config.json").write_text(json.dumps({"language": "am"}))
    for path in tiny_whisper_dir.iterdir():
        (tuned / path.name).symlink_to(path)
    (tuned / "studio.json").write_text(json.dumps({"run": str(run), "base_model": "base"}))
    assert fine_tune_language(tiny_whisper_dir) is None and fine_tune_language(tuned) == "am"
    out = tmp_path / "pruned"
    with pytest.raises(ValueError, match=r"fine-tuned on language 'am'.*calibration clips"):
        prune_model(tuned, out, PruneOptions(ffn_keep=0.5))
    assert not out.exists()
    prune_model(tuned, out, PruneOptions(decoder_layers=1))  # no FFN ranking: no clips needed
    (run / "config.json").write_text(json.dumps({"language": "en"}))
    assert fine_tune_language(tuned) == "en"
    (run / "config.json").unlink()
    assert fine_tune_language(tuned) == "?"


# -- the pruned directory ----------------------------------------------------------------------
def test_pruned_directory_config_weights_and_report(tiny_whisper_dir: Path, pruned_dir: Path):
    from safetensors.torch import load_file

    model, info = WhisperForConditionalGeneration.from_pretrained(
        pruned_dir, output_loading_info=True
    )
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    c = model.config
    assert (c.decoder_layers, c.encoder_layers, c.encoder_ffn_dim, c.decoder_ffn_dim) == (
        1,
        2,
        96,
        96,
    )
    source, pruned = (
        load_file(tiny_whisper_dir / "model.safetensors"),
        load_file(pruned_dir / "model.safetensors"),
    )
    for key, tensor in pruned.items():
        origin = key.replace("decoder.layers.0.", "decoder.layers.1.")  # kept: source layer 1
        if key.endswith(("fc1.weight", "fc1.bias", "fc2.weight")):
            prefix = origin.rsplit(".", 2)[0]
            order = _importance_order(*(source[f"{prefix}.{n}"] for n in
                                        ("fc1.weight", "fc1.bias", "fc2.weight")))  # fmt: skip
            keep = order[:96].sort().values
            want = source[origin][:, keep] if key.endswith("fc2.weight") else source[origin][keep]
        else:
            want = source[origin]
        assert torch.equal(tensor, want), key
    assert set(pruned) == {k.replace("decoder.layers.1.", "decoder.layers.0.") for k in source
                           if "decoder.layers.0." not in k}  # fmt: skip
    assert torch.isfinite(_logits(model)).all()
    record = json.loads((pruned_dir / "pruning.json").read_text())
    assert record["options"]["decoder_layers"] == 1 and record["options"]["ffn_multiple"] == 32
    report = record["report"]
    assert report["decoder_layers_kept"] == [1] and report["alignment_heads"] == [[0, 0]]
    assert report["ffn_widths_before"] == {"encoder": 128, "decoder": 128}
    assert report["parameters_after"] == model.num_parameters() == parameter_count(pruned_dir)
    assert report["parameters_before"] > report["parameters_after"]
    assert report["size_bytes_after"] == (pruned_dir / "model.safetensors").stat().st_size
    assert report["size_bytes_before"] > report["size_bytes_after"]
    assert (pruned_dir.stat().st_mode & 0o777, (pruned_dir / "model.safetensors").stat().st_mode
            & 0o777) == (0o755, 0o644)  # fmt: skip


def test_generation_config_and_processor_are_kept(tiny_whisper_dir: Path, pruned_dir: Path):
    from transformers import WhisperProcessor

    before = json.loads((tiny_whisper_dir / "generation_config.json").read_text())
    after = json.loads((pruned_dir / "generation_config.json").read_text())
    assert after.pop("alignment_heads") == [[0, 0]] and before.pop("alignment_heads") == [[1, 0]]
    assert after == before
    assert {"lang_to_id", "task_to_id", "suppress_tokens", "begin_suppress_tokens"} <= set(after)
    for name in ("tokenizer.json", "tokenizer_config.json", "processor_config.json"):
        assert (pruned_dir / name).read_bytes() == (tiny_whisper_dir / name).read_bytes(), name
    processor = WhisperProcessor.from_pretrained(pruned_dir)
    assert processor.tokenizer.convert_tokens_to_ids("<|am|>") == 50334


def test_pruned_model_converts_to_ctranslate2_and_loads_in_faster_whisper(
    pruned_dir: Path, tmp_path: Path
) -> None:
    from ctranslate2.converters import TransformersConverter
    from faster_whisper import WhisperModel

    from utils.ct2_convert import read_ct2_model

    out = TransformersConverter(str(pruned_dir), copy_files=["tokenizer.json"]).convert(
        str(tmp_path / "ct2"), quantization="int8"
    )
    ct2 = read_ct2_model(out)
    names = list(ct2.variables)
    assert not any(n.startswith("decoder/layer_1/") for n in names)
    assert ct2.variables["decoder/layer_0/ffn/linear_0/weight"].shape == (96, 64)
    assert ct2.variables["encoder/layer_1/ffn/linear_1/weight"].shape == (64, 96)
    assert json.loads((Path(out) / "config.json").read_text())["alignment_heads"] == [[0, 0]]
    model = WhisperModel(out, device="cpu", compute_type="int8")
    assert model.model.is_multilingual and model.model.n_mels == 80
    noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    segments, info = model.transcribe(
        noise, language="en", vad_filter=False, temperature=0.0, max_new_tokens=4,
        without_timestamps=True,
    )  # fmt: skip
    list(segments)  # decodes: the random weights say nothing meaningful
    assert info.language == "en"


class _Encoder(torch.nn.Module):
    def __init__(self, model: WhisperForConditionalGeneration) -> None:
        super().__init__()
        self.encoder = model.model.encoder

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.encoder(features).last_hidden_state


class _Decoder(torch.nn.Module):
    def __init__(self, model: WhisperForConditionalGeneration) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        return self.model(encoder_outputs=(states,), decoder_input_ids=ids, use_cache=False).logits


def test_pruned_model_exports_to_onnx(pruned_dir: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    model = WhisperForConditionalGeneration.from_pretrained(pruned_dir, attn_implementation="eager")
    features = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[50258, 50259, 50359, 50363, 400]])
    with torch.inference_mode():
        states = _Encoder(model.eval())(features)
        logits = _Decoder(model)(ids, states)
    torch.onnx.export(_Encoder(model), (features,), tmp_path / "encoder.onnx",
                      input_names=["features"], output_names=["states"])  # fmt: skip
    torch.onnx.export(_Decoder(model), (ids, states), tmp_path / "decoder.onnx",
                      input_names=["ids", "states"], output_names=["logits"])  # fmt: skip
    run = {name: ort.InferenceSession(tmp_path / f"{name}.onnx", providers=["CPUExecutionProvider"])
           for name in ("encoder", "decoder")}  # fmt: skip
    got_states = run["encoder"].run(None, {"features": features.numpy()})[0]
    got = run["decoder"].run(None, {"ids": ids.numpy(), "states": got_states})[0]
    np.testing.assert_allclose(got_states, states.numpy(), atol=1e-4)
    np.testing.assert_allclose(got, logits.numpy(), atol=1e-4)


# -- bad inputs --------------------------------------------------------------------------------
def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir()) if path.parent.exists() else []


def test_bad_model_directories_are_named(tiny_whisper_dir: Path, default_model_dir: Path,
                                         tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "out" / "pruned"
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for path in tiny_whisper_dir.iterdir():
        (corrupt / path.name).write_bytes(path.read_bytes())
    (corrupt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00garbage not a header")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text('{"model_type": "bert"}')
    (bert / "model.safetensors").write_bytes(b"")
    cases = [(tmp_path / "missing", "no such model directory"), (corrupt, "cannot load"),
             (bert, "not a Whisper model"), (default_model_dir, "CTranslate2"),
             (tmp_path, "not a transformers model")]  # fmt: skip
    for model_dir, message in cases:
        with pytest.raises(ValueError, match=message) as caught:
            prune_model(model_dir, out, PruneOptions(decoder_layers=1))
        assert str(model_dir) in str(caught.value)
        assert not out.exists() and _siblings(out) == []


def test_existing_out_dir_and_too_many_layers(tiny_whisper_dir: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="exists already"):
        prune_model(tiny_whisper_dir, taken, PruneOptions(decoder_layers=1))
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    out = tmp_path / "new"
    with pytest.raises(ValueError, match="between 1 and 2, not 3"):
        prune_model(tiny_whisper_dir, out, PruneOptions(decoder_layers=3))
    assert _siblings(out) == ["taken"]


def test_a_failed_write_leaves_nothing(tiny_whisper_dir: Path, tmp_path: Path, monkeypatch):
    import optimization.pruning_core as pruning  # where prune_model looks the copier up

    def disk_full(source: Path, target: Path) -> None:
        (target / "tokenizer.json").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pruning, "copy_processor_files", disk_full)
    out = tmp_path / "models" / "pruned"
    with pytest.raises(OSError, match="No space left"):
        prune_model(tiny_whisper_dir, out, TINY_OPTIONS)
    assert _siblings(out) == []


# -- the trade-off report ----------------------------------------------------------------------
@dataclasses.dataclass
class FakeEngine:
    """An engine that answers fixed texts after a fixed delay (seconds)."""

    texts: dict[int, str]
    delay: float
    kind: str = "fake"
    device: str = "cpu"
    compute_type: str = "float32"
    load_seconds: float = 0.0

    def transcribe(self, audio, options=None, progress=None, source="") -> TranscriptionResult:
        time.sleep(self.delay)
        text = self.texts[len(audio)]
        segment = Segment(0.0, 1.0, text, -0.1, 0.0, tokens=(50364, 400, 401, 50414))
        return TranscriptionResult(text, (segment,), "en", 1.0, len(audio) / 16000)


def test_tradeoff_report_from_any_engine(tiny_whisper_dir: Path, pruned_dir: Path) -> None:
    items = [(np.zeros(16000 + i, np.float32), f"say {w} now") for i, w in enumerate("abc")]
    right = {16000 + i: f"say {w} now" for i, w in enumerate("abc")}
    engines = {
        tiny_whisper_dir: FakeEngine(right, 0.04),
        pruned_dir: FakeEngine({**right, 16001: "say b"}, 0.01),
    }
    stages = []
    report = evaluate_tradeoff(
        tiny_whisper_dir, pruned_dir, items, "en", lambda f, s: stages.append((f, s)),
        engine_factory=engines.__getitem__,
    )  # fmt: skip
    assert isinstance(report, TradeoffReport) and report.n == 3
    assert report.source.wer == 0 and report.pruned.wer == pytest.approx(1 / 9)
    assert report.speedup > 1.5 and report.source.rtf > report.pruned.rtf
    assert report.source.tokens == 12 and report.audio_seconds == pytest.approx(3.0, abs=0.01)
    assert report.equal_work_speedup is not None and report.pruned.equal_work_seconds > 0
    assert 0 < report.parameter_ratio < 1 and 0 < report.size_ratio < 1
    assert report.pruned.hypotheses[1] == "say b" and stages[-1] == (1.0, "done")
    assert json.loads(json.dumps(report.to_dict()))["pruned"]["tokens"] == 12
    assert greedy_options("en").beam_size == 1 and greedy_options("en").temperature == (0.0,)


# -- recovery and the command line -------------------------------------------------------------
def test_recover_fine_tunes_the_pruned_model(pruned_dir: Path, tiny_dataset_dir: Path,
                                             tmp_path: Path, workspace) -> None:  # fmt: skip
    steps = []
    merged = recover(
        pruned_dir, tiny_dataset_dir, max_steps=2, out_runs_dir=tmp_path / "runs",
        progress=lambda f, s: steps.append(f), batch_size=2, num_workers=0, forgetting_check=0,
        augment=False, spec_augment=False, generation_max_tokens=8, timestamp_share=0.0,
        prompt_share=0.0,
    )  # fmt: skip
    assert merged.name == "merged" and merged.parent.parent == tmp_path / "runs"
    model = WhisperForConditionalGeneration.from_pretrained(merged)
    assert (model.config.decoder_layers, model.config.decoder_ffn_dim) == (1, 96)
    assert model.generation_config.alignment_heads == [[0, 0]]
    assert steps[-1] == 1.0
    source = WhisperForConditionalGeneration.from_pretrained(pruned_dir)
    assert not torch.equal(model.model.decoder.layers[0].fc1.weight,
                           source.model.decoder.layers[0].fc1.weight)  # fmt: skip
    with pytest.raises(ValueError, match="unknown TrainConfig keys: nonsense"):
        recover(pruned_dir, tiny_dataset_dir, max_steps=2, nonsense=1)


def test_command_line_prints_json_and_refuses_clobbering(
    tiny_whisper_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "cli-pruned"
    args = ["--model", str(tiny_whisper_dir), "--out", str(out), "--ffn-keep", "0.5",
            "--calibration-clips", "2", "--json"]  # fmt: skip
    assert main(args) == 0  # no dataset: ranked on English speech
    printed = json.loads(capsys.readouterr().out)["prune"]
    assert printed["ffn_widths_after"] == {"encoder": 64, "decoder": 64}
    assert printed["decoder_layers_kept"] == [0, 1] and printed["calibration_clips"] == 2
    assert printed["calibration_source"] == "English speech, asterisk prompts (2 recordings)"
    assert main(args) == 1 and "exists already" in capsys.readouterr().err
    assert main(["--model", str(tiny_whisper_dir), "--out", str(tmp_path / "x")]) == 1
    assert "nothing to prune" in capsys.readouterr().err
    no_clips = [*args[:3], str(tmp_path / "y"), "--ffn-keep", "0.5", "--calibration-clips", "0"]
    assert (
        main(no_clips) == 1 and "--calibration-clips must be at least 1" in capsys.readouterr().err
    )
    by_weights = [*args[:3], str(tmp_path / "z"), "--ffn-keep", "0.5", "--ffn-importance",
                  "weights", "--json"]  # fmt: skip
    assert main(by_weights) == 0
    assert json.loads(capsys.readouterr().out)["prune"]["calibration_clips"] == 0


def test_command_line_calibrates_and_evaluates_on_a_dataset(
    tiny_whisper_dir: Path, tiny_dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "cli-evaluated"
    assert main(["--model", str(tiny_whisper_dir), "--out", str(out), "--decoder-layers", "1",
                 "--ffn-keep", "0.5", "--calibration-clips", "1", "--eval-dataset",
                 str(tiny_dataset_dir), "--limit", "1", "--max-new-tokens", "4"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "calibrating on 1 clips" in captured.err and "decoded 1/1" in captured.err
    assert (
        f"pruned model: {out}" in captured.out and "at equal output (1 utterances)" in captured.out
    )
    report = json.loads((out / "pruning.json").read_text())["report"]
    assert report["calibration_clips"] == 1  # the eval dataset's train split, not its test split
    assert report["calibration_source"] == f"{tiny_dataset_dir.name} / train (1 utterances)"
    assert f"FFN neurons ranked on {tiny_dataset_dir.name} / train" in captured.out


# -- the real model ----------------------------------------------------------------------------
@pytest.mark.slow
def test_tradeoff_of_a_pruned_whisper_base(hf_model_dir: Path, tmp_path: Path) -> None:
    """Whisper base on real English prompts, no recovery training: decoder 6 -> 2 layers with
    FFN 2048 -> 1536, and FFN 2048 -> 1536 alone; FFN neurons ranked by activations on other
    prompts. Prints the figures (docs/pruning.md quotes them)."""
    from tests.speech import speech_prompts

    prompts = speech_prompts(14)
    items, calibration = prompts[:6], [path for path, _ in prompts[6:]]
    # Short prompts: a 96-token cap keeps a looping pruned decoder from dominating the run.
    decode = dataclasses.replace(greedy_options("en"), max_new_tokens=96)
    ffn = PruneOptions(ffn_keep=0.75)  # ranked by activations, the default
    reports = {}
    for name, options in (("decoder 2 + FFN 0.75", dataclasses.replace(ffn, decoder_layers=2)),
                          ("FFN 0.75", ffn)):  # fmt: skip
        out = tmp_path / name.replace(" ", "-")
        pruned = prune_model(hf_model_dir, out, options, calibration=calibration)
        assert pruned.ffn_widths_after == {"encoder": 1536, "decoder": 1536}
        reports[name] = report = evaluate_tradeoff(hf_model_dir, out, items, "en", options=decode)
        figures = report.to_dict()
        for model in ("source", "pruned"):
            figures[model]["hypotheses"] = figures[model]["hypotheses"][:2]
        print(name, json.dumps(figures, indent=1))
    both, ffn_only = reports["decoder 2 + FFN 0.75"], reports["FFN 0.75"]
    assert both.source.wer < 0.2 and both.pruned.wer >= 0
    assert both.equal_work_speedup is not None and both.equal_work_speedup > 1.1
    assert both.parameter_ratio < 0.75 and both.size_ratio < 0.75
    assert ffn_only.pruned.wer <= ffn_only.source.wer + 0.15
    assert ffn_only.parameter_ratio < 0.95
