"""CTranslate2 <-> transformers conversion of Whisper: reader, converter, round trips."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from utils.ct2_convert import (
    Ct2Model,
    ct2_to_transformers,
    ensure_transformers_model,
    read_ct2_model,
    whisper_state_dict,
)

SPEECH = Path("/usr/share/asterisk/sounds/en/hello-world.wav")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tiny_model_bin(path: Path, quantization: str | None) -> Path:
    """A small model.bin written by CTranslate2's own serializer: every dtype, an alias."""
    from ctranslate2.specs import common_spec, model_spec

    class TinySpec(model_spec.ModelSpec):
        def __init__(self) -> None:
            super().__init__()
            self.f32 = np.arange(6, dtype=np.float32).reshape(2, 3)
            self.same_as_f32 = np.arange(6, dtype=np.float32).reshape(2, 3)
            self.flag = True
            self.heads = np.dtype("int16").type(8)
            self.i32 = np.array([1, -2, 3], dtype=np.int32)
            self.f16 = np.array([0.5, -1.5], dtype=np.float16)
            self.bf16 = torch.tensor([[1.0, 2.5], [-3.0, 0.125]], dtype=torch.bfloat16)
            self.lin = common_spec.LinearSpec()
            self.lin.weight = np.array([[1.0, -2.0, 0.5], [0.1, 0.2, -0.4]], dtype=np.float32)

        @property
        def name(self) -> str:
            return "TinySpec"

        @property
        def revision(self) -> int:
            return 7

    spec = TinySpec()
    spec.validate()
    spec.optimize(quantization)
    spec._serialize(str(path))
    return path


@pytest.fixture(scope="module")
def original(default_model_dir: Path) -> Ct2Model:
    return read_ct2_model(default_model_dir)


@pytest.fixture(scope="module")
def float16_back(hf_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ctranslate2.converters import TransformersConverter

    out = tmp_path_factory.mktemp("ct2") / "float16"
    return Path(TransformersConverter(str(hf_model_dir)).convert(str(out), quantization="float16"))


def test_reader_reads_every_dtype_and_alias(tmp_path: Path) -> None:
    model = read_ct2_model(_tiny_model_bin(tmp_path / "model.bin", None))
    assert (model.version, model.spec_name, model.spec_revision) == (6, "TinySpec", 7)
    assert model.aliases in ({"f32": "same_as_f32"}, {"same_as_f32": "f32"})
    v = model.variables
    assert v["f32"] is v["same_as_f32"]
    assert v["f32"].tolist() == [[0, 1, 2], [3, 4, 5]] and v["f32"].dtype == torch.float32
    assert v["flag"].dtype == torch.int8 and int(v["flag"]) == 1 and v["flag"].dim() == 0
    assert v["heads"].dtype == torch.int16 and int(v["heads"]) == 8
    assert v["i32"].tolist() == [1, -2, 3] and v["i32"].dtype == torch.int32
    assert v["f16"].tolist() == [0.5, -1.5] and v["f16"].dtype == torch.float16
    assert v["bf16"].dtype == torch.bfloat16 and v["bf16"].tolist() == [[1.0, 2.5], [-3.0, 0.125]]
    assert not model.scales


@pytest.mark.parametrize("quantization", ["int8", "int16"])
def test_reader_dequantizes_as_q_over_scale(tmp_path: Path, quantization: str) -> None:
    model = read_ct2_model(_tiny_model_bin(tmp_path / "model.bin", quantization))
    weight = torch.tensor([[1.0, -2.0, 0.5], [0.1, 0.2, -0.4]])
    assert model.stored_dtypes["lin/weight"] == getattr(torch, quantization)
    assert "lin/weight_scale" not in model.variables
    scale = model.scales["lin/weight"]
    assert scale.shape == ((2,) if quantization == "int8" else ())
    bound = 0.5 / scale.reshape(-1, 1) if scale.dim() else 0.5 / scale
    assert ((model.variables["lin/weight"] - weight).abs() <= bound * (1 + 1e-5)).all()


def test_reader_rejects_truncated_trailing_and_unknown_version(tmp_path: Path) -> None:
    data = _tiny_model_bin(tmp_path / "model.bin", "int8").read_bytes()
    broken = tmp_path / "broken.bin"
    for cut in range(len(data)):
        broken.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"truncated|corrupt"):
            read_ct2_model(broken)
    broken.write_bytes(data + b"\0")
    with pytest.raises(ValueError, match="unexpected bytes after offset"):
        read_ct2_model(broken)
    broken.write_bytes((5).to_bytes(4, "little") + data[4:])
    with pytest.raises(ValueError, match="version 5 is not supported"):
        read_ct2_model(broken)


def test_reader_rejects_truncated_real_model(default_model_dir: Path, tmp_path: Path) -> None:
    with (default_model_dir / "model.bin").open("rb") as handle:
        (tmp_path / "model.bin").write_bytes(handle.read(5_000_000))
    with pytest.raises(ValueError, match=r"truncated model\.bin: variable '.+' needs \d+ bytes"):
        read_ct2_model(tmp_path)


