"""Form values -> DecodeOptions, and results -> what the Transcribe tab shows."""

from __future__ import annotations

import pytest

from ui_components.presentation import (
    audio_facts,
    confidence_label,
    highlighted_words,
    options_from_form,
    segment_rows,
    write_downloads,
)
from utils.audio import AudioInfo
from utils.transcription import DecodeOptions, Segment, Timings, TranscriptionResult, Word


def test_empty_form_gives_the_default_options():
    assert options_from_form({}) == DecodeOptions()


def test_form_fields_reach_their_options():
    options = options_from_form(
        {
            "language": "am",
            "task": "translate",
            "beam_size": 3.0,
            "temperature": "0, 0.5",
            "vocabulary": "ሰላም\n\nአዲስ አበባ\n",
            "vocabulary_mode": "restrict",
            "suppress_tokens": "-1, 13",
            "max_new_tokens": 0,
            "hallucination_silence_threshold": 2,
            "vad_threshold": 0.3,
            "vad_min_silence_ms": 500,
            "initial_prompt": "",
            "condition_on_previous_text": True,
        }
    )
    assert options.language == "am" and options.task == "translate" and options.beam_size == 3
    assert options.temperature == (0.0, 0.5)
    assert options.vocabulary == ("ሰላም", "አዲስ አበባ") and options.vocabulary_mode == "restrict"
    assert options.suppress_tokens == (-1, 13) and options.max_new_tokens is None
    assert options.hallucination_silence_threshold == 2.0 and options.initial_prompt is None
    assert options.vad.threshold == 0.3 and options.vad.min_silence_duration_ms == 500
    assert options.condition_on_previous_text


@pytest.mark.parametrize(
    "field, value", [("temperature", "hot"), ("beam_size", 0), ("patience", -1)]
)
def test_bad_form_values_are_named(field, value):
    with pytest.raises(ValueError, match="invalid decoding setting"):
        options_from_form({field: value})


def _result() -> TranscriptionResult:
    words = (
        Word(0.0, 0.4, " sure", 0.95),
        Word(0.4, 0.8, " maybe", 0.6),
        Word(0.8, 1.0, " no", 0.2),
    )
    segment = Segment(0.0, 1.0, " sure maybe no", -0.31234, 0.0123, words=words)
    return TranscriptionResult(
        "sure maybe no",
        (segment,),
        "en",
        0.9,
        2.0,
        Timings(1.0, 0.5),
        AudioInfo(2.0, 44100, 2, "pcm_16"),
        "/tmp/clip.wav",
    )


def test_presentation_of_a_result(tmp_path):
    result = _result()
    assert [confidence_label(p) for p in (0.9, 0.6, 0.1)] == ["high", "medium", "low"]
    assert highlighted_words(result) == [(" sure", "high"), (" maybe", "medium"), (" no", "low")]
    assert segment_rows(result) == [["clip.wav", 0.0, 1.0, "sure maybe no", -0.312, 0.012]]
    facts = audio_facts(result)
    assert facts["sample_rate"] == 44100 and facts["channels"] == 2 and facts["rtf"] == 0.25
    paths = write_downloads(result, tmp_path)
    assert sorted(p.name for p in paths) == ["clip.json", "clip.srt", "clip.txt", "clip.vtt"]
