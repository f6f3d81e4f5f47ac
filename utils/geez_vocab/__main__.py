"""Build a Ge'ez base model, or report what a model's vocabulary does for Amharic.

python -m utils.geez_vocab build --model NAME_OR_PATH --name NEW_NAME
                                 [--space-variants N] [--json]
python -m utils.geez_vocab report --model NAME_OR_PATH [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from utils.geez_vocab.design import GeezVocabConfig

JSON_KEYS = ("tokens_per_char", "changed_share_non_amharic", "given_up", "special_ids_unchanged")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m utils.geez_vocab", description=__doc__)
    commands = p.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build a Ge'ez base model from a Whisper model")
    build.add_argument("--model", required=True, help="registry name or model directory")
    build.add_argument("--name", required=True, help="name of the new model in the store")
    build.add_argument(
        "--space-variants",
        type=int,
        default=GeezVocabConfig.space_variants,
        help="word-initial characters that also get a token with the space",
    )
    build.add_argument("--seed", type=int, default=GeezVocabConfig.seed)
    build.add_argument("--overwrite", action="store_true", help="replace a model of that name")
    build.add_argument("--json", action="store_true", help="print the report as JSON")
    report = commands.add_parser("report", help="tokens per character, collateral, special ids")
    report.add_argument("--model", required=True, help="registry name or model directory")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    for sub in (build, report):
        sub.add_argument("--corpus-every", type=int, default=1, help=argparse.SUPPRESS)
    return p


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({key: report[key] for key in JSON_KEYS} | report, ensure_ascii=False))
        return
    for key, value in report.items():
        print(f"{key:28} {value:.4f}" if isinstance(value, float) else f"{key:28} {value}")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    from utils.geez_vocab.report import vocabulary_report
    from utils.model_store import ModelNotFoundError

    args = parser().parse_args(argv)
    try:
        if args.command == "build":
            from utils.geez_vocab.build import build_geez_model

            config = GeezVocabConfig(args.space_variants, args.seed, args.corpus_every)
            result = build_geez_model(args.model, args.name, config, overwrite=args.overwrite,
                                      progress=say)  # fmt: skip
            say(f"built {result.ct2_dir} and {result.hf_dir} in {result.seconds:.0f} s")
            args.model = result.name
        report = vocabulary_report(args.model, corpus_every=args.corpus_every)
    except (ModelNotFoundError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_report(report.as_dict(), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
