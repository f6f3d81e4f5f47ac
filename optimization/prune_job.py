"""One pruning job as the Export tab runs it: prune a source, optionally recover it with a short
fine-tune, measure the accuracy and speed trade-off on held-out speech, register the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from optimization.heldout_sets import heldout_for
from optimization.pruning import (
    PruneOptions,
    PruneReport,
    TradeoffReport,
    calibration_for,
    evaluate_tradeoff,
    prune_model,
    recover,
)
from optimization.sources import resolve_source
from utils.registry import link_into_models, register_model
from utils.workspace import Workspace, get_workspace

Progress = Callable[[str, float], None] | None  # (what, fraction), as the export pipeline


@dataclass(frozen=True)
class PruneJob:
    model: str  # any export source: name, directory, run, adapter, checkpoint
    options: PruneOptions
    out: str | None = None  # default: models/<source>-pruned-...
    eval_dataset: str | None = None  # held-out split for the trade-off; also recovery's data
    split: str = "test"
    language: str | None = None
    eval_limit: int | None = 16
    recover_steps: int = 0  # a short fine-tune on the dataset's train split; 0 = none
    register: bool = True

    def __post_init__(self) -> None:
        if self.recover_steps < 0:
            raise ValueError("recover_steps must be 0 or more")
        if self.recover_steps and not self.eval_dataset:
            raise ValueError("a recovery fine-tune needs a dataset (its train split)")


@dataclass(frozen=True)
class PruneOutcome:
    model_dir: Path  # the pruned (and, with recovery, fine-tuned) transformers model
    report: PruneReport
    tradeoff: TradeoffReport
    registered: str | None


def default_name(source_name: str, options: PruneOptions) -> str:
    parts = [source_name, "pruned"]
    if options.decoder_layers:
        parts.append(f"d{options.decoder_layers}")
    if options.ffn_keep:
        parts.append(f"ffn{round(options.ffn_keep * 100)}")
    return "-".join(parts)


def _stage(progress: Progress, start: float, end: float) -> Callable[[float, str], None] | None:
    """Pruning's (fraction, stage) callbacks mapped into [start, end] of the whole job."""
    if progress is None:
        return None
    return lambda fraction, what: progress(what, start + (end - start) * fraction)


def run_prune_job(
    job: PruneJob, workspace: Workspace | None = None, progress: Progress = None
) -> PruneOutcome:
    workspace = workspace or get_workspace()
    source = resolve_source(job.model, workspace)
    out = Path(job.out) if job.out else workspace.models / default_name(source.name, job.options)
    heldout = heldout_for(job.eval_dataset, job.language, job.split, job.eval_limit)
    # The dataset's train split ranks FFN neurons in its language; without one, English speech.
    clips = calibration_for(job.eval_dataset) if job.eval_dataset else None
    report = prune_model(source.hf_dir, out, job.options, _stage(progress, 0.0, 0.3),
                         calibration=clips)  # fmt: skip
    final = out
    if job.recover_steps:
        recovering = _stage(progress, 0.3, 0.6)
        final = recover(out, job.eval_dataset, max_steps=job.recover_steps,
                        out_runs_dir=workspace.runs, progress=recovering)  # fmt: skip
    items = list(zip(heldout.audios, heldout.references, strict=True))
    tradeoff = evaluate_tradeoff(source.hf_dir, final, items, heldout.language,
                                 _stage(progress, 0.6, 1.0))  # fmt: skip
    name = None
    if job.register:
        pruned, before = tradeoff.pruned, tradeoff.source
        metrics = {"prune/wer": pruned.wer, "prune/cer": pruned.cer,
                   "prune/source_wer": before.wer, "prune/speedup": tradeoff.speedup}  # fmt: skip
        register_model(final, source=f"pruned {source.description}", status="ready",
                       metrics=metrics, pruning=report.to_dict())  # fmt: skip
        name = link_into_models(final, workspace)
    return PruneOutcome(final, report, tradeoff, name)
