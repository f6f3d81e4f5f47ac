"""The engine on real speech: parity with plain faster-whisper and absolute WER."""

from __future__ import annotations

import dataclasses

import jiwer
import numpy as np
import pytest
from whisper_normalizer.english import EnglishTextNormalizer

from tests.speech import prompt_path, speech_prompts
from utils.audio import load_audio
from utils.transcription import DecodeOptions

normalize = EnglishTextNormalizer()
# Greedy and without word timings keeps 2 x 20 decodes inside the suite budget.
FAST = DecodeOptions(language="en", beam_size=1, word_timestamps=False)


def _wer(references: list[str], hypotheses: list[str]) -> float:
    return jiwer.wer([normalize(r) for r in references], [normalize(h) or "-" for h in hypotheses])


@pytest.fixture(scope="module")
def prompts():
    chosen = speech_prompts(20, max_seconds=5.0)
    assert len(chosen) == 20
    return chosen


def test_engine_matches_plain_faster_whisper_and_is_accurate(engine, prompts):
    references = [text for _, text in prompts]
    ours = [engine.transcribe(path, FAST).text for path, _ in prompts]
    kwargs = engine.transcribe_kwargs(FAST)
    plain = []
    for path, _ in prompts:
        segments, _ = engine.model.transcribe(load_audio(path), **kwargs)
        plain.append("".join(s.text for s in segments))
    ours_wer, plain_wer = _wer(references, ours), _wer(references, plain)
    print(f"WER engine {ours_wer:.2%}, plain faster-whisper {plain_wer:.2%}")
    assert abs(ours_wer - plain_wer) <= 0.005
    assert ours_wer < 0.06


def _count_encoded_rows(batcher) -> list[int]:
    rows: list[int] = []
    encode = batcher._encode

    def counting(features):
        rows.append(len(features))
        return encode(features)

    batcher._encode = counting
    return rows


def test_batched_files_match_sequential(engine, prompts):
    from utils.transcription.batch import BatchTranscriber

    paths = [str(path) for path, _ in prompts[:8]]
    options = dataclasses.replace(FAST, language=None)
    batcher = BatchTranscriber(engine, batch_size=4)
    rows = _count_encoded_rows(batcher)
    seen: list[tuple[int, int]] = []
    batched = batcher.transcribe(paths, options, progress=lambda *p: seen.append(p))
    references = [text for _, text in prompts[:8]]
    assert all(result.language == "en" for result in batched)
    assert _wer(references, [r.text for r in batched]) < 0.10  # 8 short prompts: a noisy figure
    assert [r.source for r in batched] == paths
    # one VAD chunk per short prompt: the encoding made for language detection is decoded too
    assert sum(rows) == 8
    assert seen[-1] == (8, 8) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_batched_windows_recut_after_detection_are_encoded_afresh(engine, prompts, monkeypatch):
    """A detected language with a short window re-cuts the file, so the detection encoding
    (of the old first window) must not be decoded in place of the new first window."""
    from utils.transcription import batch

    monkeypatch.setattr(batch, "max_window_seconds", lambda language, *_: 2.5 if language else 30)
    paths = [str(path) for path, _ in prompts[:2]]
    batcher = batch.BatchTranscriber(engine, batch_size=8)
    rows = _count_encoded_rows(batcher)
    seen: list[tuple[int, int]] = []
    options = dataclasses.replace(FAST, language=None, temperature=(0.0,))  # no fallback decodes
    results = batcher.transcribe(paths, options, progress=lambda *p: seen.append(p))
    chunks = seen[-1][1]
    assert (chunks, seen[-1][0]) == (3, 3)  # 2.5 s windows: one prompt splits in two
    # detection encodes both files; the split file's new windows are encoded afresh, the other
    # file's single window is unchanged, so its detection encoding is decoded
    assert rows == [2, 2]
    assert all(r.language == "en" and r.text for r in results)


def test_result_carries_words_segments_language_and_timings(engine):
    path = prompt_path("agent-alreadyon")
    result = engine.transcribe(path)
    assert result.language == "en" and result.language_probability > 0.5
    assert result.duration == pytest.approx(load_audio(path).size / 16000)
    assert result.timings.decode > 0 and result.timings.load > 0
    assert result.audio_info.sample_rate == 8000 and result.audio_info.channels == 1
    words = result.words
    assert len(words) >= 10
    assert all(0 <= w.start <= w.end <= result.duration + 0.5 for w in words)
    assert all(0 <= w.probability <= 1 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    segment = result.segments[0]
    assert segment.avg_logprob < 0 and 0 <= segment.no_speech_prob <= 1


def test_a_single_window_decode_runs_the_encoder_once(engine, monkeypatch):
    """faster-whisper decodes the audio after the last word of an unfinished segment again as a
    second window; `single_window` stops after the first, with the same text (live streams)."""
    passes: list[int] = []
    encode = engine._encoder_budget._encode
    monkeypatch.setattr(engine._encoder_budget, "_encode", lambda f: passes.append(1) or encode(f))
    clip = load_audio(prompt_path("agent-pass"))[: int(1.9 * 16000)]  # ends in the last word
    options = dataclasses.replace(
        FAST, temperature=(0.0,), word_timestamps=True, vad_filter=False,
        initial_prompt="That agent is already logged on. Please enter your agent number followed "
        "by the pound key. Login incorrect. Please enter your agent number",
    )  # fmt: skip
    both = engine.transcribe(clip, options)
    assert len(passes) == 2  # if faster-whisper stops re-decoding, this option can go
    one = engine.transcribe(clip, dataclasses.replace(options, single_window=True))
    assert len(passes) == 3
    assert one.segments[0].text == both.segments[0].text == " Please enter your password."
    assert engine.transcribe(clip, options).text == both.text  # the budget was reset
    assert engine.parallel_decodes == 2  # a CPU engine runs two decodes at once


def test_a_single_window_decode_of_long_audio_decodes_every_window(engine, monkeypatch):
    passes: list[int] = []
    encode = engine._encoder_budget._encode
    monkeypatch.setattr(engine._encoder_budget, "_encode", lambda f: passes.append(1) or encode(f))
    speech = load_audio(prompt_path("agent-alreadyon"))
    gap, tail = (np.zeros(n * 16000 - speech.size, np.float32) for n in (32, 8))
    audio = np.concatenate([speech, gap, speech, tail])  # 40 s: a 30 s window, then 10 s
    options = dataclasses.replace(FAST, single_window=True, vad_filter=False)
    result = engine.transcribe(audio, options)
    assert len(passes) == 2 and result.text.lower().count("already logged on") == 2, result.text
