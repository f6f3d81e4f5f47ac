"""The Ge'ez base model (issue 8): built from the default model and registered with its
provenance, English and Spanish transcripts unchanged before fine-tuning, the report CLI, the
new rows trained with LoRA, the model's own token rate, and a checked export."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from utils.geez_vocab.tokenizer_edit import Swap, edit_ct2_vocabulary, restore_tokenizer

SPEECH = {"en": Path("/usr/share/asterisk/sounds/en"), "es": Path("/usr/share/asterisk/sounds/es")}
PROMPTS = ("conf-onlyperson", "conf-getpin")  # the base model detects both languages right
EMBEDDING = "model.decoder.embed_tokens.weight"


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _swaps(model_dir: Path) -> tuple[Swap, ...]:
    return tuple(Swap.from_dict(item) for item in _json(model_dir / "geez_vocab.json")["given_up"])


def test_the_build_writes_both_models_registered_with_their_provenance(
    geez_model, geez_workspace, default_model_dir, hf_model_dir
):
    from utils.geez_vocab.build import build_geez_model
    from utils.geez_vocab.corpus import reference_corpus
    from utils.registry import list_models

    names = {entry.name: entry for entry in list_models(geez_workspace)}
    assert {"whisper-base-geez", "whisper-base-geez-hf"} <= set(names)
    assert "Ge'ez" in names["whisper-base-geez"].source
    provenance = _json(geez_model.ct2_dir / "geez_vocab.json")
    assert provenance == _json(geez_model.hf_dir / "geez_vocab.json")
    assert len(provenance["given_up"]) == geez_model.given_up == 428
    assert provenance["corpus_fingerprint"] == reference_corpus(every=10).fingerprint
    assert provenance["source_model"] == "whisper-base" and provenance["seed"] == 0
    swaps = _swaps(geez_model.ct2_dir)
    original_vocabulary = _json(default_model_dir / "vocabulary.json")
    assert _json(geez_model.ct2_dir / "vocabulary.json") == edit_ct2_vocabulary(
        original_vocabulary, swaps
    )
    assert _json(geez_model.ct2_dir / "config.json") == _json(default_model_dir / "config.json")
    edited = _json(geez_model.hf_dir / "tokenizer.json")
    assert restore_tokenizer(edited, swaps) == _json(hf_model_dir / "tokenizer.json")
    with pytest.raises(FileExistsError, match="whisper-base-geez"):
        build_geez_model("whisper-base", "whisper-base-geez", workspace=geez_workspace)


def test_new_rows_are_the_mean_of_their_pieces_and_the_rest_is_unchanged(geez_model, hf_model_dir):
    from safetensors.torch import load_file

    from utils.geez_vocab.model_edit import piece_ids

    before = load_file(hf_model_dir / "model.safetensors")[EMBEDDING]
    after = load_file(geez_model.hf_dir / "model.safetensors")[EMBEDDING]
    swaps = _swaps(geez_model.hf_dir)
    pieces = piece_ids(_json(hf_model_dir / "tokenizer.json"), swaps)
    changed = sorted(pieces)
    assert len(pieces[swaps[10].id]) == 3  # a character: its three byte tokens
    expected = torch.stack([before[pieces[index]].mean(0) for index in changed])
    torch.testing.assert_close(after[changed], expected)
    kept = torch.ones(len(before), dtype=torch.bool)
    kept[changed] = False
    assert torch.equal(after[kept], before[kept])


@pytest.fixture(scope="module")
def both_models(geez_model, default_model_dir):
    from faster_whisper import WhisperModel

    return [WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=2)
            for path in (default_model_dir, geez_model.ct2_dir)]  # fmt: skip


@pytest.mark.parametrize("language", ["en", "es"])
def test_transcripts_timestamps_and_language_detection_are_unchanged(both_models, language):
    models = both_models
    for prompt in PROMPTS:
        outputs = []
        for model in models:
            segments, info = model.transcribe(
                str(SPEECH[language] / f"{prompt}.wav"), beam_size=5, word_timestamps=True
            )
            words = [(w.word, w.start, w.end) for s in segments for w in s.words]
            outputs.append((info.language, info.language_probability, words))
        assert outputs[0][0] == language and outputs[0][2], prompt
        assert outputs[1] == outputs[0], prompt


def test_the_report_cli_prints_the_figures_as_json(geez_model, capsys):
    from utils.geez_vocab.__main__ import main

    args = ["report", "--model", str(geez_model.ct2_dir), "--json", "--corpus-every", "10"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    print({key: report[key] for key in ("tokens_per_char", "tokens_per_char_word_list",
                                        "changed_share_non_amharic")})  # fmt: skip
    assert report["tokens_per_char"] <= 1.1 and report["tokens_per_char_word_list"] <= 1.1
    assert report["changed_share_non_amharic"] < 0.001 and report["compared_strings"] > 50_000
    assert report["given_up"] == 428 and report["special_ids_unchanged"] is True
    assert report["vocab_size"] == 51865
    assert main(["report", "--model", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err


def test_lora_trains_the_new_rows_faster_with_the_output_tied(geez_model):
    from utils.training.config import TrainConfig
    from utils.training.model import load_base_model, make_trainable, merged_copy
    from utils.training.module import WhisperFineTuner

    base = load_base_model(str(geez_model.hf_dir))
    assert len(base.new_token_ids) == 428
    config = TrainConfig(model=str(geez_model.hf_dir), new_token_lr_scale=10.0)
    before = base.model.get_input_embeddings().weight.detach().clone()
    model = make_trainable(base.model, config, base.new_token_ids)
    tuner = WhisperFineTuner(model, base.processor.tokenizer, config)
    optimizer = tuner.configure_optimizers()["optimizer"]
    rates = sorted(group["initial_lr"] for group in optimizer.param_groups)  # before warm-up
    assert rates == pytest.approx([config.learning_rate, 10 * config.learning_rate])
    rows = optimizer.param_groups[1]["params"]
    assert [tuple(p.shape) for p in rows] == [(428, 512)]
    rows[0].data.normal_(0, 0.01, generator=torch.Generator().manual_seed(0))  # "trained"
    merged = merged_copy(model)
    embedding, output = merged.get_input_embeddings().weight, merged.get_output_embeddings().weight
    assert embedding.data_ptr() == output.data_ptr()
    moved = (embedding - before).abs().sum(1).nonzero()
    assert set(moved.flatten().tolist()) == set(base.new_token_ids)


def test_windows_and_label_checks_use_the_model_token_rate(geez_model, engine, hf_engine):
    from tokenizers import Tokenizer

    from utils.dataset.text_checks import TextChecker
    from utils.transcription.windows import max_window_seconds, model_token_rates

    assert engine.token_rates == hf_engine.token_rates == {"am": 20.0}  # the model's own
    geez = model_token_rates(Tokenizer.from_file(str(geez_model.ct2_dir / "tokenizer.json")))
    assert geez["am"] < 7.5
    assert max_window_seconds("am", 224, engine.token_rates) < 11
    assert max_window_seconds("am", 224, geez) == 30.0
    label = "ሰላም ነው ወደ ገበያ ሄደ። " * 16  # 240 Ethiopic characters
    assert "decoder positions" in TextChecker("am").rejection(label)
    assert TextChecker("am", str(geez_model.ct2_dir)).rejection(label) == ""


def test_an_export_of_a_tuned_geez_model_passes_the_parity_check(geez_model, geez_workspace):
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import WhisperForConditionalGeneration

    from optimization.pipeline import ExportConfig, ExportTarget, export_models
    from utils.training.model import repurposed_token_ids

    ids = list(repurposed_token_ids(geez_model.hf_dir))
    model = WhisperForConditionalGeneration.from_pretrained(geez_model.hf_dir)
    targets = r"model\.decoder\.layers\.\d+\.(self_attn|encoder_attn)\.(q_proj|v_proj)"
    lora = LoraConfig(r=4, target_modules=targets, trainable_token_indices={"embed_tokens": ids})
    torch.manual_seed(0)
    peft = get_peft_model(model, lora)
    generator = torch.Generator().manual_seed(0)
    for name, weight in peft.named_parameters():
        if "lora_B" in name or "trainable_tokens_delta" in name:  # about what 100 steps move
            weight.data.normal_(0, 0.01 if "lora_B" in name else 0.001, generator=generator)
    adapter = geez_workspace.root / "geez-adapter"
    peft.save_pretrained(adapter)
    out = geez_workspace.exports / "geez-tuned-ct2"
    config = ExportConfig(str(adapter), (ExportTarget("ct2", "int8"),), str(out), eval_limit=3)
    result = export_models(config, geez_workspace)
    assert result.report and not any(row.flagged for row in result.report.rows)
    assert (
        _json(out / "geez_vocab.json")["given_up"]
        == _json(geez_model.hf_dir / "geez_vocab.json")["given_up"]
    )
    vocabulary = _json(out / "vocabulary.json")
    assert vocabulary[ids[0]] == _swaps(geez_model.hf_dir)[0].new
    merged = load_file(next((geez_workspace.exports / ".merged").glob("*")) / "model.safetensors")
    tuned = merged[EMBEDDING] - load_file(geez_model.hf_dir / "model.safetensors")[EMBEDDING]
    assert set(tuned.abs().sum(1).nonzero().flatten().tolist()) == set(ids)


@pytest.fixture(scope="module")
def ethiopic_heavy(geez_model, tmp_path_factory):
    """The Ge'ez model with its Ethiopic rows 50x longer: like a model tuned on Amharic alone,
    those tokens win on any audio unless they are suppressed (transformers, and CTranslate2)."""
    from transformers import WhisperForConditionalGeneration

    from optimization.ct2_export import convert_to_ct2
    from utils.training.model import repurposed_token_ids

    model = WhisperForConditionalGeneration.from_pretrained(geez_model.hf_dir)
    with torch.no_grad():
        model.get_input_embeddings().weight[list(repurposed_token_ids(geez_model.hf_dir))] *= 50
    hf_dir = tmp_path_factory.mktemp("ethiopic-heavy") / "hf"
    model.save_pretrained(hf_dir)
    for path in geez_model.hf_dir.glob("*.json"):
        if not (hf_dir / path.name).exists():  # the tokenizer, processor and provenance
            (hf_dir / path.name).write_bytes(path.read_bytes())
    convert_to_ct2(hf_dir, hf_dir.parent / "ct2", quantization="float16")  # as the build does
    return hf_dir


@pytest.mark.parametrize("kind", ["ct2", "hf"])
def test_other_languages_never_get_the_ethiopic_tokens(ethiopic_heavy, engine, hf_engine, kind):
    from utils.geez_vocab.alphabet import is_ethiopic
    from utils.transcription.engine import load_engine
    from utils.transcription.options import DecodeOptions

    path = ethiopic_heavy if kind == "hf" else ethiopic_heavy.parent / "ct2"
    heavy = load_engine(str(path), device="cpu", compute_type="float32" if kind == "hf" else "int8")
    base = hf_engine if kind == "hf" else engine
    audio = str(SPEECH["en"] / f"{PROMPTS[0]}.wav")
    options = DecodeOptions(language="en", beam_size=1, temperature=(0.0,), word_timestamps=True)
    english, unchanged = heavy.transcribe(audio, options), base.transcribe(audio, options)
    assert english.text == unchanged.text and english.text.strip()  # as if the rows were not there
    timed = [[(w.word, w.start, w.end) for w in r.segments[0].words] for r in (english, unchanged)]
    assert timed[0] == timed[1]  # faster-whisper's word probabilities see the whole vocabulary
    forced = heavy.transcribe(audio, replace(options, language="am", max_new_tokens=8))
    assert any(is_ethiopic(c) for c in forced.text)  # allowed for Amharic: they win everywhere
