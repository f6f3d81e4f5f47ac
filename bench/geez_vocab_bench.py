"""The Ge'ez vocabulary head-to-head: the original base and the Ge'ez base fine-tuned on the
Amharic demo dataset with the same CPU budget and settings, then decoded the way users serve them.

    .venv/bin/python bench/geez_vocab_bench.py [--minutes 27] [--out DIR] [--json OUT.json]

Each model gets the same LoRA run (bench/train_bench.py `learn`: the amharic-low-resource preset,
stopped by the clock), each in a process of its own: two runs in one process ran out of memory
(24 GB) in the second one. Each merged result is converted to CTranslate2 int8 and transcribes the
test split (sentences and a voice never trained on) two ways, both models in turn, twice, the
faster pass kept (the machine is shared):
- sentence by sentence, greedy, without timestamps: held-out CER and WER, decoder tokens per
  utterance (decoder steps), decode seconds and RTF. Each 4 s clip still costs a full 30 s
  encoder pass, the same for both models, so on a CPU this ratio stays well under the steps one;
- the sentences joined into one recording, through the engine with the Transcribe tab's
  defaults (beam 5, VAD, word timestamps, windows capped by the model's own token rate): CER,
  WER, windows (encoder passes), decoder tokens, decode seconds and RTF.
Targets: at least 2.5x fewer decoder steps, at least 1.8x faster decoding of the recording, CER
no worse than the original's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.train_bench import demo_dataset  # noqa: E402

GEEZ_MODEL = "whisper-base-geez"
TARGET_STEPS = 2.5
TARGET_SPEED = 1.8
RECORDING_GAP_SECONDS = 0.4  # the pause between sentences when they are joined into a recording


def ensure_geez_model(workspace: Any, name: str = GEEZ_MODEL) -> str:
    """The Ge'ez base model `name`, built from the default model when missing (about 2 min)."""
    from utils.geez_vocab.build import build_geez_model

    if not (workspace.models / name / "geez_vocab.json").is_file():
        build_geez_model("whisper-base", name, workspace=workspace, progress=print)
    return name


def _learn_in_child(minutes: float, run_dir: Path, workspace: Any, model: str) -> dict[str, Any]:
    """bench/train_bench.py learn for `model` in a fresh process; its figures."""
    import os
    import subprocess

    from utils.workspace import WORKSPACE_ENV

    figures = run_dir.parent / f"{run_dir.name}.json"
    command = [sys.executable, str(ROOT / "bench" / "train_bench.py"), "learn", "--minutes",
               str(minutes), "--run-dir", str(run_dir), "--model", model, "--no-zero-shot",
               "--json", str(figures)]  # fmt: skip
    env = os.environ | {WORKSPACE_ENV: str(workspace.root)}
    subprocess.run(command, check=True, env=env)
    return json.loads(figures.read_text(encoding="utf-8"))


def _ct2(merged: Path, out: Path) -> Path:
    from optimization.ct2_export import convert_to_ct2

    out.mkdir(parents=True, exist_ok=True)
    convert_to_ct2(merged, out, quantization="int8")
    return out


def _decode_pass(model: Any, audios: list, language: str) -> tuple[list[str], list[int], float]:
    texts, tokens, started = [], [], time.perf_counter()
    for audio in audios:
        segments, _ = model.transcribe(
            audio, language=language, beam_size=1, temperature=0.0, without_timestamps=True,
            condition_on_previous_text=False, vad_filter=False,
        )  # fmt: skip
        segments = list(segments)  # decoding happens here
        texts.append(" ".join(s.text.strip() for s in segments))
        tokens.append(sum(len(s.tokens) for s in segments))
    return texts, tokens, time.perf_counter() - started


