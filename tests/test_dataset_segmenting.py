"""Long recordings with one transcript: cut at pauses, text shared by alignment."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from tests.speech import speech_prompts
from utils.audio import SAMPLE_RATE, load_audio
from utils.dataset.segmenting import SegmentOptions, group_spans, segment_recording, word_times


@pytest.fixture(scope="module")
def concatenated():
    """About 60 s of real prompts joined by 0.6-1.0 s pauses; the true boundaries are the
    middles of the pauses between prompts."""
    rng = np.random.default_rng(0)
    pieces, texts, bounds, t = [], [], [], 0.0
    for path, text in speech_prompts(14, 2.0, 6.0):
        audio, gap = load_audio(path), rng.uniform(0.6, 1.0)
        if pieces:
            bounds.append(t + gap / 2)
        pieces += [np.zeros(int(gap * SAMPLE_RATE), np.float32), audio]
        t += gap + audio.size / SAMPLE_RATE
        texts.append(text)
    return np.concatenate([*pieces, np.zeros(8000, np.float32)]), texts, bounds


def test_cuts_land_on_true_boundaries_and_each_piece_holds_whole_prompts(engine, concatenated):
    samples, texts, bounds = concatenated
    pieces = segment_recording(samples, " ".join(texts), engine, "en", SegmentOptions())
    assert len(pieces) >= 3 and all(p.end - p.start <= 26 for p in pieces)
    for before, after in pairwise(pieces):
        cut = (before.end + after.start) / 2  # pieces meet (with padding) around the cut
        assert min(abs(cut - b) for b in bounds) < 0.2
    assert " ".join(p.text for p in pieces) == " ".join(" ".join(texts).split())
    starts = {" ".join(" ".join(texts[:k]).split()) for k in range(len(texts) + 1)}
    joined = ""
    for piece in pieces[:-1]:  # every cut falls between two prompts, not inside one
        joined = f"{joined} {piece.text}".strip()
        assert joined in starts


def test_group_spans_respects_the_limit():
    spans = [(0.0, 4.0), (4.5, 9.0), (9.5, 20.0), (21.0, 24.0), (25.0, 40.0)]
    assert group_spans(spans, 10.0) == [(0.0, 9.0), (9.5, 20.0), (21.0, 24.0), (25.0, 40.0)]


def test_words_without_a_match_are_spread_by_length():
    times = word_times(["ሰላም", "ለአለም"], [("xyz", 1.0)], (2.0, 6.0))
    assert 2.0 < times[0] < times[1] < 6.0
    matched = word_times(["a", "b", "c"], [("a", 1.0), ("c", 3.0)], (0.0, 4.0))
    assert matched.tolist() == [1.0, 2.0, 3.0]