def test_reader_parses_default_model(original: Ct2Model, default_model_dir: Path) -> None:
    assert (original.version, original.spec_name, original.spec_revision) == (6, "WhisperSpec", 3)
    assert original.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    v = original.variables
    assert len(v) == 215  # 214 stored + 1 alias
    assert v["decoder/projection/weight"] is v["decoder/embeddings/weight"]
    assert tuple(v["decoder/embeddings/weight"].shape) == (51865, 512)
    assert v["decoder/embeddings/weight"].dtype == torch.float16
    assert int(v["encoder/num_heads"]) == int(v["decoder/num_heads"]) == 8


def test_converted_model_loads_strict(hf_model_dir: Path, original: Ct2Model) -> None:
    from safetensors.torch import load_file
    from transformers import WhisperForConditionalGeneration

    model, info = WhisperForConditionalGeneration.from_pretrained(
        hf_model_dir, output_loading_info=True
    )
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    c = model.config
    assert (c.encoder_layers, c.decoder_layers, c.d_model, c.encoder_attention_heads) == (
        6,
        6,
        512,
        8,
    )
    assert (c.vocab_size, c.num_mel_bins, c.decoder_start_token_id) == (51865, 80, 50258)
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    expected = whisper_state_dict(original)
    model.load_state_dict(expected, strict=True)
    saved = load_file(hf_model_dir / "model.safetensors")
    emb = original.variables["decoder/embeddings/weight"].float()
    assert torch.equal(saved["model.decoder.embed_tokens.weight"], emb)
    _, k, _ = original.variables["encoder/layer_2/self_attention/linear_0/weight"].float().chunk(3)
    assert torch.equal(saved["model.encoder.layers.2.self_attn.k_proj.weight"], k)


def test_tokenizer_special_tokens_and_timestamps(hf_model_dir: Path) -> None:
    from transformers import WhisperTokenizerFast

    tok = WhisperTokenizerFast.from_pretrained(hf_model_dir)
    added = json.loads((hf_model_dir / "tokenizer.json").read_text())["added_tokens"]
    special = {t["content"] for t in added if t["special"]}
    assert len(special) == 107 and special <= set(tok.all_special_tokens)
    assert (tok.pad_token, tok.pad_token_id) == ("<|endoftext|>", 50257)
    assert tok.all_special_ids[-1] == tok.convert_tokens_to_ids("<|notimestamps|>") == 50363
    one, two = tok.convert_tokens_to_ids(["<|1.00|>", "<|2.00|>"])
    assert (one, two) == (50414, 50464)
    ids = [50258, 50259, 50359, one, *tok.encode(" hello world", add_special_tokens=False), two]
    text = tok.decode(ids, decode_with_timestamps=True)
    assert text == "<|startoftranscript|><|en|><|transcribe|><|1.00|> hello world<|2.00|>"
    offsets = tok.decode(ids, output_offsets=True)["offsets"]
    assert [(o["text"], o["timestamp"]) for o in offsets] == [(" hello world", (1.0, 2.0))]
    assert tok.decode(ids, skip_special_tokens=True) == " hello world"


def test_generation_config(hf_model_dir: Path, default_model_dir: Path) -> None:
    from transformers import GenerationConfig

    gen = GenerationConfig.from_pretrained(hf_model_dir)
    ct2 = json.loads((default_model_dir / "config.json").read_text())
    assert sorted(gen.lang_to_id.values()) == ct2["lang_ids"] and gen.lang_to_id["<|am|>"] == 50334
    assert gen.task_to_id == {"translate": 50358, "transcribe": 50359}
    assert gen.alignment_heads == ct2["alignment_heads"]
    assert gen.suppress_tokens == ct2["suppress_ids"]
    assert gen.begin_suppress_tokens == ct2["suppress_ids_begin"]
    assert (gen.decoder_start_token_id, gen.no_timestamps_token_id) == (50258, 50363)
    assert gen.is_multilingual and gen.max_length == 448


def test_float16_round_trip_is_identical(
    float16_back: Path, default_model_dir: Path, original: Ct2Model
) -> None:
    back = read_ct2_model(float16_back)
    assert back.variables.keys() == original.variables.keys()
    assert back.aliases == original.aliases
    for name, tensor in original.variables.items():
        assert back.stored_dtypes[name] == original.stored_dtypes[name], name
        assert torch.equal(back.variables[name], tensor), name
    ours = json.loads((float16_back / "config.json").read_text())
    theirs = json.loads((default_model_dir / "config.json").read_text())
    assert ours["lang_ids"] == theirs["lang_ids"]
    assert ours["alignment_heads"] == theirs["alignment_heads"]
    assert ours == theirs
    assert _sha256(float16_back / "model.bin") == _sha256(default_model_dir / "model.bin")


