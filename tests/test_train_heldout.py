"""Held-out scoring used by the training benchmark: script share, loop detection, and a report
on the tiny model (whose output is noise: the figures must still be well-formed)."""

from __future__ import annotations

import math

import pytest

from utils.training.heldout import heldout_report, is_loop, script_share, split_utterances


def test_script_share_counts_letters_of_the_language_script():
    assert script_share(["ሰላም ነህ", "abc"], "am") == pytest.approx(5 / 8)
    assert script_share(["hello", "ሰላም"], "en") == pytest.approx(5 / 8)
    assert math.isnan(script_share(["", "  "], "am"))


@pytest.mark.parametrize(
    ("hypothesis", "reference", "loop"),
    [
        ("ሰላም ነህ ወንድሜ", "ሰላም ነህ ወንድሜ", False),
        ("መያ" * 40, "ሰላም ነህ ወንድሜ", True),  # runs on far past the reference
        ("the cat sat " * 8, "the cat sat " * 7, True),  # compresses like a repeated phrase
        ("a quick brown fox jumps over the lazy dog", "a quick brown fox jumps over", False),
        ("ha ha ha", "x", False),  # too short to call
    ],
)
def test_is_loop(hypothesis, reference, loop):
    assert is_loop(hypothesis, reference) is loop


def test_split_utterances_names_the_splits_there_are(tiny_dataset_dir):
    assert len(split_utterances(tiny_dataset_dir, "test")) == 2
    with pytest.raises(ValueError, match=r"no .dev. utterances.*test.*train.*validation"):
        split_utterances(tiny_dataset_dir, "dev")


def test_report_on_the_tiny_model(tiny_whisper_dir, tiny_dataset_dir):
    from utils.training.model import load_base_model

    base = load_base_model(str(tiny_whisper_dir))
    calls = []
    report = heldout_report(base.model, base.processor, tiny_dataset_dir, batch_size=1,
                            max_new_tokens=12,
                            progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    assert report.n == 2 and calls == [(1, 2), (2, 2)]
    assert report.cer >= 0 and report.wer >= 0 and 0 <= report.loops <= 2
    assert report.audio_seconds > 1 and len(report.examples) == 2
    assert report.to_dict()["split"] == "test"
    assert base.model.training is False  # left as it was found (from_pretrained: eval mode)
