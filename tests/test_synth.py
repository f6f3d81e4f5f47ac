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
