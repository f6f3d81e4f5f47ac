"""Synthetic Amharic speech with espeak-ng: spoken numbers, voices as speakers, held-out test
sentences and voice, plausible durations, a clear report when espeak-ng is missing."""

from __future__ import annotations

import pytest

from augmentation import tts
from augmentation.tts import Sentence, SynthOptions, spoken_text, synthesize_dataset
from utils.dataset.manifest import MANIFEST_NAME, iter_manifest

SENTENCES = [
    Sentence("s1", "ዛሬ ፲፪ ሰዎች መጡ።"),
    Sentence("s2", "በ2017 ዓ.ም ተወለደ።"),
    Sentence("s3", "ሰላም ነህ ወይ?"),
    Sentence("s4", "አዲስ አበባ ትልቅ ከተማ ናት።"),
    Sentence("s5", "ጎንደር ከዚህ ሩቅ ነው።"),
    Sentence("s6", "ገበያ ሄጄ ሁለት ኪሎ ቲማቲም ገዛሁ።"),
]


def test_numbers_are_spoken_as_amharic_words():
    assert spoken_text("ዛሬ ፲፪ ሰዎች መጡ።", "am") == "ዛሬ አስራ ሁለት ሰዎች መጡ።"
    assert spoken_text("በ2017 ዓ.ም", "am") == "በ ሁለት ሺህ አስራ ሰባት ዓ.ም"
    assert spoken_text("call 911", "en") == "call 911"  # espeak-ng reads digits itself


def test_voices_are_distinct_and_deterministic():
    options = SynthOptions(voices=5, seed=3)
    voices = tts.voice_variants(5, options)
    assert voices == tts.voice_variants(5, options) and len({v.name for v in voices}) == 5
    assert voices != tts.voice_variants(5, SynthOptions(voices=5, seed=4))


def test_synthetic_set_holds_out_test_sentences_and_a_voice(tmp_path):
    options = SynthOptions(voices=3, validation=1 / 6, test=2 / 6)
    report = synthesize_dataset(SENTENCES, tmp_path, options)
    assert report.kept == 6 and report.rejected == []
    utterances = list(iter_manifest(tmp_path / MANIFEST_NAME))
    by_split = {s: [u for u in utterances if u.split == s] for s in ("train", "validation", "test")}
    assert [len(by_split[s]) for s in ("train", "validation", "test")] == [3, 1, 2]
    test_voices = {u.speaker for u in by_split["test"]}
    heard = {u.speaker for u in by_split["train"] + by_split["validation"]}
    assert len(test_voices) == 1 and not test_voices & heard  # a voice never heard in training
    for u in utterances:
        letters = len(u.text.replace(" ", ""))
        assert 0.5 < u.duration < 10 and 3 < letters / u.duration < 20, (u.text, u.duration)
        assert u.sample_rate == 16000 and u.language == "am"
    assert next(u for u in utterances if u.id == "s1").text == "ዛሬ አስራ ሁለት ሰዎች መጡ።"


def test_missing_espeak_is_reported_per_item_not_raised(tmp_path, monkeypatch):
    monkeypatch.setattr(tts.shutil, "which", lambda name: None)
    report = synthesize_dataset(SENTENCES[:2], tmp_path, SynthOptions(voices=1))
    assert report.kept == 0 and len(report.rejected) == 2
    assert all("apt install espeak-ng" in p.reason for p in report.rejected)


@pytest.mark.parametrize("rows", [["id\tcategory\tamharic\tenglish", "a1\tx\tሰላም።\tHello."]])
def test_sentences_from_a_tsv_carry_their_translation(tmp_path, rows):
    path = tmp_path / "corpus.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    [sentence] = tts.read_sentences(path)
    assert sentence.text == "ሰላም።" and sentence.translation.text == "Hello."
    plain = tmp_path / "plain.txt"
    plain.write_text("ሰላም።\n\nደህና ሁን።\n", encoding="utf-8")
    assert [s.text for s in tts.read_sentences(plain)] == ["ሰላም።", "ደህና ሁን።"]


def test_demo_command_then_split_filter_and_export(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def cli(*args):
        done = subprocess.run([sys.executable, "prepare_ljspeech_dataset.py", *args], cwd=root,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = str(tmp_path / "demo")
    assert "kept 12" in cli("demo", "--out", out, "--limit", "12", "--voices", "3")
    corpus = tts.read_sentences(tts.CORPUS)
    assert len(corpus) >= 500 and all(s.translation for s in corpus)
    utterances = list(iter_manifest(Path(out) / MANIFEST_NAME))
    assert all(u.translation and u.translation.language == "en" for u in utterances)
    assert "train:" in cli("split", out, "--reassign", "--seed", "2")
    filtered = json.loads(cli("filter", out, "--max-seconds", "30"))
    assert filtered["kept"] == 12 and filtered["version"] >= 2
    assert "12 utterances" in cli("export", out, "--out", str(tmp_path / "lj"))
    assert (tmp_path / "lj" / "metadata.csv").read_text(encoding="utf-8").count("\n") == 12
