"""Speech datasets from the command line.

  python prepare_ljspeech_dataset.py import --format FORMAT SRC --out DIR [--language am]
      FORMAT: ljspeech, commonvoice, fleurs, kaldi, hf, jsonl, csv or folder; for csv the
      --audio-column, --text-column, --id-column, --speaker-column and --split-column options
      name the header's columns
      --dvc (also on synth and demo): track the dataset with `dvc add` (in a DVC repository)
  python prepare_ljspeech_dataset.py synth --language am --text FILE --out DIR [--voices N] [--limit N]
  python prepare_ljspeech_dataset.py demo --out DIR      (the Amharic demo dataset)
  python prepare_ljspeech_dataset.py validate DIR
  python prepare_ljspeech_dataset.py filter DIR [--min-snr-db X] [--max-seconds X] ...
  python prepare_ljspeech_dataset.py split DIR [--seed N] [--validation X] [--test X]
  python prepare_ljspeech_dataset.py stats DIR [--json]
  python prepare_ljspeech_dataset.py export DIR --out LJSPEECH_DIR [--split S]

A bare name for DIR or --out lands under the workspace's datasets/ folder. Exit status 1 when
a dataset could not be read, validation found problems, or a step was refused.
"""  # noqa: E501 - the usage lines read best unbroken

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from utils.dataset import actions
from utils.dataset.corpora import CsvColumns
from utils.dataset.dvc import DvcUnavailableError, track_with_dvc
from utils.dataset.filtering import FilterOptions, apply_filter
from utils.dataset.formats import READERS
from utils.dataset.importing import ImportOptions, ImportReport
from utils.dataset.splits import SplitOptions, assign_splits
from utils.dataset.store import dataset_stats, validate_dataset

FILTER_FIELDS = ("min_snr_db", "max_clipping_ratio", "min_seconds", "max_seconds",
                 "min_chars_per_second", "max_chars_per_second")  # fmt: skip


def _report(report: ImportReport, out, args: argparse.Namespace) -> int:
    print(file=sys.stderr)
    for problem in report.rejected[:50]:
        print(f"rejected {problem}", file=sys.stderr)
    print(f"{out}: {report.summary()}")
    if args.dvc:
        print(f"tracked with DVC: {track_with_dvc(out)}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    out = actions.dataset_path(args.out)
    options = ImportOptions(language=args.language, workers=args.workers)
    extra = {"columns": csv_columns(args)} if args.format == "csv" else {}
    report = actions.import_dataset(args.format, args.source, out, options, _dots, **extra)
    return _report(report, out, args)


def csv_columns(args: argparse.Namespace) -> CsvColumns:
    """The CSV columns named on the command line."""
    return CsvColumns(
        audio=args.audio_column, text=args.text_column, id=args.id_column,
        speaker=args.speaker_column, split=args.split_column,
    )  # fmt: skip


def run_synth(args: argparse.Namespace) -> int:
    from augmentation.tts import CORPUS, SynthOptions

    text = getattr(args, "text", None) or CORPUS
    options = SynthOptions(language=args.language, voices=args.voices, limit=args.limit,
                           seed=args.seed)  # fmt: skip
    out = actions.dataset_path(args.out)
    return _report(actions.synthesize(text, out, options, _dots), out, args)


def run_validate(args: argparse.Namespace) -> int:
    problems = validate_dataset(actions.dataset_path(args.dir))
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


def run_filter(args: argparse.Namespace) -> int:
    options = FilterOptions(**{name: getattr(args, name) for name in FILTER_FIELDS})
    result = apply_filter(actions.dataset_path(args.dir), options)
    print(json.dumps({"version": result.version.number, **result.counts.to_dict()}))
    return 0


def run_split(args: argparse.Namespace) -> int:
    options = SplitOptions(validation=args.validation, test=args.test, seed=args.seed,
                           keep_existing=not args.reassign)  # fmt: skip
    result = assign_splits(actions.dataset_path(args.dir), options)
    for name, counts in result.splits.items():
        print(f"{name}: {json.dumps(asdict(counts))}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def run_stats(args: argparse.Namespace) -> int:
    stats = dataset_stats(actions.dataset_path(args.dir))
    if args.json:
        print(json.dumps(stats.to_dict(), ensure_ascii=False))
    else:
        for key, value in stats.to_dict().items():
            print(f"{key}: {value}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from utils.dataset.export import export_ljspeech

    count = export_ljspeech(actions.dataset_path(args.dir), args.out, args.split)
    print(f"{args.out}: {count} utterances in LJSpeech layout")
    return 0


def _dots(done: int) -> None:
    if done % 100 == 0:
        print(f"\r{done} items", end="", file=sys.stderr, flush=True)


def _import_parser(commands) -> None:
    importer = commands.add_parser("import", help="import a dataset into the canonical layout")
    importer.add_argument("--format", required=True, choices=sorted(READERS))
    importer.add_argument("source")
    importer.add_argument("--out", required=True)
    importer.add_argument("--language", default="am")
    importer.add_argument("--workers", type=int, default=0, help="0: one per CPU")
    importer.add_argument("--dvc", action="store_true", help="track the result with dvc add")
    for column, default in (("audio", "audio"), ("text", "text"), ("id", ""), ("speaker", ""),
                            ("split", "")):  # fmt: skip
        importer.add_argument(f"--{column}-column", default=default, help="csv only")
    importer.set_defaults(run=run_import)


def _synth_parsers(commands) -> None:
    helps = {"synth": "speak a text file with espeak-ng", "demo": "the Amharic demo dataset"}
    for name, helptext in helps.items():
        parser = commands.add_parser(name, help=helptext)
        if name == "synth":
            parser.add_argument("--text", required=True, help="one sentence per line, or a TSV")
        parser.add_argument("--language", default="am")
        parser.add_argument("--out", required=True)
        parser.add_argument("--voices", type=int, default=4)
        parser.add_argument("--limit", type=int, default=None)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--dvc", action="store_true", help="track the result with dvc add")
        parser.set_defaults(run=run_synth)


def _version_parsers(commands) -> None:
    filters = commands.add_parser("filter", help="drop utterances by quality (new version)")
    filters.add_argument("dir")
    for name in FILTER_FIELDS:
        filters.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float)
    filters.set_defaults(run=run_filter)
    split = commands.add_parser("split", help="speaker-disjoint train/validation/test")
    split.add_argument("dir")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--validation", type=float, default=0.1)
    split.add_argument("--test", type=float, default=0.1)
    split.add_argument("--reassign", action="store_true", help="ignore existing splits")
    split.set_defaults(run=run_split)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _import_parser(commands)
    _synth_parsers(commands)
    _version_parsers(commands)
    for name, helptext in (("validate", "check an imported dataset"),
                           ("stats", "size, splits and durations")):  # fmt: skip
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("dir")
        if name == "stats":
            sub.add_argument("--json", action="store_true")
        sub.set_defaults(run=run_validate if name == "validate" else run_stats)
    export = commands.add_parser("export", help="write back in LJSpeech layout")
    export.add_argument("dir")
    export.add_argument("--out", required=True)
    export.add_argument("--split", default="")
    export.set_defaults(run=run_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError, DvcUnavailableError) as exc:  # one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
