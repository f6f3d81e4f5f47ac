"""The parity check: every export evaluated against its source on the same held-out speech.

One table: WER and CER of each model with the paired bootstrap against the source, agreement of
the greedy tokens and of the detected languages, size on disk, load time and real-time factor.
An export is `flagged` when its WER or CER is significantly worse (paired bootstrap, p < 0.05),
when token or language agreement is under 99%, or when it fails to load or decode.

Agreement is measured against what a correct export must reproduce: the source itself for float
exports; for integer CTranslate2 exports, the source converted by CTranslate2 at the same
quantization (int8 weights change a few greedy tokens by design, see
`parity_runs.ReferenceBuilder`). Accuracy is always compared with the float32 source.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from evaluation.paired import PairedComparison, paired_bootstrap
from evaluation.scoring import score
from optimization.heldout_sets import HeldoutSet
from optimization.parity_runs import (
    Candidate,
    Progress,
    ReferenceBuilder,
    SystemOutput,
    needs_matched_reference,
    run_system,
)
from utils.registry import directory_size

MIN_AGREEMENT = 0.99
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class ParityRow:
    """One model of the table; rates are fractions (NaN when the model could not run).
    `*_delta` = this - source with the paired bootstrap's p-value; None on the source's row."""

    name: str
    kind: str  # transformers, ctranslate2, onnx
    precision: str
    wer: float
    cer: float
    wer_delta: float | None
    wer_p: float | None
    cer_delta: float | None
    cer_p: float | None
    token_agreement: float | None
    language_agreement: float | None
    agreement_reference: str  # what the agreement was measured against
    size_bytes: int
    load_seconds: float
    rtf: float
    status: str  # "source", "ok" or "flagged"
    reasons: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        return self.status == "flagged"


@dataclass(frozen=True)
class ParityReport:
    heldout: str  # description of the held-out set
    language: str
    n: int
    audio_seconds: float
    rows: tuple[ParityRow, ...]  # the source first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def display_rows(self) -> list[dict[str, Any]]:
        """Rows formatted for a table (percent, MB, seconds)."""
        return [_display(row) for row in self.rows]


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "" if value is None else "n/a"
    return f"{value * 100:+.2f}" if signed else f"{value * 100:.2f}"


def _display(row: ParityRow) -> dict[str, Any]:
    p = "" if row.wer_p is None else f" (p={row.wer_p:.3f})"
    return {
        "model": row.name, "format": row.kind, "precision": row.precision,
        "WER %": _pct(row.wer), "Δ WER": _pct(row.wer_delta, True) + p,
        "CER %": _pct(row.cer), "Δ CER": _pct(row.cer_delta, True),
        "token agreement %": _pct(row.token_agreement),
        "language agreement %": _pct(row.language_agreement),
        "size MB": round(row.size_bytes / 1e6, 1), "load s": round(row.load_seconds, 2),
        "RTF": round(row.rtf, 3), "status": row.status, "why": "; ".join(row.reasons),
    }  # fmt: skip


def token_agreement(reference: Sequence[Sequence[int]], other: Sequence[Sequence[int]]) -> float:
    """1 - (token edit distance summed over clips) / (longer sequence's length summed):
    1.0 when every greedy output is identical."""
    from rapidfuzz.distance import Levenshtein

    pairs = list(zip(reference, other, strict=True))
    edits = sum(Levenshtein.distance(list(a), list(b)) for a, b in pairs)
    length = sum(max(len(a), len(b)) for a, b in pairs)
    return 1.0 - edits / length if length else 1.0


def language_agreement(reference: Sequence[str | None], other: Sequence[str | None]) -> float:
    pairs = list(zip(reference, other, strict=True))
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else 1.0


def _flag_reasons(
    tokens: float, languages: float, wer: PairedComparison, cer: PairedComparison
) -> tuple[str, ...]:
    reasons = []
    if tokens < MIN_AGREEMENT:
        reasons.append(f"token agreement {tokens:.1%} < {MIN_AGREEMENT:.0%}")
    if languages < MIN_AGREEMENT:
        reasons.append(f"detected language differs on {1 - languages:.0%} of clips")
    for name, comparison in (("WER", wer), ("CER", cer)):
        if comparison.delta > 0 and comparison.p_value < SIGNIFICANCE:
            reasons.append(f"{name} significantly worse ({comparison.delta * 100:+.2f} points, "
                           f"p={comparison.p_value:.3f})")  # fmt: skip
    return tuple(reasons)


def _common(candidate: Candidate, out: SystemOutput, heldout: HeldoutSet) -> dict[str, Any]:
    return {"name": candidate.name, "kind": out.kind, "precision": candidate.precision,
            "size_bytes": directory_size(candidate.path), "load_seconds": out.load_seconds,
            "rtf": out.decode_seconds / heldout.seconds if heldout.seconds else 0.0}  # fmt: skip


def source_row(candidate: Candidate, out: SystemOutput, heldout: HeldoutSet) -> ParityRow:
    if out.error:
        raise ValueError(f"the source model {candidate.path} does not transcribe: {out.error}")
    scores = score(list(heldout.references), list(out.hypotheses), heldout.language, bootstrap=0)
    return ParityRow(**_common(candidate, out, heldout), wer=scores.wer, cer=scores.cer,
                     wer_delta=None, wer_p=None, cer_delta=None, cer_p=None,
                     token_agreement=None, language_agreement=None, agreement_reference="",
                     status="source")  # fmt: skip


def export_row(
    candidate: Candidate,
    out: SystemOutput,
    heldout: HeldoutSet,
    source: SystemOutput,
    reference: SystemOutput,
    reference_name: str,
) -> ParityRow:
    """The export's row: accuracy against the source, agreement against `reference`."""
    common = _common(candidate, out, heldout)
    if out.error or reference.error:
        why = out.error or f"reference failed: {reference.error}"
        return ParityRow(**common, wer=math.nan, cer=math.nan, wer_delta=None, wer_p=None,
                         cer_delta=None, cer_p=None, token_agreement=0.0,
                         language_agreement=0.0, agreement_reference=reference_name,
                         status="flagged", reasons=(f"does not run: {why}",))  # fmt: skip
    refs, hyps = list(heldout.references), (list(source.hypotheses), list(out.hypotheses))
    wer = paired_bootstrap(refs, *hyps, heldout.language, metric="wer")
    cer = paired_bootstrap(refs, *hyps, heldout.language, metric="cer")
    tokens = token_agreement(reference.tokens, out.tokens)
    languages = language_agreement(reference.languages, out.languages)
    reasons = _flag_reasons(tokens, languages, wer, cer)
    return ParityRow(**common, wer=wer.b, cer=cer.b, wer_delta=wer.delta, wer_p=wer.p_value,
                     cer_delta=cer.delta, cer_p=cer.p_value, token_agreement=tokens,
                     language_agreement=languages, agreement_reference=reference_name,
                     status="flagged" if reasons else "ok", reasons=reasons)  # fmt: skip


def _slot(progress: Progress, index: int, count: int, name: str) -> Progress:
    if progress is None:
        return None
    return lambda what, f: progress(f"{name}: {what}", (index + f) / count)


def parity_check(
    source: Candidate,
    exports: Sequence[Candidate],
    heldout: HeldoutSet,
    *,
    device: str = "cpu",
    progress: Progress = None,
) -> ParityReport:
    """Evaluate `source` (a transformers directory) and each export on `heldout`."""
    count, references = 1 + len(exports), ReferenceBuilder(source.path)
    base = run_system(source, heldout, device, _slot(progress, 0, count, source.name))
    rows = [source_row(source, base, heldout)]
    matched: dict[str, SystemOutput] = {}
    try:
        for index, candidate in enumerate(exports, start=1):
            out = run_system(
                candidate, heldout, device, _slot(progress, index, count, candidate.name)
            )
            reference, reference_name = base, f"{source.name} (float32)"
            if not out.error and needs_matched_reference(out.kind, candidate.precision):
                if candidate.precision not in matched:
                    ref = references.reference(candidate)
                    matched[candidate.precision] = run_system(ref, heldout, device)
                reference = matched[candidate.precision]
                reference_name = f"{source.name} converted to {candidate.precision}"
            rows.append(export_row(candidate, out, heldout, base, reference, reference_name))
    finally:
        references.close()
    return ParityReport(heldout.description, heldout.language, heldout.n, heldout.seconds,
                        tuple(rows))  # fmt: skip
