"""ONNX export (encoder + KV-cache decoder), int8/fp16 conversion, the onnxruntime engine on real
speech (token and word-timing parity with the transformers engine), its refusals, and TensorRT's
CPU-side parts. The default model is exported once per session (conftest: onnx_base_dir,
onnx_base_int8_dir)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch

from evaluation.scoring import score
from optimization.onnx_export import (
    ALIGNMENT_OUTPUT,
    DECODER_FILE,
    DECODER_OUTPUTS,
    ENCODER_FILE,
    FORMAT_VERSION,
    DecoderForOnnx,
    EncoderForOnnx,
    OnnxConfig,
    export_onnx,
    load_whisper,
    quantize_onnx_dir,
)
from tests.speech import prompt_path, speech_prompts
from utils.audio import SAMPLE_RATE, load_audio
from utils.transcription.options import DecodeOptions, OptionNotSupportedError

AGENT = prompt_path("agent-alreadyon")
AGENT_TEXT = (
    "That agent is already logged on. Please enter your agent number followed by the pound key."
)
GREEDY = DecodeOptions(beam_size=1, temperature=(0.0,), language="en", word_timestamps=False)
TIMED = dataclasses.replace(GREEDY, word_timestamps=True)


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def tokens(result) -> list[int]:
    return [t for segment in result.segments for t in segment.tokens]


@pytest.fixture(scope="module")
def prompts():
    """Six real prompts of 3-8 s (68 words): one window each, so six encoder passes."""
    chosen = speech_prompts(6, min_seconds=3.0, max_seconds=8.0)
    assert len(chosen) == 6
    return chosen


@pytest.fixture(scope="module")
def onnx_engine(onnx_base_dir):
    """The fp32 export through load_engine (kind "onnx" from its *.onnx files), one thread:
    test machines are small and shared."""
    from utils.transcription.engine import load_engine
    from utils.transcription.onnx_engine import THREADS_ENV

    before = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = "1"
    try:
        return load_engine(str(onnx_base_dir), device="cpu")
    finally:
        if before is None:
            del os.environ[THREADS_ENV]
        else:
            os.environ[THREADS_ENV] = before


@pytest.fixture(scope="module")
def fp32_results(onnx_engine, prompts):
    return [onnx_engine.transcribe(path, GREEDY) for path, _ in prompts]


# -- (a) the wrappers and graphs compute what the HF model computes ------------------------------
def test_wrappers_match_the_hf_model_with_and_without_cache(tiny_whisper_dir):
    model = load_whisper(tiny_whisper_dir)
    model.set_attn_implementation("eager")  # the reference's cross_attentions need eager
    c, generator = model.config, torch.Generator().manual_seed(1)
    features = torch.randn(1, c.num_mel_bins, 3000, generator=generator)
    ids = torch.tensor([[50258, 50259, 50359, 50364, 440, 1002]])
    layers, d = c.decoder_layers, c.d_model
    empty = torch.zeros(layers, 1, 0, d)
    decoder = DecoderForOnnx(model)
    with torch.no_grad():
        expected = model(input_features=features, decoder_input_ids=ids, output_attentions=True)
        states = model.model.encoder(features).last_hidden_state
        cross_k, cross_v = EncoderForOnnx(model)(features)
        full, self_k, self_v, alignment = decoder(ids, empty, empty, cross_k, cross_v)
        first, k, v, _ = decoder(ids[:, :4], empty, empty, cross_k, cross_v)
        second, k, v, cached = decoder(ids[:, 4:], k, v, cross_k, cross_v)
        three = ids.repeat(3, 1), torch.zeros(layers, 3, 0, d)
        shared = decoder(*three, three[1], cross_k, cross_v)
        repeated = decoder(*three, three[1], cross_k.repeat(1, 3, 1, 1), cross_v.repeat(1, 3, 1, 1))
    projected = model.model.decoder.layers[1].encoder_attn.k_proj(states)
    assert cross_k.shape == (layers, 1, 1500, d) and torch.allclose(
        cross_k[1], projected, atol=1e-5
    )
    assert full.shape == expected.logits.shape
    assert torch.allclose(full, expected.logits, atol=1e-4)
    assert torch.allclose(torch.cat([first, second], dim=1), full, atol=1e-5)  # 2 cached steps
    assert torch.allclose(k, self_k, atol=1e-6) and self_v.shape == (layers, 1, 6, d)
    assert torch.allclose(shared[0], repeated[0][0], atol=1e-5)  # audio_batch 1 serves 3 rows
    # alignment_weights: the HF cross-attention of the alignment heads (conftest: [[1, 0]])
    reference = expected.cross_attentions[1][:, [0]]  # (1, 1 head, 6, 1500)
    assert decoder.keep == [[], [0]] and alignment.shape == (1, 1, 6, 1500)
    assert torch.allclose(alignment, reference, atol=1e-6)
    assert torch.allclose(alignment.sum(-1), torch.ones(1, 1, 6), atol=1e-5)  # probabilities
    assert torch.allclose(cached, alignment[:, :, 4:], atol=1e-6)  # rows of the cached pass
    assert torch.allclose(shared[3], repeated[3], atol=1e-6) and shared[3].shape[0] == 3


def test_onnx_graphs_match_hf_logits_with_and_without_cache(onnx_engine, hf_engine):
    features = hf_engine.feature_extractor(load_audio(AGENT), sampling_rate=SAMPLE_RATE)
    mel = np.asarray(features.input_features, dtype=np.float32)  # (1, 80, 3000)
    tok = hf_engine.tokenizer(GREEDY)
    ids = np.array([[*tok.sot_sequence, tok.timestamp_begin, *tok.encode(" That agent")]])
    with torch.no_grad():  # the engine's decoder runs eager attention: cross_attentions come
        expected = hf_engine.model(torch.from_numpy(mel), decoder_input_ids=torch.from_numpy(ids),
                                   output_attentions=True)  # fmt: skip
    cross_k, cross_v = onnx_engine.encoder.run(None, {"input_features": mel})
    c = onnx_engine.config
    empty = np.zeros((c.n_layers, 1, 0, c.d_model), dtype=np.float32)

    def run(part, k, v):
        feeds = dict(input_ids=part, self_k=k, self_v=v, cross_k=cross_k, cross_v=cross_v)
        return onnx_engine.decoder.run([*DECODER_OUTPUTS, ALIGNMENT_OUTPUT], feeds)

    full, _, _, alignment = run(ids, empty, empty)
    first, k, v, _ = run(ids[:, :4], empty, empty)
    second, k, _, _ = run(ids[:, 4:], k, v)
    reference = expected.logits.numpy()
    assert np.abs(full - reference).max() < 1e-2 * np.abs(reference).max()
    assert np.abs(np.concatenate([first, second], axis=1) - full).max() < 1e-3
    assert k.shape == (c.n_layers, 1, ids.shape[1], c.d_model)
    heads = [expected.cross_attentions[layer][0, head] for layer, head in c.alignment_heads]
    assert alignment.shape == (1, 8, ids.shape[1], 1500)  # base: 8 alignment heads
    assert np.abs(alignment[0] - torch.stack(heads).numpy()).max() < 1e-4


# -- (b) the engine on real speech -------------------------------------------------------------
def test_load_engine_gives_the_onnx_engine_and_the_export_layout(onnx_engine, onnx_base_dir):
    from utils.model_store import resolve_model

    assert resolve_model(str(onnx_base_dir)).kind == "onnx"
    assert onnx_engine.kind == "onnx" and onnx_engine.compute_type == "float32"  # "int8" asked
    assert onnx_engine.load_seconds > 0
    config = json.loads((onnx_base_dir / "onnx_config.json").read_text(encoding="utf-8"))
    assert config["precision"] == "fp32" and config["n_layers"] == 6 and config["d_model"] == 512
    assert config["format_version"] == FORMAT_VERSION == 2 and len(config["alignment_heads"]) == 8
    assert config["vocab_size"] == 51865 and "dynamo=True" in config["exporter"]
    for name in (ENCODER_FILE, DECODER_FILE, "tokenizer.json", "generation_config.json"):
        assert (onnx_base_dir / name).is_file()
    inputs = {i.name: i.shape for i in onnx_engine.decoder.get_inputs()}
    assert inputs["input_ids"] == ["batch", "n_new"] and inputs["self_k"][2] == "n_past"
    outputs = {o.name: o.shape for o in onnx_engine.decoder.get_outputs()}
    assert outputs[ALIGNMENT_OUTPUT] == ["batch", 8, "n_new", 1500] and onnx_engine.times_words


def test_greedy_tokens_equal_the_transformers_engine(onnx_engine, hf_engine, prompts, fp32_results):
    for (path, _), ours in zip(prompts[:4], fp32_results, strict=False):
        theirs = hf_engine.transcribe(path, GREEDY)
        assert tokens(ours) == tokens(theirs), (path, ours.text, theirs.text)
        assert [s.start for s in ours.segments] == [s.start for s in theirs.segments]
        assert ours.segments[0].avg_logprob == pytest.approx(theirs.segments[0].avg_logprob, 1e-3)


def test_word_timestamps_equal_the_transformers_engine(onnx_engine, hf_engine):
    ours, theirs = onnx_engine.transcribe(AGENT, TIMED), hf_engine.transcribe(AGENT, TIMED)
    assert [w.word for w in ours.words] == [w.word for w in theirs.words]
    assert words("".join(w.word for w in ours.words)) == words(AGENT_TEXT)
    for mine, reference in zip(ours.words, theirs.words, strict=True):
        assert mine.start == pytest.approx(reference.start, abs=0.1), mine
        assert mine.end == pytest.approx(reference.end, abs=0.1), mine
        assert mine.probability == pytest.approx(reference.probability, abs=0.02), mine
    edges = [t for s in theirs.segments for t in (s.start, s.end)]
    assert [t for s in ours.segments for t in (s.start, s.end)] == pytest.approx(edges, abs=0.1)


def test_int8_wer_stays_within_two_points_of_fp32_and_times_words(
    onnx_base_int8_dir, prompts, fp32_results
):
    from utils.transcription.onnx_engine import OnnxEngine

    int8 = OnnxEngine(onnx_base_int8_dir, cpu_threads=1)
    assert int8.compute_type == "int8" and int8.times_words
    references = [text for _, text in prompts]
    results = [int8.transcribe(path, TIMED) for path, _ in prompts]  # words: same text
    fp32 = score(references, [r.text for r in fp32_results], "en", bootstrap=0).wer
    quantized = score(references, [r.text for r in results], "en", bootstrap=0).wer
    print(f"WER fp32 {fp32:.2%}, int8 {quantized:.2%}")
    assert fp32 < 0.10 and quantized <= fp32 + 0.02
    for result in results:
        timed = result.words
        assert words("".join(w.word for w in timed)) == words(result.text)
        assert all(a.start <= a.end <= b.start + 1e-6 for a, b in itertools.pairwise(timed))
        assert timed[0].start >= 0 and timed[-1].end <= result.duration + 0.02


def test_the_transcribe_tab_path_beam_search_sampling_and_language_detection(onnx_base_dir):
    """inference_utils.transcribe_files with the default DecodeOptions (beam 5, language
    detected, VAD, word timestamps on), as the Transcribe tab calls it; then sampling."""
    from inference_utils import transcribe_files
    from utils.transcription.engine import load_engine

    engine = load_engine(str(onnx_base_dir), device="cpu")  # the onnx_engine fixture's, cached
    [result] = transcribe_files([str(AGENT)], model=str(onnx_base_dir))
    assert not isinstance(result, Exception), result
    assert result.language == "en" and result.language_probability > 0.5  # detected
    assert words(result.text) == words(AGENT_TEXT)
    assert words("".join(w.word for w in result.words)) == words(AGENT_TEXT)
    assert all(-1 < s.avg_logprob < 0 and s.temperature == 0 for s in result.segments)
    torch.manual_seed(0)
    sampled = engine.transcribe(
        AGENT, dataclasses.replace(GREEDY, temperature=(0.3,), best_of=2, max_new_tokens=8)
    )
    assert {s.temperature for s in sampled.segments} == {0.3}
    assert all(len(s.tokens) <= 8 for s in sampled.segments) and "agent" in words(sampled.text)


def test_unsupported_options_are_refused_by_name(onnx_engine):
    with pytest.raises(OptionNotSupportedError, match="patience is not supported by the ONNX"):
        onnx_engine.transcribe(AGENT, DecodeOptions(patience=2.0))


# -- (c) clear errors ----------------------------------------------------------------------------
def test_a_format_1_export_decodes_but_asks_for_a_re_export_to_time_words(onnx_base_dir, tmp_path):
    """A decoder without alignment_weights (what format 1 exported) and its config."""
    import onnx

    from utils.transcription.onnx_engine import OnnxEngine

    for item in onnx_base_dir.iterdir():
        if item.name not in (DECODER_FILE, "onnx_config.json"):
            (tmp_path / item.name).symlink_to(item)
    graph = onnx.load(str(onnx_base_dir / DECODER_FILE))
    kept = [o for o in graph.graph.output if o.name != ALIGNMENT_OUTPUT]
    del graph.graph.output[:]
    graph.graph.output.extend(kept)
    onnx.save(graph, str(tmp_path / DECODER_FILE))
    config = dataclasses.replace(OnnxConfig.read(onnx_base_dir), format_version=1)
    config_json = {k: v for k, v in dataclasses.asdict(config).items() if k != "alignment_heads"}
    (tmp_path / "onnx_config.json").write_text(json.dumps(config_json), encoding="utf-8")
    old = OnnxEngine(tmp_path, cpu_threads=1)
    assert not old.times_words and old.config.alignment_heads is None
    message = r"word_timestamps is not supported .*format 1 .*re-export this model to get word"
    with pytest.raises(OptionNotSupportedError, match=message):
        old.transcribe(AGENT)  # the default options time words
    short = dataclasses.replace(GREEDY, max_new_tokens=3)
    assert words(old.transcribe(AGENT, short).text) == ["that", "agent"]


def test_a_corrupt_or_incomplete_export_is_a_clear_error(onnx_base_dir, tmp_path):
    from utils.transcription.onnx_engine import OnnxEngine

    for item in onnx_base_dir.iterdir():
        if item.name != DECODER_FILE:
            (tmp_path / item.name).symlink_to(item)
    (tmp_path / DECODER_FILE).write_bytes(b"not a protobuf" * 100)
    with pytest.raises(ValueError, match=r"decoder\.onnx: not a loadable ONNX model.*again"):
        OnnxEngine(tmp_path)
    (tmp_path / DECODER_FILE).unlink()
    with pytest.raises(ValueError, match=r"decoder\.onnx: missing"):
        OnnxEngine(tmp_path)
    (tmp_path / "onnx_config.json").unlink()
    with pytest.raises(ValueError, match=r"onnx_config\.json: not a readable ONNX export config"):
        OnnxEngine(tmp_path)


def test_cuda_without_the_cuda_provider_is_a_clear_error(onnx_base_dir):
    from utils.transcription.onnx_engine import OnnxEngine

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(RuntimeError, match=r"no CUDAExecutionProvider.*onnxruntime-gpu"):
        OnnxEngine(onnx_base_dir, device="cuda")


def test_export_refuses_a_used_directory_and_a_broken_model(hf_model_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "left-over.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        export_onnx(hf_model_dir, out)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no such model directory"):
        export_onnx(tmp_path / "missing", empty)
    broken = tmp_path / "broken"
    shutil.copytree(hf_model_dir, broken, ignore=shutil.ignore_patterns("*.safetensors"))
    (broken / "model.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match=f"{broken}: cannot load the Whisper model"):
        export_onnx(broken, empty)
    (broken / "generation_config.json").unlink()
    with pytest.raises(ValueError, match=r"missing generation_config\.json"):
        export_onnx(broken, empty)
    with pytest.raises(ValueError, match="precision must be one of"):
        export_onnx(hf_model_dir, empty, precision="int4")
    assert not any(empty.iterdir())


def test_quantize_needs_an_fp32_export(onnx_base_dir, tmp_path):
    config = OnnxConfig.read(onnx_base_dir)
    (tmp_path / "int8").mkdir()
    dataclasses.replace(config, precision="int8").write(tmp_path / "int8")
    with pytest.raises(ValueError, match="a int8 export; convert from an fp32 one"):
        quantize_onnx_dir(tmp_path / "int8", tmp_path)


# -- (d) TensorRT, CPU side ----------------------------------------------------------------------
def test_tensorrt_unavailable_message_and_profile_shapes(onnx_base_dir):
    from optimization.tensorrt import (
        build_tensorrt_engines,
        tensorrt_available,
        tensorrt_providers,
    )

    providers = tensorrt_providers(onnx_base_dir, rows=3)
    name, options = providers[DECODER_FILE][0]
    assert name == "TensorrtExecutionProvider" and options["trt_engine_cache_enable"]
    assert options["trt_engine_cache_path"] == str(onnx_base_dir / "tensorrt_cache")
    assert options["trt_profile_min_shapes"].startswith("input_ids:1x1,self_k:6x1x0x512,")
    assert "self_k:6x3x447x512" in options["trt_profile_max_shapes"]
    assert "cross_k:6x1x1500x512" in options["trt_profile_opt_shapes"]
    encoder = providers[ENCODER_FILE][0][1]
    assert encoder["trt_profile_max_shapes"] == "input_features:3x80x3000"
    assert providers[ENCODER_FILE][1:] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if tensorrt_available():
        pytest.skip("TensorRT is available here: the message is not raised")
    message = "TensorRT needs a CUDA GPU and onnxruntime-gpu built with TensorRT; this machine's"
    with pytest.raises(RuntimeError, match=f"{message} onnxruntime offers: .*CPUExecutionProvider"):
        build_tensorrt_engines(onnx_base_dir)


# -- (e) heavier checks, run by hand ------------------------------------------------------------
@pytest.mark.slow
def test_fp16_export_loads_and_transcribes_on_cpu(onnx_base_dir, onnx_engine, tmp_path, prompts):
    from utils.transcription.onnx_engine import OnnxEngine

    info = quantize_onnx_dir(onnx_base_dir, tmp_path, "fp16")
    assert info.precision == "fp16" and info.onnx_bytes < 0.6 * _onnx_bytes(onnx_base_dir)
    fp16 = OnnxEngine(tmp_path)
    assert fp16.compute_type == "float16" and fp16.times_words
    timed = fp16.transcribe(AGENT, TIMED).words  # alignment_weights kept float32 at the output
    assert words("".join(w.word for w in timed)) == words(AGENT_TEXT)
    for path, _ in prompts[:3]:
        assert words(fp16.transcribe(path, GREEDY).text) == words(
            onnx_engine.transcribe(path, GREEDY).text
        )


@pytest.mark.slow
def test_int8_export_in_one_call_reports_progress(tiny_whisper_dir, tmp_path):
    reports: list[tuple[str, float]] = []
    info = export_onnx(
        tiny_whisper_dir, tmp_path, precision="int8", progress=lambda *r: reports.append(r)
    )
    fractions = [fraction for _, fraction in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(reports) >= 5
    assert info.verified_difference is not None and info.verified_difference < 1e-3
    assert info.config.precision == "int8" and info.config.quantization["weight_type"] == "QInt8"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == []  # no staging left
    assert {ENCODER_FILE, DECODER_FILE} <= {name for name, _ in info.files}


def _onnx_bytes(folder) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.onnx*"))
