"""Long inputs: silence, noise and a two-hour recording, with short twins in the default suite.

The slow tests (``pytest -m slow tests/test_long_inputs.py -s``) build their audio as 16 kHz int16
WAV files in a temporary folder, block by block so the test process itself stays small:
- 20 minutes of digital silence and 30 minutes of white noise give no words with default options;
- a two-hour recording of real prompts with gaps is transcribed in a fresh process whose peak
  memory (``ru_maxrss``) must stay within 1.2 times that of a ten-minute file built the same way.
Their short twins run 60 s of silence, 60 s of noise and a 3-minute concatenation of prompts.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf
from whisper_normalizer.english import EnglishTextNormalizer

from tests.speech import silence, speech_prompts, white_noise
from utils.audio import SAMPLE_RATE, load_audio
from utils.transcription import DecodeOptions

ROOT = Path(__file__).resolve().parents[1]
normalize = EnglishTextNormalizer()
# Greedy and one temperature: the fallback ladder samples at random (faster-whisper sets no seed),
# so with it the same file gives a different transcript on each run.
FAST = DecodeOptions(language="en", beam_size=1, word_timestamps=False, temperature=(0.0,))
GAP_SECONDS = 1.0
MEMORY_RATIO = 1.2


# -- building audio ----------------------------------------------------------------------------
def _write_blocks(path: Path, blocks: Iterator[np.ndarray]) -> Path:
    """Write float32 16 kHz blocks to `path` as int16 WAV, one block at a time."""
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, subtype="PCM_16") as handle:
        for block in blocks:
            handle.write(block)
    return path


def _silence_blocks(seconds: float, block: float = 60.0) -> Iterator[np.ndarray]:
    left = seconds
    while left > 0:
        yield silence(min(block, left))
        left -= block


def _noise_blocks(seconds: float, block: float = 60.0) -> Iterator[np.ndarray]:
    for index in range(int(np.ceil(seconds / block))):
        yield white_noise(min(block, seconds - index * block), level=0.1, seed=index)


class SpeechTrack:
    """Real prompts one after another with `GAP_SECONDS` of silence after each, cycling through
    the prompts as often as needed; remembers the transcripts of what it wrote."""

    def __init__(self, max_prompts: int = 200) -> None:
        chosen = speech_prompts(max_prompts, max_seconds=8.0)
        assert len(chosen) >= 50, "too few asterisk prompts installed"
        self.prompts = [(load_audio(path), text) for path, text in chosen]
        self.texts: list[str] = []

    def blocks(self, seconds: float) -> Iterator[np.ndarray]:
        written, gap = 0, silence(GAP_SECONDS)
        for samples, text in itertools.cycle(self.prompts):
            if written + samples.size + gap.size > seconds * SAMPLE_RATE:
                break
            self.texts.append(text)
            written += samples.size + gap.size
            yield np.concatenate([samples, gap])
        yield silence(max(0.0, seconds - written / SAMPLE_RATE))


def _lost_prompts(texts: list[str], transcript: str) -> list[str]:
    """The prompts (of `texts`, in the order spoken) that the transcript lost: fewer than half of
    their letters line up with an identical letter in a character alignment of all the prompts
    with the transcript, spaces removed. Letters rather than words, so that a prompt spelled
    differently ("login incorrect" heard as "log in correct") still counts as heard; a dropped
    or skipped window, or words cut at a block edge, do not."""
    letters = [normalize(text).replace(" ", "") for text in texts]
    heard = normalize(transcript).replace(" ", "") or "-"
    alignment = jiwer.process_characters("".join(letters), heard).alignments[0]
    matched = np.zeros(sum(len(prompt) for prompt in letters), dtype=bool)
    for chunk in alignment:
        if chunk.type == "equal":
            matched[chunk.ref_start_idx : chunk.ref_end_idx] = True
    lost, start = [], 0
    for text, prompt in zip(texts, letters, strict=True):
        if 2 * matched[start : start + len(prompt)].sum() < len(prompt):
            lost.append(text)
        start += len(prompt)
    return lost


# -- measuring in a fresh process --------------------------------------------------------------
_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from utils.transcription import DecodeOptions
from utils.transcription.engine import load_engine

engine = load_engine("whisper-base", device="cpu")
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
result = engine.transcribe({path!r}, DecodeOptions(**{options!r}))
print(json.dumps({{
    "seconds": time.perf_counter() - started,
    "duration": result.duration,
    "text": result.text,
    "rss_after_load_kb": loaded,
    "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
}}))
"""


