"""Dataset import speed and memory: an LJSpeech set of N utterances (real asterisk prompts,
cycled) imported with validation and quality figures, in a fresh process per size.

Prints utterances per second and peak RSS for `--small` and `--utterances` items, and the ratio
of the two peaks (memory must not grow with the dataset: target <= 1.2). Run:
`.venv/bin/python bench/dataset_bench.py [--utterances 10000] [--small 1000] [--workers 0]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MEMORY_RATIO = 1.2
_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from utils.dataset.formats import read_ljspeech
from utils.dataset.importing import ImportOptions, build_dataset
started = time.perf_counter()
report = build_dataset(read_ljspeech({src!r}, "en"), {out!r},
                       ImportOptions(language="en", workers={workers}))
print(json.dumps({{"seconds": time.perf_counter() - started, "kept": report.kept,
                  "rejected": len(report.rejected),
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def make_ljspeech(folder: Path, count: int) -> None:
    """`count` utterances: symlinks to real prompts (cycled) and their transcripts."""
    from tests.speech import asterisk_prompts, prompt_path

    prompts = [(n, t) for n, t in asterisk_prompts().items() if len(t) < 150]
    (folder / "wavs").mkdir(parents=True)
    with open(folder / "metadata.csv", "w", encoding="utf-8") as metadata:
        for i in range(count):
            name, text = prompts[i % len(prompts)]
            (folder / "wavs" / f"utt{i:06d}.wav").symlink_to(prompt_path(name))
            metadata.write(f"utt{i:06d}|{text}|{text}\n")


def import_in_fresh_process(src: Path, out: Path, workers: int) -> dict:
    code = _CHILD.format(root=str(ROOT), src=str(src), out=str(out), workers=workers)
    env = {**os.environ, "WHISPER_STUDIO_WORKSPACE": str(ROOT / "workspace")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=0, help="0: one per CPU")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    runs = {}
    with tempfile.TemporaryDirectory(prefix="dataset-bench-") as tmp:
        for count in (args.small, args.utterances):
            src = Path(tmp) / f"src{count}"
            make_ljspeech(src, count)
            out = Path(tmp) / f"out{count}"
            run = runs[count] = import_in_fresh_process(src, out, args.workers)
            print(
                f"{count} utterances: {run['seconds']:.1f} s, {count / run['seconds']:.1f} "
                f"utterances/s, kept {run['kept']}, rejected {run['rejected']}, peak RSS "
                f"{run['peak_rss_kb'] / 1024:.0f} MiB ({os.cpu_count()} CPUs)"
            )
    ratio = runs[args.utterances]["peak_rss_kb"] / runs[args.small]["peak_rss_kb"]
    verdict = "PASS" if ratio <= TARGET_MEMORY_RATIO else "MISS"
    print(f"peak memory {args.utterances} / {args.small}: {ratio:.2f}x  target <= "
          f"{TARGET_MEMORY_RATIO}  {verdict}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
