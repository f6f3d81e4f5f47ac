"""Export benchmark: size on disk, load time and real-time factor on this CPU of the default model
as transformers fp32, CTranslate2 int8 and float32, ONNX fp32 and int8, each as a ratio to
transformers fp32 measured in the same process (the machine is shared and noisy: read ratios).

    python bench/export_bench.py [--clips 16] [--repeats 2] [--workdir DIR] [--json]

Exports are built once into --workdir (default: a temporary directory). Every system decodes
the same real English clips greedily (beam 1, temperature 0, language forced, no VAD), so the
figures compare runtimes, not decoding strategies. WER is printed beside each for sanity.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.scoring import score
from optimization.heldout_sets import HeldoutSet, english_heldout
from optimization.parity_runs import Candidate, open_engine, parity_options
from utils.registry import directory_size

SYSTEMS = (  # name, format, precision
    ("transformers fp32", "transformers", "float32"),
    ("ct2 int8", "ct2", "int8"),
    ("ct2 float32", "ct2", "float32"),
    ("onnx fp32", "onnx", "fp32"),
    ("onnx int8", "onnx", "int8"),
)


@dataclass(frozen=True)
class Figures:
    system: str
    size_bytes: int
    load_seconds: float  # best of the repeats
    rtf: float  # decode seconds per audio second, best of the repeats
    wer: float
    size_ratio: float = 1.0
    load_ratio: float = 1.0
    rtf_ratio: float = 1.0


def build(hf_dir: Path, workdir: Path, fmt: str, precision: str) -> Path:
    """The export of `hf_dir` in `fmt`/`precision`, made once under `workdir`."""
    if fmt == "transformers":
        return hf_dir
    out = workdir / f"{fmt}-{precision}"
    if out.is_dir():
        return out
    staging = workdir / f".{out.name}-staging"
    shutil.rmtree(staging, ignore_errors=True)  # a run interrupted before
    staging.mkdir(parents=True)
    if fmt == "ct2":
        from optimization.ct2_export import convert_to_ct2

        convert_to_ct2(hf_dir, staging, precision)
    else:
        from optimization.onnx_export import export_onnx

        export_onnx(hf_dir, staging, precision=precision)
    staging.rename(out)
    return out


def measure(name: str, path: Path, precision: str, heldout: HeldoutSet, repeats: int) -> Figures:
    options = parity_options(heldout.language)
    loads, rtfs, texts = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        engine = open_engine(Candidate(path, name, precision))
        loads.append(time.perf_counter() - started)
        started = time.perf_counter()
        texts = [engine.transcribe(audio, options).text for audio in heldout.audios]
        rtfs.append((time.perf_counter() - started) / heldout.seconds)
        del engine
        gc.collect()
    wer = score(list(heldout.references), texts, heldout.language, bootstrap=0).wer
    return Figures(name, directory_size(path), min(loads), min(rtfs), wer)


def with_ratios(rows: list[Figures]) -> list[Figures]:
    base = rows[0]
    return [
        Figures(r.system, r.size_bytes, r.load_seconds, r.rtf, r.wer,
                r.size_bytes / base.size_bytes, r.load_seconds / base.load_seconds,
                r.rtf / base.rtf)
        for r in rows
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from utils.ct2_convert import ensure_transformers_model
    from utils.model_store import ensure_default_model

    hf_dir = ensure_transformers_model(ensure_default_model())
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="export-bench-"))
    heldout = english_heldout(args.clips)
    rows = []
    for name, fmt, precision in SYSTEMS:
        path = build(hf_dir, workdir, fmt, precision)
        rows.append(measure(name, path, precision, heldout, args.repeats))
    rows = with_ratios(rows)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    print(
        f"{heldout.n} clips, {heldout.seconds:.0f} s of English speech; ratios to {rows[0].system}"
    )
    print(
        f"{'system':<18} {'MB':>7} {'x':>5} {'load s':>7} {'x':>5} {'RTF':>6} {'x':>5} {'WER %':>6}"
    )
    for r in rows:
        size, load = f"{r.size_bytes / 1e6:7.1f} {r.size_ratio:5.2f}", f"{r.load_seconds:7.2f}"
        speed = f"{r.load_ratio:5.2f} {r.rtf:6.3f} {r.rtf_ratio:5.2f} {r.wer * 100:6.2f}"
        print(f"{r.system:<18} {size} {load} {speed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