def _transcribe_in_fresh_process(path: Path, options: dict) -> dict:
    code = _CHILD.format(root=str(ROOT), path=str(path), options=options)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),  # carries the session workspace (WHISPER_STUDIO_WORKSPACE)
        timeout=4 * 3600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- short twins (default suite) ---------------------------------------------------------------
def test_a_minute_of_silence_gives_no_words(engine, tmp_path):
    path = _write_blocks(tmp_path / "silence.wav", _silence_blocks(60))
    result = engine.transcribe(path)
    assert result.duration == pytest.approx(60, abs=0.01)
    assert result.text == "" and result.words == () and result.segments == ()


def test_a_minute_of_white_noise_gives_no_words(engine, tmp_path):
    path = _write_blocks(tmp_path / "noise.wav", _noise_blocks(60))
    result = engine.transcribe(path)
    assert result.duration == pytest.approx(60, abs=0.01)
    assert result.text == "" and result.words == () and result.segments == ()


def test_three_minutes_of_prompts_keep_every_prompt(engine, tmp_path):
    track = SpeechTrack(max_prompts=60)
    path = _write_blocks(tmp_path / "speech.wav", track.blocks(180))
    result = engine.transcribe(path, FAST)
    assert result.duration == pytest.approx(180, abs=0.01)
    assert len(track.texts) >= 40
    lost = _lost_prompts(track.texts, result.text)
    assert not lost, (lost, result.text)
    assert result.segments[-1].end <= 180 + 0.5


# -- slow --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_twenty_minutes_of_silence_give_no_words(engine, tmp_path):
    path = _write_blocks(tmp_path / "silence-20min.wav", _silence_blocks(20 * 60))
    started = time.perf_counter()
    result = engine.transcribe(path)
    print(f"\n20 min silence: {time.perf_counter() - started:.1f} s")
    assert result.duration == pytest.approx(20 * 60, abs=0.01)
    assert result.text == "" and result.words == ()


@pytest.mark.slow
def test_thirty_minutes_of_white_noise_give_no_words(engine, tmp_path):
    path = _write_blocks(tmp_path / "noise-30min.wav", _noise_blocks(30 * 60))
    started = time.perf_counter()
    result = engine.transcribe(path)
    print(f"\n30 min white noise: {time.perf_counter() - started:.1f} s")
    assert result.duration == pytest.approx(30 * 60, abs=0.01)
    assert result.text == "" and result.words == ()


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)  # transcribing two hours on a small CPU takes a while
def test_two_hours_need_no_more_memory_than_ten_minutes(workspace, default_model_dir, tmp_path):
    runs, texts = {}, {}
    for name, seconds in (("10 min", 10 * 60), ("2 h", 2 * 3600)):
        track = SpeechTrack()
        path = _write_blocks(tmp_path / f"{seconds}.wav", track.blocks(seconds))
        options = {"language": "en", "beam_size": 1, "word_timestamps": False, "temperature": [0.0]}
        run = runs[name] = _transcribe_in_fresh_process(path, options)
        texts[name] = track.texts
        path.with_suffix(".json").write_text(json.dumps({**run, "reference": track.texts}))
        print(
            f"\n{name}: {run['seconds']:.0f} s to transcribe, peak RSS "
            f"{run['peak_rss_kb'] / 1024:.0f} MiB (after loading the model "
            f"{run['rss_after_load_kb'] / 1024:.0f} MiB)"
        )
        assert run["duration"] == pytest.approx(seconds, abs=0.01)
    short, long = runs["10 min"]["peak_rss_kb"], runs["2 h"]["peak_rss_kb"]
    assert long <= MEMORY_RATIO * short, (
        f"2 h peak RSS {long / 1024:.0f} MiB > {MEMORY_RATIO} x 10 min peak {short / 1024:.0f} MiB"
    )
    for name, run in runs.items():  # and nothing was lost on the way
        lost = _lost_prompts(texts[name], run["text"])
        assert not lost, (name, f"{len(lost)} of {len(texts[name])} prompts lost", lost[:30])
