"""Waveform augmentation (`augmentation.audio_aug`) and SpecAugment (`augmentation.spec_aug`):
seeded determinism, isolation of the global generators, and measured effects of each transform."""

from __future__ import annotations

import hashlib
import pickle
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from augmentation.audio_aug import (
    LABELS,
    MIN_DURATION_S,
    AudioAugmentConfig,
    AudioAugmenter,
    describe,
    preview,
)
from augmentation.spec_aug import SpecAugment, SpecAugmentConfig

SR = 16_000
ROOT = Path(__file__).parents[1]
ALL_OFF = {
    "strength": 1.0, "speed_p": 0.0, "pitch_p": 0.0, "reverb_p": 0.0, "background_p": 0.0,
    "color_noise_p": 0.0, "gaussian_noise_p": 0.0, "gain_p": 0.0, "time_mask_p": 0.0,
}  # fmt: skip
ALL_ON = {name: 1.0 for name in ALL_OFF}
SEEDS = 12  # with `mixed_config`, these seeds fire every transform at least once


def only(**overrides: object) -> AudioAugmentConfig:
    """A config with every transform off except the ones overridden, at strength 1."""
    return AudioAugmentConfig(**{**ALL_OFF, **overrides})


def tone(seconds: float = 1.0, freq: float = 440.0, level: float = 0.3, rate: int = SR):
    """A sine of `freq` Hz with a slow amplitude envelope, float32 (n,)."""
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * t))).astype(
        np.float32
    )


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean
    return float(10 * np.log10(np.sum(np.square(clean, dtype=np.float64)) / np.sum(noise**2)))


def peak_hz(audio: np.ndarray, rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(audio.size, 1 / rate)[np.argmax(spectrum)])


