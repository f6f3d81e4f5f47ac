"""Evaluation metrics for Whisper Studio: the public entry module and command line.

Library use: `score` (corpus WER/CER after language-aware normalization, with bootstrap
intervals), `amharic_rates` (syllable, consonant and vowel error rates, confusion counts),
`paired_bootstrap` (is system B better than A?), `tokens_per_char` / `fits_decoder` (tokenizer
cost). The implementations live in the sibling modules and are re-exported here.

Command line (one utterance per line, UTF-8)::

    python -m evaluation.metrics --ref REF.txt --hyp HYP.txt --lang am [--json]

prints WER and CER with their intervals (and, for Amharic, the syllable figures). Exit status 0
on success, 1 for unusable input (missing or non-UTF-8 file, different line counts, nothing to
score), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluation.alignment import AlignOp, EditCounts, TokenAlignment, align_characters, align_words
from evaluation.amharic_rates import AmharicRates, PhoneErrors, amharic_rates
from evaluation.bootstrap import Interval
from evaluation.confusions import GAP, ConfusionRow, Confusions
from evaluation.normalizers import NORMALIZER_NAMES, NormalizerName, get_normalizer
from evaluation.paired import PairedComparison, paired_bootstrap
from evaluation.results import EmptyReferences, Scores, UtteranceScore
from evaluation.scoring import Metric, score, utterance_scores
from evaluation.token_cost import (
    WHISPER_MAX_TARGET_POSITIONS,
    DecoderBudget,
    count_tokens,
    decoder_budget,
    fits_decoder,
    tokens_per_char,
)

__all__ = [
    "GAP",
    "NORMALIZER_NAMES",
    "WHISPER_MAX_TARGET_POSITIONS",
    "AlignOp",
    "AmharicRates",
    "ConfusionRow",
    "Confusions",
    "DecoderBudget",
    "EditCounts",
    "EmptyReferences",
    "InputError",
    "Interval",
    "Metric",
    "NormalizerName",
    "PairedComparison",
    "PhoneErrors",
    "Scores",
    "TokenAlignment",
    "UtteranceScore",
    "align_characters",
    "align_words",
    "amharic_rates",
    "count_tokens",
    "decoder_budget",
    "fits_decoder",
    "get_normalizer",
    "main",
    "paired_bootstrap",
    "read_lines",
    "score",
    "tokens_per_char",
    "utterance_scores",
]


class InputError(ValueError):
    """An input file that cannot be scored; the message says which and why."""


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (a BOM and CRLF line ends accepted; one final newline
    does not start another utterance). Raises InputError for a missing or non-UTF-8 file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 (invalid byte at offset {error.start})") from None
    # split on newlines only: str.splitlines would also break on U+2028 and friends
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation.metrics",
        description="WER and CER (with bootstrap intervals) of a hypothesis file against a "
        "reference file, one utterance per line.",
    )
    parser.add_argument("--ref", type=Path, required=True, help="reference transcripts")
    parser.add_argument("--hyp", type=Path, required=True, help="hypothesis transcripts")
    parser.add_argument("--lang", required=True, help="language code, e.g. am or en")
    parser.add_argument("--normalizer", choices=NORMALIZER_NAMES, default="auto")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval level (0..1)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--utterances", action="store_true", help="with --json: per-utterance detail"
    )
    return parser


def _maybe_amharic(refs: Sequence[str], hyps: Sequence[str], lang: str) -> AmharicRates | None:
    if lang.strip().lower() != "am":
        return None
    try:
        return amharic_rates(refs, hyps)
    except ImportError as error:  # the syllable tables are optional for plain WER/CER
        print(f"warning: Amharic syllable figures skipped ({error})", file=sys.stderr)
    except ValueError:
        pass  # no Ge'ez syllables in the references: nothing to report
    return None


def _percent(value: float) -> str:
    return f"{100.0 * value:.2f}%"


def _rate_line(name: str, rate: float, interval: Interval | None, edits: EditCounts) -> str:
    ci = (
        ""
        if interval is None
        else (
            f"  [{interval.confidence:.0%} CI {_percent(interval.low)} - {_percent(interval.high)}]"
        )
    )
    detail = (
        f"S={edits.substitutions} D={edits.deletions} I={edits.insertions} "
        f"N={edits.reference_length}"
    )
    return f"{name}: {_percent(rate)}{ci}  ({detail})"


def format_report(scores: Scores, amharic: AmharicRates | None) -> str:
    """The human-readable report printed by the command line."""
    empty = scores.empty_references
    lines = [
        f"utterances: {scores.n} (scored {scores.scored}; normalizer {scores.normalizer})",
        _rate_line("WER", scores.wer, scores.wer_ci, scores.word_edits),
        _rate_line("CER", scores.cer, scores.cer_ci, scores.char_edits),
    ]
    if empty.count:
        lines.append(
            f"empty references: {empty.count} (not scored; hypothesis words there: "
            f"{empty.word_insertions})"
        )
    if amharic is not None:
        lines.append(
            f"syllables: SER {_percent(amharic.syllable_error_rate)}, consonant "
            f"{_percent(amharic.consonant_error_rate)}, vowel {_percent(amharic.vowel_error_rate)}"
            f" over {amharic.syllables} syllables"
        )
    return "\n".join(lines)


def _report_json(scores: Scores, amharic: AmharicRates | None, utterances: bool) -> str:
    data: dict[str, Any] = scores.to_dict(utterances=utterances)
    if amharic is not None:
        data["amharic"] = amharic.to_dict()
    return json.dumps(data, ensure_ascii=False, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    args = _parser().parse_args(argv)
    try:
        refs, hyps = read_lines(args.ref), read_lines(args.hyp)
        if len(refs) != len(hyps):
            raise InputError(
                f"{args.ref} has {len(refs)} lines but {args.hyp} has {len(hyps)}; "
                "they must hold one utterance per line, in the same order"
            )
        scores = score(
            refs,
            hyps,
            args.lang,
            normalizer=args.normalizer,
            confidence=args.confidence,
            bootstrap=args.bootstrap,
            seed=args.seed,
        )
    except (InputError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    amharic = _maybe_amharic(refs, hyps, args.lang)
    print(
        _report_json(scores, amharic, args.utterances)
        if args.json
        else format_report(scores, amharic)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
