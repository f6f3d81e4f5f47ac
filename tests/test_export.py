"""CTranslate2 export with a complete config, LoRA merging, the parity check and its negative
controls, the registry's flagged status, and bad inputs (issue 6). Exports of the default model
are built once per module."""

from __future__ import annotations

import errno
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from optimization.export import main as export_main
from optimization.heldout_sets import english_heldout
from optimization.parity_runs import Candidate, run_system
from optimization.pipeline import (
    ExportConfig,
    ExportError,
    ExportTarget,
    check_existing,
    export_models,
)
from optimization.sources import SourceError, resolve_source
from utils.registry import default_choice, list_models, model_choices

CHECK_CLIPS = 4
LORA_STD = 0.07  # seeded: 89% token agreement with the base on the check clips, no loops


@pytest.fixture(scope="module")
def int8_export(hf_model_dir, workspace, tmp_path_factory):
    """The default model exported from its transformers form to CTranslate2 int8, checked."""
    out = tmp_path_factory.mktemp("exports") / "base-ct2-int8"
    config = ExportConfig(model=str(hf_model_dir), targets=(ExportTarget("ct2", "int8"),),
                          out=str(out), eval_limit=CHECK_CLIPS)  # fmt: skip
    return export_models(config, workspace)


@pytest.fixture(scope="module")
def lora_adapter(hf_model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter on the default model's decoder whose (seeded, random) weights change a
    few greedy tokens: exporting it without merging is detectably wrong."""
    from peft import LoraConfig, get_peft_model
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(hf_model_dir)
    targets = r"model\.decoder\.layers\.\d+\.(self_attn|encoder_attn)\.(q_proj|v_proj)"
    torch.manual_seed(0)  # lora_A's initialisation draws from the global generator
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets))
    generator = torch.Generator().manual_seed(0)
    for name, weight in peft.named_parameters():
        if "lora_B" in name:
            weight.data.normal_(0, LORA_STD, generator=generator)
    out = tmp_path_factory.mktemp("lora") / "adapter"
    peft.save_pretrained(out)
    return out


def _config(out: Path, quantization: str = "int8", **changes) -> ExportConfig:
    model = changes.pop("model", "whisper-base")
    target = ExportTarget("ct2", quantization)
    return ExportConfig(model, (target,), str(out), eval_limit=CHECK_CLIPS, **changes)


def test_int8_export_is_complete_passes_its_check_and_is_registered(int8_export, hf_model_dir):
    (out,) = int8_export.exports
    config = json.loads((out / "config.json").read_text())
    source = json.loads((hf_model_dir / "generation_config.json").read_text())
    assert len(config["lang_ids"]) == len(source["lang_to_id"]) == 99
    assert config["alignment_heads"] == source["alignment_heads"]  # not 24 default heads
    assert config["suppress_ids"] == source["suppress_tokens"]
    assert config["suppress_ids_begin"] == [220, 50257]
    assert {"tokenizer.json", "preprocessor_config.json", "export.json", "parity.json"} <= {
        p.name for p in out.iterdir()
    }
    row = int8_export.report.rows[1]
    assert row.status == "ok", row.reasons
    assert row.token_agreement == 1.0 and row.language_agreement == 1.0
    assert row.size_bytes < int8_export.report.rows[0].size_bytes / 3
    entry = next(e for e in list_models() if e.name == int8_export.registered[0])
    assert entry.status == "ready" and entry.kind == "ctranslate2"


def test_int8_export_matches_the_original_package_model_on_real_speech(
    int8_export, default_model_dir
):
    from evaluation.scoring import score

    heldout = english_heldout(12)
    original = run_system(Candidate(default_model_dir, "package", "int8", "int8"), heldout)
    exported = run_system(Candidate(int8_export.exports[0], "export", "int8"), heldout)
    refs = list(heldout.references)
    wer_original = score(refs, list(original.hypotheses), "en", bootstrap=0).wer
    wer_export = score(refs, list(exported.hypotheses), "en", bootstrap=0).wer
    assert abs(wer_export - wer_original) <= 0.01, (wer_original, wer_export)


def _hf_greedy_text(model, processor, features) -> str:
    """Greedy text of a transformers Whisper on a log-mel window (n_mels, 3000)."""
    ids = model.generate(torch.from_numpy(features)[None], language="en", task="transcribe",
                         num_beams=1, do_sample=False)  # fmt: skip
    return processor.tokenizer.decode(ids[0], skip_special_tokens=True).strip()


def _window(stock, audio):
    """faster-whisper's own log-mel of a clip's first window, padded to 3000 frames."""
    import numpy as np

    features = stock.feature_extractor(audio)
    window = features[:, : min(3000, features.shape[-1] - 1)]
    return np.pad(window, ((0, 0), (0, 3000 - window.shape[-1])))


def test_lora_export_equals_the_merged_model_in_stock_faster_whisper(
    lora_adapter, workspace, tmp_path
):
    """Both read the same log-mel (the engines' own feature padding differs slightly)."""
    from faster_whisper import WhisperModel
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    config = _config(tmp_path / "lora", "float32", model=str(lora_adapter), check=False)
    result = export_models(replace(config, register=False), workspace)
    merged = resolve_source(lora_adapter, workspace).hf_dir
    model = WhisperForConditionalGeneration.from_pretrained(merged).eval()
    processor = WhisperProcessor.from_pretrained(merged)
    stock = WhisperModel(str(result.exports[0]), device="cpu", compute_type="float32")
    options = dict(language="en", beam_size=1, temperature=0.0, vad_filter=False,
                   without_timestamps=True, condition_on_previous_text=False)  # fmt: skip
    with torch.inference_mode():
        for audio in english_heldout(CHECK_CLIPS).audios:
            segments, _ = stock.transcribe(audio, **options)
            text = "".join(s.text for s in segments).strip()
            assert text == _hf_greedy_text(model, processor, _window(stock, audio))


def test_an_export_without_the_merged_adapter_is_flagged(lora_adapter, int8_export, workspace):
    """Negative control: the base weights exported as if they were the fine-tune."""
    report = check_existing(str(lora_adapter), int8_export.exports[0],
                            _config(Path("unused"), register=False), workspace)  # fmt: skip
    row = report.rows[1]
    assert row.flagged and row.token_agreement < 0.99, row
    assert any("token agreement" in reason for reason in row.reasons)


def test_an_export_with_empty_lang_ids_is_flagged_and_never_a_default(
    int8_export, hf_model_dir, workspace, tmp_path
):
    """Negative control: what CTranslate2's converter writes for an incomplete generation
    config. It is caught, registered as flagged, marked in pickers and never preselected."""
    bad = workspace.exports / "empty-lang-ids"
    shutil.copytree(int8_export.exports[0], bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(config | {"lang_ids": []}))
    report = check_existing(str(hf_model_dir), bad, _config(tmp_path / "unused"), workspace)
    row = report.rows[1]
    assert row.flagged and "lang_ids" in row.reasons[0], row.reasons
    entries = list_models()
    entry = next(e for e in entries if e.name == "empty-lang-ids")
    assert entry.status == "flagged"
    labels = dict((name, label) for label, name in model_choices(entries))
    assert "flagged" in labels["empty-lang-ids"]
    assert default_choice(entries, "empty-lang-ids") == "whisper-base"


def test_the_cli_prints_the_comparison_table_as_json(tiny_whisper_dir, tmp_path, capsys):
    out = tmp_path / "tiny-int8"
    code = export_main(["--model", str(tiny_whisper_dir), "--format", "ct2", "--out", str(out),
                        "--no-check", "--no-register", "--json"])  # fmt: skip
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["exports"] == [str(out)] and printed["parity"] is None
    assert json.loads((out / "export.json").read_text())["quantization"] == "int8"
    assert export_main(["--model", str(tiny_whisper_dir), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_wrong_quantization_for_a_format_is_a_clear_error(tiny_whisper_dir, tmp_path, capsys):
    args = ["--model", str(tiny_whisper_dir), "--format", "onnx", "--quantization", "int8_float16"]
    assert export_main([*args, "--out", str(tmp_path / "x")]) == 2
    assert "onnx quantization 'int8_float16'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def _no_leftovers(parent: Path, name: str) -> None:
    assert not (parent / name).exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{name}-")]


def test_a_full_disk_mid_write_leaves_nothing_behind(tiny_whisper_dir, workspace, tmp_path,
                                                     monkeypatch):  # fmt: skip
    from ctranslate2.specs import model_spec

    def fill_up(self, output_dir):
        (Path(output_dir) / "model.bin").write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model_spec.ModelSpec, "save", fill_up)
    config = _config(tmp_path / "full", model=str(tiny_whisper_dir), check=False)
    with pytest.raises(ExportError, match=r"disk filled up.*nothing was kept"):
        export_models(config, workspace)
    _no_leftovers(tmp_path, "full")
    assert "full" not in {e.name for e in list_models()}


def test_a_missing_tokenizer_is_named(tiny_whisper_dir, workspace, tmp_path):
    broken = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_whisper_dir, broken)
    for name in ("tokenizer.json", "vocab.json"):
        (broken / name).unlink(missing_ok=True)
    with pytest.raises(SourceError, match="no tokenizer"):
        export_models(_config(tmp_path / "out", model=str(broken), check=False), workspace)
    _no_leftovers(tmp_path, "out")


def test_corrupt_weights_are_a_clear_error(tiny_whisper_dir, workspace, tmp_path):
    broken = tmp_path / "corrupt"
    shutil.copytree(tiny_whisper_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(SourceError, match="corrupt or unreadable weights"):
        export_models(_config(tmp_path / "out", model=str(broken), check=False), workspace)
    _no_leftovers(tmp_path, "out")


def test_a_corrupt_checkpoint_is_a_clear_error(tiny_whisper_dir, workspace, tmp_path):
    from utils.training.config import TrainConfig

    run = workspace.runs / "broken-run"
    (run / "checkpoints").mkdir(parents=True)
    config = TrainConfig(model=str(tiny_whisper_dir), dataset="x")
    config.save(run / "config.json")
    (run / "events.jsonl").write_text("")
    (run / "checkpoints" / "best.ckpt").write_bytes(b"\x80garbage")
    with pytest.raises(SourceError, match="not a readable Lightning checkpoint"):
        export_models(_config(tmp_path / "out", model=str(run), check=False), workspace)
    _no_leftovers(tmp_path, "out")
