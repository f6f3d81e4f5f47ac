"""Real speech and synthetic audio for tests (Debian's asterisk prompts; see NOTES.md)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from utils.audio import SAMPLE_RATE

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
MUSIC_DIR = Path("/usr/share/asterisk/moh")


def asterisk_prompts() -> dict[str, str]:
    """name -> transcript for prompts with a WAV file and plain spoken text (no [tones])."""
    if not TRANSCRIPTS.exists() or not SOUNDS.exists():
        raise FileNotFoundError("asterisk sound packages missing: run `bash scripts/setup.sh test`")
    prompts = {}
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()
    for line in lines:
        name, sep, text = line.partition(":")
        if not sep or line.startswith(";") or "[" in text or "/" in name:
            continue
        if (SOUNDS / f"{name.strip()}.wav").exists() and re.search("[A-Za-z]", text):
            prompts[name.strip()] = text.strip()
    return prompts


def prompt_path(name: str) -> Path:
    return SOUNDS / f"{name}.wav"


def speech_prompts(
    count: int, min_seconds: float = 1.5, max_seconds: float = 8.0
) -> list[tuple[Path, str]]:
    """`count` real prompts of moderate length, in a fixed order."""
    chosen = []
    for name, text in sorted(asterisk_prompts().items()):
        duration = sf.info(str(prompt_path(name))).duration
        if min_seconds <= duration <= max_seconds and len(text.split()) >= 3:
            chosen.append((prompt_path(name), text))
        if len(chosen) == count:
            break
    return chosen


def white_noise(seconds: float, level: float = 0.1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * SAMPLE_RATE)) * level).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)


def music_file() -> Path:
    files = sorted(MUSIC_DIR.glob("*.wav"))
    if not files:
        raise FileNotFoundError(
            "asterisk-moh-opsound-wav missing: run `bash scripts/setup.sh test`"
        )
    return files[0]
