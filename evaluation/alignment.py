"""Word and character alignments (through jiwer 4) as typed, immutable results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import jiwer

OpKind = Literal["equal", "substitute", "delete", "insert"]


@dataclass(frozen=True)
class AlignOp:
    """One aligned position: `ref` is None for an insertion, `hyp` is None for a deletion."""

    kind: OpKind
    ref: str | None
    hyp: str | None

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready form."""
        return {"op": self.kind, "ref": self.ref, "hyp": self.hyp}


@dataclass(frozen=True)
class EditCounts:
    """Levenshtein edit counts (in tokens: words or characters) of one or more utterances."""

    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @property
    def errors(self) -> int:
        """Substitutions + deletions + insertions (tokens)."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def reference_length(self) -> int:
        """Reference tokens: hits + substitutions + deletions."""
        return self.hits + self.substitutions + self.deletions

    @property
    def hypothesis_length(self) -> int:
        """Hypothesis tokens: hits + substitutions + insertions."""
        return self.hits + self.substitutions + self.insertions

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(
            self.hits + other.hits,
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
        )

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {
            "hits": self.hits,
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
        }


def sum_counts(counts: Sequence[EditCounts]) -> EditCounts:
    """The element-wise total of `counts` (all zero for an empty sequence)."""
    total = EditCounts()
    for item in counts:
        total = total + item
    return total


@dataclass(frozen=True)
class TokenAlignment:
    """The minimum-edit alignment of one reference/hypothesis token sequence pair."""

    reference: tuple[str, ...]
    hypothesis: tuple[str, ...]
    ops: tuple[AlignOp, ...]
    counts: EditCounts


def _chunk_ops(chunk: jiwer.AlignmentChunk, ref: list[str], hyp: list[str]) -> list[AlignOp]:
    refs = ref[chunk.ref_start_idx : chunk.ref_end_idx]
    hyps = hyp[chunk.hyp_start_idx : chunk.hyp_end_idx]
    if chunk.type == "delete":
        return [AlignOp("delete", r, None) for r in refs]
    if chunk.type == "insert":
        return [AlignOp("insert", None, h) for h in hyps]
    # equal and substitute chunks pair tokens one to one (Levenshtein opcodes never merge 2:1)
    kind: OpKind = "equal" if chunk.type == "equal" else "substitute"
    return [AlignOp(kind, r, h) for r, h in zip(refs, hyps, strict=True)]


def _counts(ops: Sequence[AlignOp]) -> EditCounts:
    kinds = [op.kind for op in ops]
    return EditCounts(
        hits=kinds.count("equal"),
        substitutions=kinds.count("substitute"),
        deletions=kinds.count("delete"),
        insertions=kinds.count("insert"),
    )


def _from_output(
    references: list[list[str]],
    hypotheses: list[list[str]],
    alignments: list[list[jiwer.AlignmentChunk]],
) -> tuple[TokenAlignment, ...]:
    results = []
    for ref, hyp, chunks in zip(references, hypotheses, alignments, strict=True):
        ops = tuple(op for chunk in chunks for op in _chunk_ops(chunk, ref, hyp))
        results.append(TokenAlignment(tuple(ref), tuple(hyp), ops, _counts(ops)))
    return tuple(results)


def align_words(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[TokenAlignment, ...]:
    """Word alignments with jiwer's default word transform (collapse spaces, strip, split on " ").

    One result per pair; references may be empty. Raises ValueError on different lengths.
    """
    _check_lengths(references, hypotheses)
    if not references:
        return ()
    out = jiwer.process_words(list(references), list(hypotheses))
    return _from_output(out.references, out.hypotheses, out.alignments)


def align_characters(
    references: Sequence[str], hypotheses: Sequence[str]
) -> tuple[TokenAlignment, ...]:
    """Character alignments with jiwer's default character transform (strip; spaces count).

    One result per pair; references may be empty. Raises ValueError on different lengths.
    """
    _check_lengths(references, hypotheses)
    if not references:
        return ()
    out = jiwer.process_characters(list(references), list(hypotheses))
    return _from_output(out.references, out.hypotheses, out.alignments)


def align_tokens(
    references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]
) -> tuple[TokenAlignment, ...]:
    """Alignments of pre-split token sequences (tokens must not contain whitespace)."""
    joined_refs = [" ".join(tokens) for tokens in references]
    joined_hyps = [" ".join(tokens) for tokens in hypotheses]
    # jiwer splits on single spaces, so whitespace-free tokens round-trip exactly
    return align_words(joined_refs, joined_hyps)


def _check_lengths(references: Sequence[object], hypotheses: Sequence[object]) -> None:
    if len(references) != len(hypotheses):
        raise ValueError(
            f"references and hypotheses differ in length: {len(references)} references, "
            f"{len(hypotheses)} hypotheses"
        )
