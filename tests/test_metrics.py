"""Corpus WER/CER, normalizers, empty references, bootstrap intervals and paired comparison."""

from __future__ import annotations

import json

import jiwer
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.alignment import AlignOp, EditCounts
from evaluation.bootstrap import Interval, percentile_interval, resampled_sums
from evaluation.confusions import GAP, ConfusionRow, Confusions
from evaluation.metrics import paired_bootstrap, score
from evaluation.normalizers import get_normalizer, resolve_normalizer_name

_WORDS = st.lists(st.sampled_from(["a", "b", "c", "dd", "ee"]), min_size=0, max_size=6)
_SENTENCE = _WORDS.map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_WORDS.filter(bool).map(" ".join), _SENTENCE), min_size=1, max_size=5))
def test_agrees_with_jiwer_on_plain_input(pairs: list[tuple[str, str]]) -> None:
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    scores = score(refs, hyps, "en", normalizer="none", bootstrap=0)
    words = jiwer.process_words(refs, hyps)
    assert scores.wer == pytest.approx(jiwer.wer(refs, hyps))
    assert scores.cer == pytest.approx(jiwer.cer(refs, hyps))
    assert (scores.substitutions, scores.deletions, scores.insertions, scores.hits) == (
        words.substitutions,
        words.deletions,
        words.insertions,
        words.hits,
    )
    assert scores.words == sum(len(r.split()) for r in refs)
    assert scores.wer_ci is None


def test_corpus_rate_is_total_errors_over_total_words_not_a_mean() -> None:
    # 1 error in 1 word, 0 errors in 3 words: corpus 1/4, mean of rates would be 1/2
    scores = score(["a", "b c d"], ["x", "b c d"], "en", normalizer="none", bootstrap=0)
    assert scores.wer == pytest.approx(0.25)
    assert [u.wer for u in scores.utterances] == [1.0, 0.0]


def test_per_utterance_counts_and_alignment() -> None:
    scores = score(["a b c d"], ["a c d e"], "en", normalizer="none", bootstrap=0)
    utt = scores.utterances[0]
    assert utt.words == EditCounts(hits=3, substitutions=0, deletions=1, insertions=1)
    assert utt.alignment == (
        AlignOp("equal", "a", "a"),
        AlignOp("delete", "b", None),
        AlignOp("equal", "c", "c"),
        AlignOp("equal", "d", "d"),
        AlignOp("insert", None, "e"),
    )
    assert utt.chars.reference_length == len("a b c d")
    assert scores.chars == len("a b c d")


def test_english_normalizer_is_picked_for_en() -> None:
    refs, hyps = ["Hello, World! It's 10 dollars."], ["hello world it is $10"]
    assert score(refs, hyps, "en", bootstrap=0).wer == 0.0
    assert score(refs, hyps, "en", normalizer="none", bootstrap=0).wer > 0.5
    assert score(refs, hyps, "en", bootstrap=0).normalizer == "english"


def test_basic_normalizer_for_other_languages() -> None:
    assert resolve_normalizer_name("auto", "fr") == "basic"
    assert resolve_normalizer_name("auto", "AM") == "amharic"
    assert resolve_normalizer_name("basic", "en") == "basic"
    basic = get_normalizer("basic", "fr")
    assert basic("  Bonjour,   le Monde !  ") == "bonjour le monde"
    assert score(["Bonjour, le monde."], ["bonjour le monde"], "fr", bootstrap=0).wer == 0.0


def test_unknown_normalizer_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown normalizer"):
        score(["a"], ["a"], "en", normalizer="fancy")


def test_length_mismatch_names_both_lengths() -> None:
    with pytest.raises(ValueError, match=r"3 references.*2 hypotheses"):
        score(["a", "b", "c"], ["a", "b"], "en")


def test_no_utterances_and_bare_strings_are_rejected() -> None:
    with pytest.raises(ValueError, match="no utterances"):
        score([], [], "en")
    with pytest.raises(TypeError, match="sequence of strings"):
        score("a b", "a b", "en")  # type: ignore[arg-type]


def test_empty_references_are_reported_not_scored() -> None:
    refs, hyps = ["", "a b", "  ", "[noise] uh"], ["x y", "a b", "", "z"]
    scores = score(refs, hyps, "en", bootstrap=50)
    assert scores.wer == 0.0 and scores.cer == 0.0
    assert (scores.n, scores.scored, scores.words) == (4, 1, 2)
    empty = scores.empty_references
    assert (empty.count, empty.indices) == (3, (0, 2, 3))
    assert empty.word_insertions == 3  # "x y" and "z" ("[noise] uh" normalizes to nothing)
    assert empty.char_insertions == len("x y") + len("z")
    assert scores.utterances[0].empty_reference and scores.utterances[0].wer is None
    assert scores.wer_ci == Interval(0.0, 0.0, 0.95)


def test_all_empty_references_raise_with_a_reason() -> None:
    with pytest.raises(ValueError, match="all 2 references are empty after normalization"):
        score(["", " "], ["a", ""], "en")


def test_to_dict_is_json_ready() -> None:
    scores = score(["a b", "c"], ["a x", ""], "en", bootstrap=20)
    data = json.loads(json.dumps(scores.to_dict(utterances=True)))
    assert {"wer", "cer", "wer_ci", "cer_ci", "n"} <= set(data)
    assert data["n"] == 2 and len(data["wer_ci"]) == 2
    assert data["utterances"][0]["alignment"][1] == {"op": "substitute", "ref": "b", "hyp": "x"}
    assert "utterances" not in scores.to_dict()


# -- bootstrap -------------------------------------------------------------------------------


