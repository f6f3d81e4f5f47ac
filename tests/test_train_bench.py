"""The proof that fine-tuning learns (slow: about 35 minutes on a 2-core CPU): LoRA on the
Amharic demo dataset, scored on test sentences spoken by a voice never heard in training."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.timeout(3600)  # 30 minutes of training plus the evaluations
def test_lora_learns_amharic_on_cpu_within_30_minutes(workspace, hf_model_dir, tmp_path):
    from bench.train_bench import TARGET_CER, TARGET_SCRIPT, learn

    figures = learn(minutes=27.0, run_dir=tmp_path / "run", workspace=workspace)
    print(figures)
    assert figures.before["cer"] > 0.9  # zero-shot Whisper cannot write Amharic
    assert figures.after["cer"] <= TARGET_CER
    assert figures.after["script_share"] >= TARGET_SCRIPT
    assert figures.after["loops"] == 0
    assert figures.train_seconds <= 30 * 60
    assert set(figures.english) >= {"english/wer_before", "english/wer_after"}
