"""Export a model to CTranslate2 or ONNX, checked against its source on held-out speech.

    python -m optimization.export --model NAME_OR_PATH --format ct2|onnx
        [--quantization float16|int8|int8_float16|...] --out DIR [--eval-dataset DIR]
        [--split test] [--language LANG] [--limit N] [--no-check] [--no-register] [--json]

`--model` takes a registry name, a transformers or CTranslate2 directory, a training run, a LoRA
adapter directory or a Lightning checkpoint (adapters are merged first). `--json` prints the
result with its comparison table. Exit status: 0 when the export passed its parity check, 3 when
it was written but flagged, 2 on an error (nothing is left written or registered then).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from optimization.ct2_export import CT2_QUANTIZATIONS
from optimization.parity import ParityReport
from optimization.pipeline import ONNX_PRECISIONS, ExportConfig, ExportTarget, export_models

DEFAULT_QUANTIZATION = {"ct2": "int8", "onnx": "fp32"}
FLAGGED_EXIT = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m optimization.export", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--model", required=True, help="registry name, model/run/adapter directory or .ckpt"
    )
    parser.add_argument("--format", choices=("ct2", "onnx"), default="ct2")
    parser.add_argument(
        "--quantization",
        choices=sorted({*CT2_QUANTIZATIONS, *ONNX_PRECISIONS}),
        help="ct2: int8 (default), float16, ...; onnx: fp32 (default), int8, fp16",
    )
    parser.add_argument("--out", required=True, help="the export directory (must not exist)")
    parser.add_argument(
        "--eval-dataset",
        help="dataset whose split is the held-out set "
        "(default: real English speech, for English models)",
    )
    parser.add_argument("--split", default="test")
    parser.add_argument("--language", help="held-out language (default: the dataset's, else en)")
    parser.add_argument("--limit", type=int, help="at most this many held-out utterances")
    parser.add_argument("--no-check", action="store_true", help="skip the parity check")
    parser.add_argument("--no-register", action="store_true", help="do not add it to models/")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser  # fmt: skip


def format_table(report: ParityReport) -> str:
    """The comparison table as aligned text."""
    rows = report.display_rows()
    columns = [c for c in rows[0] if c != "why"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    lines += [f"{r['model']}: flagged: {r['why']}" for r in rows if r["status"] == "flagged"]
    return f"held-out: {report.heldout}, {report.audio_seconds:.0f} s\n" + "\n".join(lines)


def _progress(what: str, fraction: float) -> None:
    print(f"[{fraction:4.0%}] {what}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        target = ExportTarget(args.format, args.quantization or DEFAULT_QUANTIZATION[args.format])
        config = ExportConfig(
            model=args.model, targets=(target,), out=args.out, eval_dataset=args.eval_dataset,
            split=args.split, language=args.language, eval_limit=args.limit,
            check=not args.no_check, register=not args.no_register,
        )  # fmt: skip
        result = export_models(config, progress=None if args.json else _progress)
    except (ValueError, LookupError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    flagged = bool(result.report and any(r.flagged for r in result.report.rows))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(f"{result.source.description} -> {result.exports[0]} ({result.seconds:.0f} s)")
        print(format_table(result.report) if result.report else "parity check skipped")
    return FLAGGED_EXIT if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
