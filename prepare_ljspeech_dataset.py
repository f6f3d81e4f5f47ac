"""Speech datasets from the command line: import, validate and describe.

  python prepare_ljspeech_dataset.py import --format ljspeech|folder SRC --out DIR [--language am]
  python prepare_ljspeech_dataset.py validate DIR
  python prepare_ljspeech_dataset.py stats DIR [--json]

A relative --out lands under the workspace's datasets/ folder. Exit status 1 when a dataset
could not be read or validation found problems.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from utils.dataset.formats import READERS
from utils.dataset.importing import ImportOptions, build_dataset
from utils.dataset.store import dataset_stats, record_step, validate_dataset


def dataset_dir(path: str) -> Path:
    """An absolute path as given; a bare name under the workspace's datasets/ folder."""
    given = Path(path)
    if given.is_absolute() or given.parent != Path("."):
        return given
    from utils.workspace import get_workspace

    return get_workspace().ensure().datasets / given


def run_import(args: argparse.Namespace) -> int:
    out = dataset_dir(args.out)
    options = replace(ImportOptions(), language=args.language, workers=args.workers)
    items = READERS[args.format](args.source, args.language)
    report = build_dataset(items, out, options, progress=_dots)
    print()
    record_step(
        out,
        {"step": "import", "format": args.format, "source": str(Path(args.source).resolve()),
         "options": {"language": args.language}, "kept": report.kept,
         "rejected": len(report.rejected)},
    )  # fmt: skip
    for problem in report.rejected[:50]:
        print(f"rejected {problem}", file=sys.stderr)
    print(f"{out}: {report.summary()}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    problems = validate_dataset(dataset_dir(args.dir))
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


def run_stats(args: argparse.Namespace) -> int:
    stats = dataset_stats(dataset_dir(args.dir))
    if args.json:
        print(json.dumps(stats.to_dict(), ensure_ascii=False))
    else:
        for key, value in stats.to_dict().items():
            print(f"{key}: {value}")
    return 0


def _dots(done: int) -> None:
    if done % 100 == 0:
        print(f"\r{done} items", end="", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    importer = commands.add_parser("import", help="import a dataset into the canonical layout")
    importer.add_argument("--format", required=True, choices=sorted(READERS))
    importer.add_argument("source")
    importer.add_argument("--out", required=True)
    importer.add_argument("--language", default="am")
    importer.add_argument("--workers", type=int, default=0, help="0: one per CPU")
    importer.set_defaults(run=run_import)
    validate = commands.add_parser("validate", help="check an imported dataset")
    validate.add_argument("dir")
    validate.set_defaults(run=run_validate)
    stats = commands.add_parser("stats", help="size, splits and durations")
    stats.add_argument("dir")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=run_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError) as exc:  # a bad path or manifest: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
