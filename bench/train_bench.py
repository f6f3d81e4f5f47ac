"""Does fine-tuning learn Amharic on this CPU, and what does it cost?

    .venv/bin/python bench/train_bench.py learn [--minutes 30] [--json OUT.json]
    .venv/bin/python bench/train_bench.py cost [--steps 6] [--batch-size 2] [--json OUT.json]

`learn`: LoRA fine-tuning of the default base model on the Amharic demo dataset (synthesized
with espeak-ng when missing) within a CPU time budget; before and after, the test split, whose
sentences and voice were never trained on, is transcribed greedily: CER, WER, the share of
Ethiopic letters and repetition loops; the English forgetting check (real asterisk prompts)
comes from the run's metrics. Targets: CER <= 30%, >= 95% Ethiopic, no loops.

`cost`: samples per second and peak memory of LoRA and full fine-tuning, with and without
gradient checkpointing, and our samples per second over a plain PyTorch loop's on the same
model, batches and optimizer (target >= 0.95). See bench/train_cost.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.train_cost import (  # noqa: E402
    CostCase,
    CostFigures,
    measure_in_fresh_process,
    memory_cases,
    ratio_cases,
)

DEMO_NAME = "amharic-demo"
TARGET_CER = 0.30
TARGET_SCRIPT = 0.95
TARGET_RATIO = 0.95
# The recipe is the amharic-low-resource preset (see its comment), for as many steps as fit.
LEARN_PRESET = "amharic-low-resource"
LEARN_OVERRIDES: dict[str, Any] = {"max_steps": 160, "early_stopping_patience": 0,
                                   "checkpoint_every_steps": 50, "num_workers": 2}  # fmt: skip


def demo_dataset(workspace: Any) -> Path:
    """The Amharic demo dataset in `workspace`, synthesized the first time (about 15 s)."""
    from augmentation.tts import CORPUS, SynthOptions
    from utils.dataset import actions

    path = workspace.datasets / DEMO_NAME
    if not (path / "manifest.jsonl").is_file():
        actions.synthesize(CORPUS, path, SynthOptions(language="am"), lambda done: None)
    return path


@dataclass(frozen=True)
class LearnFigures:
    before: dict[str, Any]
    after: dict[str, Any]
    train_seconds: float  # the whole run: training, validations, final validation, export
    steps: int
    english: dict[str, float]
    run_dir: str

    def meets_targets(self) -> bool:
        after = self.after
        return (after["cer"] <= TARGET_CER and after["script_share"] >= TARGET_SCRIPT
                and after["loops"] == 0)  # fmt: skip


def learn(
    minutes: float,
    run_dir: Path,
    workspace: Any = None,
    limit: int | None = None,
    model: str = "whisper-base",
    zero_shot: bool = True,
):
    """Zero-shot figures (unless not `zero_shot`), a LoRA run of `model` stopped by the clock
    after `minutes`, figures after."""
    from lightning.pytorch.callbacks import Timer

    from utils.training.config import preset
    from utils.training.heldout import heldout_report
    from utils.training.model import load_base_model
    from utils.training.run import train
    from utils.workspace import get_workspace

    workspace = workspace or get_workspace()
    dataset = demo_dataset(workspace)
    before: dict[str, Any] = {}
    if zero_shot:
        base = load_base_model(model, workspace)
        before = heldout_report(base.model, base.processor, dataset, limit=limit).to_dict()
        _print_report("zero-shot", before)
        del base
    config = preset(LEARN_PRESET, model=model, dataset=str(dataset), **LEARN_OVERRIDES)
    started = time.perf_counter()
    clock = Timer(duration=datetime.timedelta(minutes=minutes), interval="step")
    result = train(config, run_dir, workspace=workspace, callbacks=[clock])
    seconds = time.perf_counter() - started
    if result.state != "finished":
        raise RuntimeError(f"the training run {result.state}: {result.message}")
    tuned = load_base_model(str(run_dir / "merged"), workspace)
    after = heldout_report(tuned.model, tuned.processor, dataset, limit=limit)
    _print_report("fine-tuned", after.to_dict())
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    english = {k: v for k, v in metrics.items() if k.startswith("english/")}
    return LearnFigures(before, after.to_dict(), seconds,
                        int(metrics.get("step", 0)), english, str(run_dir))  # fmt: skip


def _print_report(title: str, report: dict[str, Any]) -> None:
    print(f"{title}: CER {report['cer']:.1%}  WER {report['wer']:.1%}  "
          f"Ethiopic {report['script_share']:.1%}  loops {report['loops']}/{report['n']}  "
          f"decode {report['decode_seconds']:.0f} s", flush=True)  # fmt: skip
    for reference, hypothesis in report["examples"][:3]:
        print(f"  ref: {reference}\n  hyp: {hypothesis}")


def cost(dataset: Path, steps: int, batch_size: int) -> dict[str, Any]:
    """Ratio against the plain loop (LoRA, best of two each) and the memory table."""
    base = CostCase(str(dataset), "whisper-base", batch_size=batch_size, steps=steps)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [measure_in_fresh_process(c, Path(tmp) / f"r{i}")
                for i, c in enumerate(ratio_cases(base))]  # fmt: skip
        table = [measure_in_fresh_process(c, Path(tmp) / f"m{i}")
                 for i, c in enumerate(memory_cases(base))]  # fmt: skip
    best = {loop: max(f.samples_per_second for f in runs if f.case.loop == loop)
            for loop in ("plain", "lightning")}  # fmt: skip
    ratio = best["lightning"] / best["plain"]
    print(f"samples/s: ours {best['lightning']:.3f}, plain loop {best['plain']:.3f}, "
          f"ratio {ratio:.3f} (target >= {TARGET_RATIO})")  # fmt: skip
    for figures in table:
        _print_cost(figures)
    return {"ratio": ratio, "best": best, "runs": [_cost_row(f) for f in runs],
            "table": [_cost_row(f) for f in table]}  # fmt: skip


def _cost_row(figures: CostFigures) -> dict[str, Any]:
    row = asdict(figures)
    case = row.pop("case")
    return {k: case[k] for k in ("method", "checkpointing", "loop", "batch_size")} | row


def _print_cost(f: CostFigures) -> None:
    checkpointing = "with" if f.case.checkpointing else "without"
    print(f"{f.case.method:>4} {checkpointing:>7} grad checkpointing: "
          f"{f.samples_per_second:.3f} samples/s, {f.seconds_per_step:.2f} s/step, "
          f"peak RSS {f.peak_rss_mb:.0f} MB")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    learn_parser = commands.add_parser("learn", help="LoRA on the demo dataset, CER before/after")
    learn_parser.add_argument(
        "--minutes", type=float, default=27.0, help="training clock (then validation, export)"
    )
    learn_parser.add_argument("--run-dir", type=Path)
    learn_parser.add_argument("--model", default="whisper-base", help="base model to fine-tune")
    learn_parser.add_argument("--no-zero-shot", action="store_true", help="skip the figures before")
    cost_parser = commands.add_parser("cost", help="samples/s and memory, ratio to a plain loop")
    cost_parser.add_argument("--steps", type=int, default=6)
    cost_parser.add_argument("--batch-size", type=int, default=2)
    for p in (learn_parser, cost_parser):
        p.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    from utils.workspace import get_workspace

    if args.command == "learn":
        run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="train-bench-"))
        figures = asdict(learn(args.minutes, run_dir, model=args.model,
                               zero_shot=not args.no_zero_shot))  # fmt: skip
        figures["meets_targets"] = LearnFigures(**figures).meets_targets()
        print(f"run: {figures['steps']} steps in {figures['train_seconds'] / 60:.1f} min; "
              f"English forgetting check: {figures['english']}; targets met: "
              f"{figures['meets_targets']}")  # fmt: skip
    else:
        figures = cost(demo_dataset(get_workspace()), args.steps, args.batch_size)
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