def join_recording(audios: Sequence[np.ndarray]) -> np.ndarray:
    """The clips (16 kHz mono float32) as one recording, `RECORDING_GAP_SECONDS` apart."""
    from utils.audio import SAMPLE_RATE

    gap = np.zeros(round(RECORDING_GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    pieces = [piece for audio in audios for piece in (gap, audio.astype(np.float32))]
    return np.concatenate(pieces[1:])


@dataclass(frozen=True)
class RecordingPass:
    """One transcription of the joined recording the way the Transcribe tab does it."""

    text: str
    tokens: int  # decoder tokens written, timestamps included
    windows: int  # windows decoded (one encoder pass each)
    seconds: float


def transcribe_recording(engine: Any, recording: np.ndarray) -> RecordingPass:
    """`recording` through the engine with the Transcribe tab's default options, in Amharic:
    beam 5, VAD, word timestamps, and the engine's window cap from the model's own token rate."""
    from utils.transcription.options import DecodeOptions

    started = time.perf_counter()
    segments, _, _ = engine.transcribe_samples(recording, DecodeOptions(language="am"))
    seconds = time.perf_counter() - started
    text = " ".join(segment.text.strip() for segment in segments)
    windows = len({segment.window_start for segment in segments})
    return RecordingPass(text, sum(len(s.tokens) for s in segments), windows, seconds)


def decode_figures(models: dict[str, Path], dataset: Path, passes: int = 2) -> dict[str, dict]:
    """Each model on the test split, in CTranslate2 int8: the sentences one by one (greedy), and
    the sentences joined into one recording (the Transcribe tab's path); models interleaved,
    the faster of `passes` kept for each."""
    from evaluation.scoring import score
    from utils.audio import SAMPLE_RATE
    from utils.training.heldout import split_utterances, utterance_audio
    from utils.transcription.faster_engine import FasterWhisperEngine

    utterances = split_utterances(dataset, "test")
    audios = [utterance_audio(dataset, u) for u in utterances]
    references = [u.text for u in utterances]
    recording = join_recording(audios)
    engines = {name: FasterWhisperEngine(path, device="cpu", compute_type="int8")
               for name, path in models.items()}  # fmt: skip
    for engine in engines.values():
        _decode_pass(engine.model, audios[:2], "am")  # warm-up
    best: dict[str, tuple] = {}
    best_recording: dict[str, RecordingPass] = {}
    for _ in range(passes):
        for name, engine in engines.items():
            run = _decode_pass(engine.model, audios, "am")
            if name not in best or run[2] < best[name][2]:
                best[name] = run
            whole = transcribe_recording(engine, recording)
            if name not in best_recording or whole.seconds < best_recording[name].seconds:
                best_recording[name] = whole
    audio_seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    recording_seconds = recording.size / SAMPLE_RATE
    figures = {}
    for name, (texts, tokens, seconds) in best.items():
        scores = score(references, texts, "am", bootstrap=0)
        whole = best_recording[name]
        joined = score([" ".join(references)], [whole.text], "am", bootstrap=0)
        figures[name] = {"cer": scores.cer, "wer": scores.wer, "n": len(texts),
                         "tokens_per_utterance": sum(tokens) / len(tokens),
                         "decode_seconds": seconds, "rtf": seconds / audio_seconds,
                         "examples": list(zip(references, texts, strict=True))[:3],
                         "recording": {"audio_seconds": recording_seconds,
                                       "cer": joined.cer, "wer": joined.wer,
                                       "tokens": whole.tokens, "windows": whole.windows,
                                       "decode_seconds": whole.seconds,
                                       "rtf": whole.seconds / recording_seconds}}  # fmt: skip
    return figures


def head_to_head(minutes: float, workspace: Any, out_dir: Path, geez_model: str = GEEZ_MODEL):
    """Train both, decode both; the figures (a dict) with `ratios` and `meets_targets`."""
    ensure_geez_model(workspace, geez_model)
    dataset = demo_dataset(workspace)
    runs = {}
    for name in ("whisper-base", geez_model):
        print(f"== fine-tuning {name} for {minutes:g} min", flush=True)
        runs[name] = _learn_in_child(minutes, out_dir / name, workspace, name)
    converted = {name: _ct2(Path(run["run_dir"]) / "merged", out_dir / f"{name}-ct2")
                 for name, run in runs.items()}  # fmt: skip
    decoded = decode_figures(converted, dataset)
    original, geez = decoded["whisper-base"], decoded[geez_model]
    ratios = {
        "decoder_steps": original["tokens_per_utterance"] / geez["tokens_per_utterance"],
        "sentence_speed": original["decode_seconds"] / geez["decode_seconds"],
        "recording_speed": (original["recording"]["decode_seconds"]
                            / geez["recording"]["decode_seconds"]),
    }  # fmt: skip
    meets = (ratios["decoder_steps"] >= TARGET_STEPS and ratios["recording_speed"] >= TARGET_SPEED
             and geez["cer"] <= original["cer"])  # fmt: skip
    training = {name: {"steps": run["steps"], "train_seconds": run["train_seconds"],
                       "heldout_after": {k: run["after"][k] for k in ("cer", "wer", "loops")},
                       "english": run["english"]} for name, run in runs.items()}  # fmt: skip
    return {"minutes": minutes, "training": training, "decoding": decoded, "ratios": ratios,
            "meets_targets": meets}  # fmt: skip


def format_table(figures: dict[str, Any]) -> str:
    """The figures as two markdown tables (sentences one by one; the joined recording) and the
    ratios against the targets."""
    rows = ["| model | steps trained | CER | WER | decoder tokens / utterance | decode s | RTF "
            "| English WER before → after |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, d in figures["decoding"].items():
        trained = figures["training"][name]
        english = trained["english"]
        rows.append(f"| {name} | {trained['steps']} | {d['cer']:.1%} | {d['wer']:.1%} | "
                    f"{d['tokens_per_utterance']:.1f} | {d['decode_seconds']:.1f} | "
                    f"{d['rtf']:.3f} | {english.get('english/wer_before', float('nan')):.1%} → "
                    f"{english.get('english/wer_after', float('nan')):.1%} |")  # fmt: skip
    rows += ["", "| model | recording s | CER | WER | windows | decoder tokens | decode s | RTF |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, d in figures["decoding"].items():
        r = d["recording"]
        rows.append(f"| {name} | {r['audio_seconds']:.0f} | {r['cer']:.1%} | {r['wer']:.1%} | "
                    f"{r['windows']} | {r['tokens']} | {r['decode_seconds']:.1f} | "
                    f"{r['rtf']:.3f} |")  # fmt: skip
    ratios = figures["ratios"]
    rows.append(f"\nfewer decoder steps: {ratios['decoder_steps']:.2f}x "
                f"(target >= {TARGET_STEPS}); "
                f"faster decoding of the recording: {ratios['recording_speed']:.2f}x (target >= "
                f"{TARGET_SPEED}); of single sentences: {ratios['sentence_speed']:.2f}x; "
                f"targets met: {figures['meets_targets']}")  # fmt: skip
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=27.0,
                        help="training clock per model (then validation and export)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="run directories (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    from utils.workspace import get_workspace

    out = args.out or Path(tempfile.mkdtemp(prefix="geez-bench-"))
    figures = head_to_head(args.minutes, get_workspace(), out)
    print(format_table(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
