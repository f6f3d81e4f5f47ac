"""Transcription speed on real speech, in one run, with ratios against baselines run alongside.

1. RTF (decode seconds / audio seconds) of `FasterWhisperEngine.transcribe` vs plain
   faster-whisper with the same kwargs, on 20-30 s clips of concatenated asterisk prompts;
   the two systems are interleaved per clip (order alternating by round) and the best of
   `--rounds` is kept, so machine noise, which only ever adds time, cancels.
2. RTF of a transformers ASR pipeline (float32) on the reconstructed model, vs faster-whisper.
3. Throughput (audio s per wall s) of `BatchTranscriber` on many short prompts vs one by one.

Run: `.venv/bin/python bench/transcribe_bench.py [--quick] [--json OUT]`; exits 0 whatever the
figures (they are for the note, not assertions).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `utils` and `tests` importable
    sys.path.insert(0, str(ROOT))

SR = 16_000
GAP_SECONDS = 0.3
CLIP_MIN, CLIP_MAX = 20.0, 29.5  # seconds; a clip stays in one 30 s window
TARGET_ENGINE_OVER_PLAIN = 1.05  # at most
TARGET_BATCH_SPEEDUP = 1.5  # at least
Clips = Sequence[tuple[Path, float]]  # (WAV path, seconds)


def build_clips(out_dir: Path, total_seconds: float) -> list[tuple[Path, float]]:
    """Write 16 kHz WAVs of real prompts joined by 0.3 s gaps, each 20-29.5 s, until they hold
    `total_seconds` of audio; returns (path, seconds) per clip."""
    import numpy as np
    import soundfile as sf

    from tests.speech import speech_prompts
    from utils.audio import load_audio

    gap = np.zeros(int(GAP_SECONDS * SR), dtype=np.float32)
    clips: list[tuple[Path, float]] = []
    pieces: list[np.ndarray] = []
    length, total = 0, 0.0
    for path, _ in speech_prompts(10_000, 1.5, 8.0):
        samples = load_audio(path)
        if pieces and (length + samples.size) / SR > CLIP_MAX:
            if length / SR < CLIP_MIN:
                continue  # try a shorter prompt
            clip = np.concatenate(pieces)
            clips.append((out_dir / f"clip{len(clips):02d}.wav", clip.size / SR))
            sf.write(clips[-1][0], clip, SR, subtype="PCM_16")
            total += clip.size / SR
            pieces, length = [], 0
            if total >= total_seconds:
                return clips
        pieces += [samples, gap]
        length += samples.size + gap.size
    raise RuntimeError(f"not enough prompts for {total_seconds:.0f} s of clips ({total:.0f} s)")


def hf_runner(engine: Any, options: Any, threads: int) -> Callable[[Path], str]:
    """A transformers ASR pipeline (float32, CPU, `threads` torch threads, 0: default) on the
    converted-back model, run with the beam size, language, task and timestamps of `options`."""
    import torch
    import transformers

    from utils.audio import load_audio
    from utils.ct2_convert import ensure_transformers_model

    transformers.logging.set_verbosity_error()
    if threads:  # 2 threads on a loaded 2-core box: barrier stalls, 1x-30x slower at random
        torch.set_num_threads(threads)
    hf_dir = ensure_transformers_model(engine.model_dir)
    pipe = transformers.pipeline("automatic-speech-recognition", model=str(hf_dir), device="cpu")
    generate = {"num_beams": options.beam_size, "task": options.task}
    if options.language:
        generate["language"] = options.language
    stamps: bool | str = "word" if options.word_timestamps else True

    def run(path: Path) -> str:
        return pipe(
            {"raw": load_audio(path), "sampling_rate": SR},
            chunk_length_s=30,
            return_timestamps=stamps,
            generate_kwargs=dict(generate),  # the pipeline adds keys to the dict it gets
            ignore_warning=True,
        )["text"]

    return run


def bench_rtf(
    engine: Any, clips: Clips, options: Any, rounds: int, hf_rounds: int, hf_threads: int
) -> dict[str, Any]:
    """Best-of-`rounds` time per clip and system, interleaved per clip: RTFs, engine/plain and
    hf/plain ratios over all clips, the median per-round engine/plain ratio, transcript sizes."""
    from utils.audio import load_audio

    kwargs = engine.transcribe_kwargs(options)

    def plain(path: Path) -> str:
        segments, _ = engine.model.transcribe(load_audio(path), **kwargs)
        return "".join(segment.text for segment in segments)  # consumes the generator

    systems: dict[str, Callable[[Path], str]] = {
        "engine": lambda path: engine.transcribe(path, options).text,
        "plain": plain,
    }
    if hf_rounds > 0:
        systems["hf"] = hf_runner(engine, options, hf_threads)
    for run in systems.values():  # warm-up: lazy sessions, allocator, caches
        run(clips[0][0])
    times: dict[str, list[list[float]]] = {name: [] for name in systems}
    chars: dict[str, list[int]] = {name: [0] * len(clips) for name in systems}
    for r in range(rounds):
        names = [n for n in systems if n != "hf" or r < hf_rounds]
        names = names if r % 2 == 0 else names[::-1]
        row = {n: [] for n in names}
        for i, (path, _) in enumerate(clips):
            for name in names:
                started = time.perf_counter()
                chars[name][i] = len(systems[name](path).strip())
                row[name].append(time.perf_counter() - started)
        for name, values in row.items():
            times[name].append(values)
        print(
            f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {sum(v):.1f}s" for n, v in row.items())
        )
    audio = sum(seconds for _, seconds in clips)
    per_clip = {n: [min(col) for col in zip(*t, strict=True)] for n, t in times.items()}
    best = {n: sum(values) for n, values in per_clip.items()}
    out: dict[str, Any] = {
        "clips": len(clips),
        "audio_seconds": round(audio, 2),
        "rtf": {n: best[n] / audio for n in best},
        "clip_rtf": {
            n: [t / s for t, (_, s) in zip(v, clips, strict=True)] for n, v in per_clip.items()
        },
        "engine_over_plain": best["engine"] / best["plain"],
        "engine_over_plain_median_round": statistics.median(
            sum(e) / sum(p) for e, p in zip(times["engine"], times["plain"], strict=True)
        ),
    }
    if "hf" in best:
        out["hf_over_plain"] = best["hf"] / best["plain"]
        hf, plain_chars = chars["hf"], chars["plain"]  # a runaway: 1.5x the text or more
        out["hf_runaway_clips"] = sum(hf[i] > 1.5 * plain_chars[i] for i in range(len(clips)))
    out["text_chars"] = {name: sum(counts) for name, counts in chars.items()}
    return out


def bench_batch(
    engine: Any, paths: Sequence[Path], options: Any, rounds: int, batch_size: int
) -> dict[str, Any]:
    """Audio seconds per wall second of `BatchTranscriber` vs one `engine.transcribe` per file
    (best of `rounds`, interleaved), and how many transcripts the two agree on exactly."""
    import soundfile as sf

    from utils.transcription.batch import BatchTranscriber

    batcher = BatchTranscriber(engine, batch_size=batch_size)
    results: dict[str, list[Any]] = {}
    systems: dict[str, Callable[[], Any]] = {
        "sequential": lambda: [engine.transcribe(p, options) for p in paths],
        "batched": lambda: batcher.transcribe(list(paths), options),
    }
    for warm_up in systems.values():
        warm_up()
    walls: dict[str, list[float]] = {name: [] for name in systems}
    for r in range(rounds):
        for name in systems if r % 2 == 0 else list(systems)[::-1]:
            started = time.perf_counter()
            results[name] = systems[name]()
            walls[name].append(time.perf_counter() - started)
        print(
            f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {w[-1]:.1f}s" for n, w in walls.items())
        )
    audio = sum(sf.info(str(p)).duration for p in paths)
    speed = {name: audio / min(w) for name, w in walls.items()}
    pairs = zip(results["sequential"], results["batched"], strict=True)
    texts = [(getattr(s, "text", s), getattr(b, "text", b)) for s, b in pairs]
    return {
        "files": len(paths),
        "audio_seconds": round(audio, 2),
        "audio_s_per_wall_s": speed,
        "batched_over_sequential": speed["batched"] / speed["sequential"],
        "same_text": sum(s == b for s, b in texts),
        "failed": sum(isinstance(b, Exception) for _, b in texts),
    }


def report(figures: dict[str, Any]) -> list[str]:
    """The per-system table (RTF, best of rounds; audio s per wall s), then the summary block:
    each ratio with its target and PASS/MISS (info rows have no target)."""
    rtf, batch = figures["rtf"], figures["batch"]
    hf_label = f"transformers fp32, {figures['hf_threads'] or 'all'} thr"
    labels = {"engine": "engine.transcribe", "plain": "plain faster-whisper", "hf": hf_label}
    rows = [(labels[name], value) for name, value in rtf["rtf"].items()]
    for name in ("sequential", "batched"):
        rows.append((f"{name} ({batch['files']} files)", 1 / batch["audio_s_per_wall_s"][name]))
    lines = [f"\n{'system':<30}{'RTF (best)':>11}{'audio s / wall s':>18}"]
    lines += [f"{label:<30}{value:>11.3f}{1 / value:>18.1f}" for label, value in rows]
    ratio, speedup = rtf["engine_over_plain"], batch["batched_over_sequential"]
    lines += [
        f"engine/plain, median of per-round ratios: {rtf['engine_over_plain_median_round']:.3f}",
        f"batched vs sequential: same text in {batch['same_text']}/{batch['files']} files, "
        f"{batch['failed']} failed",
        "\n== summary ==",
        f"RTF engine, {figures['compute_type']:<18}{rtf['rtf']['engine']:>7.3f}   (info; median "
        f"clip {statistics.median(rtf['clip_rtf']['engine']):.3f})",
        f"engine / plain RTF{ratio:>19.3f}   target <= {TARGET_ENGINE_OVER_PLAIN}  "
        + ("PASS" if ratio <= TARGET_ENGINE_OVER_PLAIN else "MISS"),
    ]
    if "hf_over_plain" in rtf:
        lines.append(
            f"transformers fp32 / plain{rtf['hf_over_plain']:>11.2f}x   (info; runaway decodes "
            f"in {rtf['hf_runaway_clips']}/{rtf['clips']} clips)"
        )
    lines.append(
        f"batched / sequential{speedup:>16.2f}x   target >= {TARGET_BATCH_SPEEDUP}  "
        + ("PASS" if speedup >= TARGET_BATCH_SPEEDUP else "MISS")
    )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--compute-type", default="auto", help="auto: int8 on CPU")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--language", default=None, help="default: detect per file")
    parser.add_argument("--rounds", type=int, default=3, help="repeats; best of them is kept")
    parser.add_argument("--hf-rounds", type=int, default=1, help="transformers rounds (0: skip)")
    parser.add_argument("--hf-threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--seconds", type=float, default=120.0, help="clip audio, total")
    parser.add_argument("--files", type=int, default=32, help="short prompts to batch")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 clip, 1 round, 8 files")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.hf_rounds = 1, min(args.hf_rounds, 1)
        args.seconds, args.files = 1.0, min(args.files, 8)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run all three benchmarks on one engine, print the table and summary; always returns 0."""
    args = parse_args(argv)
    from utils.workspace import WORKSPACE_ENV

    os.environ.setdefault(WORKSPACE_ENV, str(ROOT / "workspace"))
    import ctranslate2
    import torch

    from tests.speech import speech_prompts
    from utils.transcription.engine import load_engine
    from utils.transcription.options import DecodeOptions

    started = time.perf_counter()
    engine = load_engine(args.model, device="cpu", compute_type=args.compute_type)
    options = DecodeOptions(beam_size=args.beam_size, language=args.language)
    print(
        f"model {args.model} ({engine.compute_type}, {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}, ct2 {ctranslate2.__version__}); "
        f"beam {args.beam_size}, language {args.language or 'detected per file'}, word "
        f"timestamps {options.word_timestamps}, VAD {options.vad_filter}"
    )
    figures: dict[str, Any] = {k: v for k, v in vars(args).items() if k != "json"}
    figures.update(compute_type=engine.compute_type, word_timestamps=options.word_timestamps)
    with tempfile.TemporaryDirectory(prefix="transcribe-bench-") as tmp:
        clips = build_clips(Path(tmp), args.seconds)
        print(f"[1/2] RTF on {len(clips)} clips, {sum(s for _, s in clips):.0f} s of speech")
        figures["rtf"] = bench_rtf(
            engine, clips, options, args.rounds, args.hf_rounds, args.hf_threads
        )
    paths = [path for path, _ in speech_prompts(args.files, 1.5, 6.0)]
    print(f"[2/2] {len(paths)} short prompts, batch size {args.batch_size}")
    figures["batch"] = bench_batch(engine, paths, options, args.rounds, args.batch_size)
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)

    print("\n".join(report(figures)))
    print(f"total wall time {figures['wall_seconds']:.0f} s; load now {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