def test_bootstrap_interval_matches_hand_enumeration() -> None:
    # Two one-word utterances, one wrong. A resample of two draws gives WER 0 (p 1/4),
    # 1/2 (p 1/2) or 1 (p 1/4): the 95% interval is [0, 1], the central 40% interval [1/2, 1/2].
    refs, hyps = ["a", "b"], ["x", "b"]
    wide = score(refs, hyps, "en", normalizer="none", bootstrap=4000, seed=1)
    assert tuple(wide.wer_ci) == (0.0, 1.0)
    narrow = score(refs, hyps, "en", normalizer="none", bootstrap=4000, confidence=0.4, seed=1)
    assert tuple(narrow.wer_ci) == (0.5, 0.5)


def test_identical_utterances_give_a_zero_width_interval() -> None:
    scores = score(["a b"] * 7, ["a x"] * 7, "en", normalizer="none", bootstrap=300)
    assert scores.wer == 0.5
    assert tuple(scores.wer_ci) == (0.5, 0.5)
    assert scores.wer_ci.width == 0.0


def test_bootstrap_is_seeded_and_contains_the_estimate() -> None:
    rng = np.random.default_rng(3)
    vocab = ["a", "b", "c", "d"]
    refs = [" ".join(rng.choice(vocab, size=5)) for _ in range(40)]
    hyps = [" ".join(w if rng.random() > 0.3 else "z" for w in r.split()) for r in refs]
    first = score(refs, hyps, "en", normalizer="none", bootstrap=500, seed=7)
    again = score(refs, hyps, "en", normalizer="none", bootstrap=500, seed=7)
    other = score(refs, hyps, "en", normalizer="none", bootstrap=500, seed=8)
    assert first.wer_ci == again.wer_ci and first.cer_ci == again.cer_ci
    assert first.wer_ci != other.wer_ci
    assert first.wer_ci.contains(first.wer) and first.cer_ci.contains(first.cer)
    assert 0.0 < first.wer_ci.width < 0.3


def test_resampled_sums_in_blocks_cover_every_sample() -> None:
    table = np.ones((3, 2), dtype=np.int64)
    sums = resampled_sums(table, samples=5, seed=0)
    assert sums.shape == (5, 2) and (sums == 3).all()
    assert percentile_interval(np.array([1.0, 2.0, 3.0]), 0.5) == Interval(1.5, 2.5, 0.5)


def test_bad_bootstrap_arguments() -> None:
    with pytest.raises(ValueError, match="confidence"):
        score(["a"], ["a"], "en", confidence=1.0)
    with pytest.raises(ValueError, match="bootstrap samples"):
        score(["a"], ["a"], "en", bootstrap=-1)


# -- paired bootstrap ------------------------------------------------------------------------


def test_paired_identical_systems() -> None:
    refs = ["a b c", "d e", "f"] * 5
    hyps = ["a x c", "d e", ""] * 5
    result = paired_bootstrap(refs, hyps, list(hyps), "en", samples=200)
    assert result.delta == 0.0 and result.p_value == 1.0
    assert tuple(result.delta_ci) == (0.0, 0.0)
    assert result.a == result.b == score(refs, hyps, "en", bootstrap=0).wer


def test_paired_clearly_better_system() -> None:
    refs = [f"w{i} x{i} y{i}" for i in range(30)]
    worse = [f"w{i} q y{i}" for i in range(30)]
    better = list(refs)
    better[0] = "w0 q y0"
    result = paired_bootstrap(refs, worse, better, "en", samples=500, seed=2)
    assert result.delta == pytest.approx(1 / 90 - 30 / 90)
    assert result.delta_ci.high < 0.0
    assert result.p_value == pytest.approx(1 / 501)
    reverse = paired_bootstrap(refs, better, worse, "en", metric="cer", samples=500, seed=2)
    assert reverse.delta > 0 and reverse.p_value < 0.01
    assert json.loads(json.dumps(result.to_dict()))["metric"] == "wer"


def test_paired_mixed_systems_give_a_large_p_value() -> None:
    # A wins on half the utterances, B on the other half: no significant difference.
    refs = ["a b"] * 20
    hyp_a = ["a b", "a x"] * 10
    hyp_b = ["a x", "a b"] * 10
    hyp_b[0] = "a b"  # B slightly better overall
    result = paired_bootstrap(refs, hyp_a, hyp_b, "en", samples=500)
    assert result.delta < 0 and result.p_value > 0.2


def test_paired_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"2 references.*1 hypotheses"):
        paired_bootstrap(["a", "b"], ["a", "b"], ["a"], "en")
    with pytest.raises(ValueError, match="metric"):
        paired_bootstrap(["a"], ["a"], ["a"], "en", metric="bleu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1 sample"):
        paired_bootstrap(["a"], ["a"], ["a"], "en", samples=0)


# -- confusions -----------------------------------------------------------------------------


def test_confusions_from_pairs_and_top() -> None:
    pairs = [("a", "b")] * 3 + [("a", "c")] + [("c", "c")] * 5 + [(GAP, "b")] * 2
    conf = Confusions.from_pairs(pairs)
    assert conf.labels == ("a", "b", "c", GAP)
    assert conf.top(2) == (ConfusionRow("a", "b", 3), ConfusionRow(GAP, "b", 2))
    assert conf.rows(matches=True)[0] == ConfusionRow("c", "c", 5)
    assert conf.count("a", "zzz") == 0
    assert conf.to_dict()["counts"][0] == [0, 3, 1, 0]
    with pytest.raises(ValueError):
        conf.counts[0, 0] = 1  # read-only: results are immutable
    assert Confusions.from_pairs([]).top(3) == ()
