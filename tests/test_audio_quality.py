"""Audio quality figures: levels, clipping, silence, SNR on real speech, rate, robustness."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import utils.audio_quality as aq
from tests.speech import prompt_path, silence, white_noise
from utils.audio import SAMPLE_RATE, load_audio
from utils.audio_quality import DB_FLOOR, QualityFigures, measure

PROMPT = "agent-pass"
PROMPT_TEXT = "Please enter your password followed by the pound key."
PAD_S = 0.75  # silence around the (tightly trimmed) prompt, so there is non-speech to measure


def sine(amplitude: float, seconds: float = 1.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.fixture(scope="module")
def prompt() -> np.ndarray:
    """Real speech (16 kHz), about 3.3 s, with no silence around it."""
    return load_audio(prompt_path(PROMPT))


def with_noise(speech: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    """`speech` padded with PAD_S of silence each side plus white noise `snr_db` below the
    speech's mean power (the prompt is all speech, so its mean power is the speech level)."""
    padded = np.concatenate([silence(PAD_S), speech, silence(PAD_S)])
    level = np.sqrt(np.mean(speech.astype(np.float64) ** 2) / 10 ** (snr_db / 10))
    return padded + white_noise(len(padded) / SAMPLE_RATE + 1, level, seed)[: len(padded)]


@pytest.mark.parametrize("amplitude", [1.0, 0.5, 0.1])
def test_sine_levels(amplitude: float) -> None:
    figures = measure(sine(amplitude))
    expected_peak = 20 * np.log10(amplitude)
    assert figures.peak_dbfs == pytest.approx(expected_peak, abs=0.1)
    assert figures.rms_dbfs == pytest.approx(expected_peak - 3.0103, abs=0.1)
    assert figures.duration_s == pytest.approx(1.0)
    assert figures.silence_ratio == 0.0
    assert figures.snr_db is None and figures.speech_ratio == 0.0  # a tone is not speech


def test_clipping_ratio() -> None:
    assert measure(sine(0.5), vad=False).clipping_ratio == 0.0
    clipped = np.clip(sine(2.0), -1.0, 1.0)  # |2 sin| >= 1 for 2/3 of the time
    assert measure(clipped, vad=False).clipping_ratio == pytest.approx(2 / 3, abs=0.01)


def test_silence_ratio_of_half_silence() -> None:
    audio = np.concatenate([sine(0.5), silence(1.0)])
    assert measure(audio, vad=False).silence_ratio == pytest.approx(0.5)
    quiet = sine(10 ** (-60 / 20))  # peak -60 dBFS: below -50 dBFS RMS, so silent
    assert measure(quiet, vad=False).silence_ratio == 1.0


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 5.0])
def test_snr_on_real_speech_with_white_noise(prompt: np.ndarray, snr_db: float) -> None:
    figures = measure(with_noise(prompt, snr_db))
    assert figures.snr_db == pytest.approx(snr_db, abs=3.0)


def test_more_noise_gives_lower_snr(prompt: np.ndarray) -> None:
    snrs = [measure(with_noise(prompt, snr)).snr_db for snr in (30.0, 15.0, 5.0)]
    assert snrs[0] > snrs[1] > snrs[2]