def test_int8_round_trip_within_quantization_bound(
    hf_model_dir: Path, original: Ct2Model, tmp_path: Path
) -> None:
    from ctranslate2.converters import TransformersConverter
    from safetensors.torch import load_file

    copy = ["tokenizer.json", "preprocessor_config.json"]
    int8_dir = Path(
        TransformersConverter(str(hf_model_dir), copy_files=copy).convert(
            str(tmp_path / "int8"), quantization="int8"
        )
    )
    quantized = read_ct2_model(int8_dir)
    assert len(quantized.scales) == 6 * 4 + 6 * 7 + 3  # linears, conv1/2, embeddings
    assert {quantized.stored_dtypes[name] for name in quantized.scales} == {torch.int8}
    # Per element: |w - q / scale| <= 0.5 / scale (+ float32 rounding); exact where unquantized.
    bounds = {}
    for name, tensor in original.variables.items():
        scale = quantized.scales.get(quantized.aliases.get(name, name))
        if scale is None:
            bounds[name] = torch.zeros(tensor.shape)
        else:
            row = (0.5 + 1e-4) / scale.reshape(-1, *[1] * (tensor.dim() - 1))
            bounds[name] = row.expand(tensor.shape)
    for name, tensor in original.variables.items():
        diff = (quantized.variables[name].float() - tensor.float()).abs()
        assert (diff <= bounds[name]).all(), name
    hf_int8 = ct2_to_transformers(int8_dir, tmp_path / "int8-hf")
    got = load_file(hf_int8 / "model.safetensors")
    want = load_file(hf_model_dir / "model.safetensors")
    bound = whisper_state_dict(dataclasses.replace(original, variables=bounds))
    assert got.keys() == want.keys()
    for key, tensor in want.items():
        assert ((got[key] - tensor).abs() <= bound[key]).all(), key
    fc1 = "model.encoder.layers.0.fc1.weight"
    assert (got[fc1] - want[fc1]).abs().max() > 0  # really quantized, not copied


def test_same_greedy_tokens_as_ctranslate2(hf_model_dir: Path, default_model_dir: Path) -> None:
    import ctranslate2
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from utils.audio import load_audio

    processor = WhisperProcessor.from_pretrained(hf_model_dir)
    features = processor(
        load_audio(SPEECH), sampling_rate=16000, return_tensors="pt"
    ).input_features
    model = WhisperForConditionalGeneration.from_pretrained(hf_model_dir).eval()
    with torch.inference_mode():
        hf = model.generate(features, language="en", task="transcribe", num_beams=1)
    hf_tokens = [t for t in hf[0].tolist() if t < 50257]
    ct2 = ctranslate2.models.Whisper(str(default_model_dir), compute_type="float32")
    prompt = [[50258, 50259, 50359, 50363]]
    result = ct2.generate(ctranslate2.StorageView.from_array(features.numpy()), prompt, beam_size=1)
    assert hf_tokens == result[0].sequences_ids[0]
    assert "hello world" in processor.decode(hf_tokens).lower()


def test_ensure_is_idempotent_and_refuses_to_clobber(
    hf_model_dir: Path, default_model_dir: Path, workspace
) -> None:
    assert hf_model_dir == workspace.models / "whisper-base-hf"
    stamp = (hf_model_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_transformers_model(default_model_dir, workspace.models) == hf_model_dir
    assert (hf_model_dir / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError):
        ct2_to_transformers(default_model_dir, hf_model_dir)


def test_concurrent_winner_is_kept_and_leftover_replaced(
    hf_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import utils.ct2_convert as ct2_convert

    out = tmp_path / "models" / "m-hf"

    def fake_write(ct2_dir: Path, staging: Path, dtype: torch.dtype) -> None:
        (staging / "mine").write_text("x")
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            (staging / name).write_text("{}")
        if state["winner"]:  # another caller renames its finished directory into place meanwhile
            shutil.copytree(staging, out)
            (out / "theirs").write_text("x")
            (out / "mine").unlink()
        else:  # a crashed caller left a partial directory
            out.mkdir(parents=True, exist_ok=True)
            (out / "partial").write_text("x")

    monkeypatch.setattr(ct2_convert, "_write_transformers", fake_write)
    state = {}
    for winner, kept in ((True, "theirs"), (False, "mine")):
        state["winner"] = winner
        shutil.rmtree(out, ignore_errors=True)
        assert ct2_to_transformers(hf_model_dir, out) == out
        assert (out / kept).exists()
        assert [p.name for p in out.parent.iterdir()] == ["m-hf"]  # no staging left behind


def test_state_dict_refuses_unknown_tensors_and_other_specs(original: Ct2Model) -> None:
    extra = {**original.variables, "decoder/projection/bias": torch.zeros(51865)}
    with pytest.raises(ValueError, match=r"no Whisper counterpart.*decoder/projection/bias"):
        whisper_state_dict(dataclasses.replace(original, variables=extra))
    with pytest.raises(ValueError, match="not a Whisper model"):
        whisper_state_dict(dataclasses.replace(original, spec_name="TransformerSpec"))