def band_power(audio: np.ndarray, freq: float, rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1 / rate)
    return float(spectrum[np.abs(freqs - freq) < 20].sum() / spectrum.sum())


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two background files: a short stereo 22.05 kHz FLAC of a 3 kHz tone, and a long (40 s)
    8 kHz WAV of a 1 kHz tone (read in parts, not cached whole)."""
    folder = tmp_path_factory.mktemp("noise")
    short = tone(2.0, 3000.0, 0.5, 22_050)
    sf.write(folder / "short.flac", np.stack([short, short], axis=1), 22_050)
    sf.write(folder / "long.wav", tone(40.0, 1000.0, 0.5, 8000), 8000)
    (folder / "notes.txt").write_text("not audio")
    return folder


@pytest.fixture(scope="module")
def mixed_config(noise_dir: Path) -> AudioAugmentConfig:
    return AudioAugmentConfig(strength=1.0, background_dir=str(noise_dir), ir_bank_size=3)


def test_same_seed_same_output_whatever_ran_before_and_after_pickling(mixed_config) -> None:
    audio = tone(1.5)
    augmenter = AudioAugmenter(mixed_config)
    first = {seed: augmenter(audio, SR, seed) for seed in range(SEEDS)}
    fired = {
        name for seed in range(SEEDS) for name in preview(audio, SR, mixed_config, seed).applied
    }
    assert fired == set(LABELS)  # every transform took part
    for seed in reversed(range(SEEDS)):  # other seeds ran in between; the cache is warm now
        np.testing.assert_array_equal(augmenter(audio, SR, seed), first[seed])
    clone = pickle.loads(pickle.dumps(augmenter))
    assert len(pickle.dumps(augmenter)) < 20_000  # decoded noise and IRs stay behind
    for seed in range(SEEDS):
        np.testing.assert_array_equal(clone(audio, SR, seed), first[seed])
        np.testing.assert_array_equal(AudioAugmenter(mixed_config)(audio, SR, seed), first[seed])
    assert all(out.dtype == np.float32 and out.ndim == 1 for out in first.values())


def test_same_seed_same_output_in_another_process(mixed_config, noise_dir: Path) -> None:
    code = (
        "import hashlib, numpy as np; from tests.test_augmentation import tone; "
        "from augmentation.audio_aug import AudioAugmentConfig, AudioAugmenter; "
        f"c = AudioAugmentConfig(strength=1.0, background_dir={str(noise_dir)!r}, "
        "ir_bank_size=3); a = AudioAugmenter(c); "
        "print(*(hashlib.sha256(a(tone(1.5), 16000, s).tobytes()).hexdigest() for s in range(12)))"
    )
    env = {"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    augmenter = AudioAugmenter(mixed_config)
    here = [hashlib.sha256(augmenter(tone(1.5), SR, s).tobytes()).hexdigest() for s in range(SEEDS)]
    assert result.stdout.split() == here


def test_different_seeds_give_different_outputs(mixed_config) -> None:
    audio = tone(1.0)
    outputs = [AudioAugmenter(only(gaussian_noise_p=1.0))(audio, SR, seed) for seed in range(5)]
    for i in range(5):
        for j in range(i + 1, 5):
            assert not np.array_equal(outputs[i], outputs[j])
    fired = {preview(audio, SR, mixed_config, seed).applied for seed in range(12)}
    assert len(fired) > 3  # different seeds pick different transforms


def test_strength_zero_is_identity() -> None:
    audio = tone(1.0)
    config = AudioAugmentConfig(**{**ALL_ON, "strength": 0.0})
    for seed in range(5):
        out = AudioAugmenter(config)(audio, SR, seed)
        np.testing.assert_array_equal(out, audio)
        assert out is not audio
    assert describe(config) == ["no augmentation (strength 0)"]
    assert preview(audio, SR, config, 3).applied == ()


def test_global_random_states_untouched(mixed_config) -> None:
    random.seed(123)
    np.random.seed(456)
    py_state, np_state = random.getstate(), np.random.get_state()
    config = AudioAugmentConfig(**{**ALL_ON, "background_dir": mixed_config.background_dir})
    result = preview(tone(1.0), SR, config, seed=9)
    assert {"gaussian_noise", "color_noise", "pitch", "time_mask"} <= set(result.applied)
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert after[0] == np_state[0] and after[2:] == np_state[2:]
    np.testing.assert_array_equal(after[1], np_state[1])


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_scales_length_and_pitch(factor: float) -> None:
    audio = tone(2.0, freq=1000.0)
    out = AudioAugmenter(only(speed_p=1.0, speed_range=(factor, factor)))(audio, SR, 0)
    assert abs(out.size - audio.size / factor) <= 1
    assert abs(peak_hz(out) - 1000.0 * factor) < 3.0  # resampling moves the pitch too


@pytest.mark.parametrize("kind", ["gaussian", "color"])
def test_added_noise_snr_within_configured_range(kind: str) -> None:
    audio = tone(1.0)
    config = only(**{f"{kind}_noise_p": 1.0, f"{kind}_snr_db": (10.0, 20.0)})
    measured = [snr_db(audio, AudioAugmenter(config)(audio, SR, seed)) for seed in range(10)]
    assert all(9.5 <= value <= 20.5 for value in measured), measured
    assert max(measured) - min(measured) > 3.0  # drawn across the range, not fixed


def test_background_noise_comes_from_the_folder(noise_dir: Path) -> None:
    audio = tone(1.0, freq=440.0)
    config = only(background_p=1.0, background_dir=str(noise_dir), background_snr_db=(5.0, 15.0))
    files = set()
    for seed in range(12):
        result = preview(audio, SR, config, seed)
        assert result.applied == ("background_noise",)
        files.add("short" if "short.flac" in result.details[0] else "long")
        tone_hz = 3000.0 if "short.flac" in result.details[0] else 1000.0
        assert band_power(result.augmented, tone_hz) > 0.01  # the file's tone is in the mix
        assert band_power(audio, tone_hz) < 1e-6
        assert 4.5 <= snr_db(audio, result.augmented) <= 15.5
    assert files == {"short", "long"}


def test_simulated_reverb_adds_a_decaying_tail() -> None:
    audio = np.zeros(SR, dtype=np.float32)
    audio[:1600] = tone(0.1, level=0.5)  # 100 ms burst, then silence
    config = only(reverb_p=1.0, room_rt60_s=(0.2, 0.3), ir_bank_size=2)
    for seed in range(3):
        out = AudioAugmenter(config)(audio, SR, seed)
        assert out.shape == audio.shape and np.isfinite(out).all()
        assert np.abs(out).max() <= 1.0 and not np.array_equal(out, audio)
        tail = np.sum(out[1760:3200] ** 2)  # 10-100 ms after the burst ends: input is silent
        assert tail > 1e-5 * np.sum(out[:1600] ** 2)
        assert np.sum(out[12_000:] ** 2) < tail  # and it decays
        assert np.isclose(np.sqrt(np.mean(out**2)), np.sqrt(np.mean(audio**2)), rtol=1e-3)


def test_impulse_responses_from_a_folder(tmp_path: Path) -> None:
    ir = np.zeros(4000, dtype=np.float32)
    ir[100], ir[100 + 800] = 1.0, 0.5  # direct path after a delay, then one echo 50 ms later
    sf.write(tmp_path / "echo.wav", ir, SR)
    audio = tone(1.0)
    out = AudioAugmenter(only(reverb_p=1.0, ir_dir=str(tmp_path)))(audio, SR, 0)
    expected = audio.astype(np.float64).copy()
    expected[800:] += 0.5 * audio[:-800]  # no delay added: the IR starts at its peak
    expected *= np.sqrt(np.mean(audio.astype(np.float64) ** 2) / np.mean(expected**2))
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"strength": 1.5}, "strength"),
        ({"speed_p": -0.1}, "speed_p"),
        ({"reverb_p": "high"}, "reverb_p"),
        ({"speed_range": (1.1, 0.9)}, "speed_range"),
        ({"speed_range": (0.0, 1.1)}, "speed_range"),
        ({"pitch_semitones": (1.0,)}, "pitch_semitones"),
        ({"gain_db": (0.0, float("nan"))}, "gain_db"),
        ({"gaussian_snr_db": (30.0, 10.0)}, "gaussian_snr_db"),
        ({"time_mask_fraction": (0.1, 0.9)}, "time_mask_fraction"),
        ({"ir_bank_size": 0}, "ir_bank_size"),
        ({"ir_seed": -1}, "ir_seed"),
        ({"background_dir": "/no/such/folder"}, "background_dir"),
    ],
)
def test_bad_config_values_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        AudioAugmentConfig(**overrides)


def test_folder_without_audio_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no audio here")
    with pytest.raises(ValueError, match=r"ir_dir.*no audio"):
        AudioAugmentConfig(ir_dir=str(tmp_path))
    from_json = AudioAugmentConfig(speed_range=[0.95, 1.05])  # type: ignore[arg-type]
    assert from_json.speed_range == (0.95, 1.05)


def test_unreadable_background_file_skips_the_transform(tmp_path: Path) -> None:
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wave file")
    config = only(background_p=1.0, background_dir=str(tmp_path), gain_p=1.0)
    with pytest.warns(UserWarning, match="Background skipped"):
        result = preview(tone(1.0), SR, config, 0)
    assert result.applied == ("gain",)


@pytest.mark.parametrize("n", [0, 1, 7, 300, int(MIN_DURATION_S * SR), 1000])
def test_empty_and_very_short_audio(n: int, noise_dir: Path) -> None:
    config = AudioAugmentConfig(**{**ALL_ON, "background_dir": str(noise_dir)})
    audio = tone(0.1)[:n]
    out = AudioAugmenter(config)(audio, SR, 1)
    assert out.dtype == np.float32 and out.ndim == 1 and np.isfinite(out).all()
    assert np.abs(out).max(initial=0.0) <= 1.0
    if n < MIN_DURATION_S * SR:
        np.testing.assert_array_equal(out, audio)


def test_output_stays_in_range_and_finite() -> None:
    audio = tone(1.0, level=0.99)
    audio[10] = np.nan
    config = only(gain_p=1.0, gain_db=(12.0, 12.0), gaussian_noise_p=1.0)
    out = AudioAugmenter(config)(audio, SR, 0)
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    assert np.abs(out).max() > 0.9  # scaled down to fit, not clipped to silence
    with pytest.raises(ValueError, match="1-D"):
        AudioAugmenter(config)(np.zeros((2, 100), dtype=np.float32), SR, 0)


def test_preview_reports_the_transforms_that_fired() -> None:
    audio = tone(1.0)
    config = only(speed_p=1.0, gain_p=1.0, time_mask_p=1.0, pitch_p=0.0)
    result = preview(audio, SR, config, seed=4)
    assert result.applied == ("speed", "gain", "time_mask")
    assert len(result.details) == 3 and result.details[0].startswith(LABELS["speed"])
    np.testing.assert_array_equal(result.original, audio)
    np.testing.assert_array_equal(result.augmented, AudioAugmenter(config)(audio, SR, 4))


def test_describe_lists_only_what_can_fire(noise_dir: Path) -> None:
    lines = describe(only(speed_p=0.5, gaussian_noise_p=1.0))
    assert len(lines) == 2
    assert lines[0].startswith("speed perturbation") and "50% of samples" in lines[0]
    assert not any("background" in line for line in describe(AudioAugmentConfig()))
    with_noise = describe(AudioAugmentConfig(background_dir=str(noise_dir)))
    assert any("background" in line for line in with_noise)


# --- SpecAugment ---------------------------------------------------------------------------


def log_mel(n_mels: int = 80, n_frames: int = 3000, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n_mels, n_frames)) + 5.0).astype(np.float32)


SPEC = SpecAugmentConfig(p=1.0, freq_masks=2, freq_mask_width=10, time_masks=3,
                         time_mask_width=40, time_mask_max_fraction=0.1, fill="zero")  # fmt: skip


@pytest.mark.parametrize("n_mels", [80, 128])
def test_spec_augment_masks_within_bounds(n_mels: int) -> None:
    features = log_mel(n_mels)
    augment = SpecAugment(SPEC)
    total_rows = total_cols = 0
    for seed in range(30):
        out = augment(features, seed)
        assert out.shape == features.shape and out.dtype == np.float32
        rows = int(np.all(out == 0, axis=1).sum())
        cols = int(np.all(out == 0, axis=0).sum())
        masks = augment.draw(n_mels, 3000, seed, None)
        assert rows == len({r for s, w in masks.freq for r in range(s, s + w)}) <= 2 * 10
        assert cols == len({c for s, w in masks.time for c in range(s, s + w)}) <= 3 * 40
        total_rows, total_cols = total_rows + rows, total_cols + cols
    assert total_rows > 0 and total_cols > 0
    assert np.all(features > 0)  # the input is untouched


def test_spec_augment_respects_speech_frames() -> None:
    features = log_mel()
    augment = SpecAugment(SPEC)
    for seed in range(40):
        out = augment(features, seed, speech_frames=300)
        masked = np.flatnonzero(np.all(out == 0, axis=0))
        assert masked.size == 0 or masked.max() < 300  # padding is never masked
        assert masked.size <= 3 * 30  # each mask <= 10% of the 300 speech frames
    quiet = augment(features, 1, speech_frames=0)
    assert not np.all(quiet == 0, axis=0).any()  # no speech: no time masks


def test_spec_augment_deterministic_and_picklable() -> None:
    features = log_mel()
    augment = SpecAugment(SpecAugmentConfig(p=1.0))
    clone = pickle.loads(pickle.dumps(augment))
    for seed in range(5):
        np.testing.assert_array_equal(augment(features, seed, 2000), clone(features, seed, 2000))
    assert not np.array_equal(augment(features, 0), augment(features, 1))


def test_spec_augment_mean_fill_probability_and_config_errors() -> None:
    features = log_mel()
    out = SpecAugment(SpecAugmentConfig(p=1.0, fill="mean"))(features, 3, speech_frames=1000)
    changed = out != features
    assert changed.any()
    np.testing.assert_allclose(out[changed], features[:, :1000].mean(), rtol=1e-5)
    np.testing.assert_array_equal(SpecAugment(SpecAugmentConfig(p=0.0))(features, 3), features)
    for bad, field in [({"p": 2.0}, "p"), ({"freq_masks": -1}, "freq_masks"),
                       ({"time_mask_max_fraction": 1.5}, "time_mask_max_fraction"),
                       ({"fill": "noise"}, "fill")]:  # fmt: skip
        with pytest.raises(ValueError, match=field):
            SpecAugmentConfig(**bad)