def test_snr_without_non_speech_uses_quiet_frames(
    prompt: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every window speech: the noise floor comes from the quietest 10% of 20 ms frames."""
    monkeypatch.setattr(aq, "speech_probabilities", lambda a: np.ones(-(-len(a) // 512)))
    noisy = with_noise(prompt, 15.0)[int(PAD_S * SAMPLE_RATE) : -int(PAD_S * SAMPLE_RATE)]
    figures = measure(noisy)
    assert figures.speech_ratio == 1.0
    assert figures.snr_db is not None and 5.0 < figures.snr_db < 20.0


def test_one_vad_pass_per_utterance(prompt: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = aq.speech_probabilities

    def counting(audio: np.ndarray) -> np.ndarray:
        calls.append(len(audio))
        return real(audio)

    monkeypatch.setattr(aq, "speech_probabilities", counting)
    measure(with_noise(prompt, 20.0), PROMPT_TEXT)
    assert len(calls) == 1
    figures = measure(prompt, PROMPT_TEXT, vad=False)
    assert len(calls) == 1
    assert figures.snr_db is None and figures.speech_ratio is None


def test_speech_ratio_and_speaking_rate(prompt: np.ndarray) -> None:
    padded = np.concatenate([silence(PAD_S), prompt, silence(PAD_S)])
    figures = measure(padded, PROMPT_TEXT)
    assert figures.speech_ratio == pytest.approx(len(prompt) / len(padded), abs=0.1)
    assert figures.chars_per_second is not None and 8.0 <= figures.chars_per_second <= 25.0
    assert figures.snr_db is not None and figures.snr_db > 40  # digital silence around speech
    chars = len(PROMPT_TEXT.replace(" ", ""))
    by_duration = measure(padded, PROMPT_TEXT, vad=False).chars_per_second
    assert by_duration == pytest.approx(chars / figures.duration_s)
    assert measure(padded).chars_per_second is None


def test_empty_audio() -> None:
    figures = measure(np.zeros(0, dtype=np.float32), "text")
    assert figures == QualityFigures(0.0, DB_FLOOR, DB_FLOOR, 0.0, 0.0, None, 0.0, None)
    assert measure(np.zeros(0, dtype=np.float32), vad=False).speech_ratio is None


@pytest.mark.parametrize("n", [1, 100, 511, 512, 16_000])
def test_all_zero_and_nan_audio(n: int) -> None:
    for audio in (np.zeros(n, np.float32), np.full(n, np.nan, np.float32)):
        figures = measure(audio, "a b")
        assert figures.rms_dbfs == figures.peak_dbfs == DB_FLOOR
        assert figures.silence_ratio == 1.0 and figures.clipping_ratio == 0.0
        assert figures.snr_db is None and figures.speech_ratio == 0.0
        assert figures.chars_per_second == pytest.approx(2 / figures.duration_s)


def test_nan_counts_as_zero() -> None:
    audio = sine(0.5)
    holed = audio.copy()
    holed[::7] = np.nan
    zeroed = audio.copy()
    zeroed[::7] = 0.0
    assert measure(holed, vad=False) == measure(zeroed, vad=False)


def test_rejects_multichannel() -> None:
    with pytest.raises(ValueError, match="1-D"):
        measure(np.zeros((100, 2), np.float32))


def test_dict_round_trip(prompt: np.ndarray) -> None:
    for figures in (
        measure(with_noise(prompt, 10.0), PROMPT_TEXT),
        measure(np.zeros(0, np.float32)),
        measure(sine(0.3), vad=False),
    ):
        data = figures.to_dict()
        json.dumps(data, allow_nan=False)
        assert list(data) == [
            "duration_s",
            "rms_dbfs",
            "peak_dbfs",
            "clipping_ratio",
            "silence_ratio",
            "snr_db",
            "speech_ratio",
            "chars_per_second",
        ]
        assert all(v is None or round(v, 4) == v for v in data.values())
        again = QualityFigures.from_dict(data)
        assert again.to_dict() == data
        for name, value in data.items():
            original = getattr(figures, name)
            assert (value is None) == (original is None)
            assert value is None or getattr(again, name) == pytest.approx(original, abs=1e-4)


@given(
    arrays(
        np.float32,
        st.integers(0, 2000),
        elements=st.floats(-4, 4, width=32) | st.sampled_from([np.nan, np.inf, -np.inf]),
    )
)
def test_never_raises_and_stays_in_range(audio: np.ndarray) -> None:
    figures = measure(audio, "x")
    data = figures.to_dict()
    json.dumps(data, allow_nan=False)
    assert DB_FLOOR <= figures.rms_dbfs <= figures.peak_dbfs + 1e-9
    for ratio in (figures.clipping_ratio, figures.silence_ratio, figures.speech_ratio):
        assert ratio is not None and 0.0 <= ratio <= 1.0
    assert figures.snr_db is None or -120.0 <= figures.snr_db <= 120.0
