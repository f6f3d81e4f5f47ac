"""Export a model to CTranslate2 and/or ONNX, check each export against its source, register it.

Each export is written into a private staging directory renamed into place only when complete
(`utils.fileops.staged_directory`), so a failure (corrupt source, full disk, Ctrl-C) leaves no
half-written model behind and nothing unfinished is registered. After the parity check each export
is registered with status "ready" or "flagged" and linked into the workspace's models/, where the
Transcribe tab finds it at once.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from optimization.ct2_export import CT2_QUANTIZATIONS, convert_to_ct2
from optimization.heldout_sets import heldout_for
from optimization.parity import ParityReport, ParityRow, parity_check
from optimization.parity_runs import Candidate
from optimization.sources import ExportSource, resolve_source
from utils.fileops import staged_directory
from utils.registry import link_into_models, register_model
from utils.workspace import Workspace, get_workspace

Format = Literal["ct2", "onnx"]
ONNX_PRECISIONS = ("fp32", "int8", "fp16")
EXPORT_INFO = "export.json"  # beside every export: its source, format and precision
PARITY_FILE = "parity.json"  # the comparison table, when the check ran
Progress = Callable[[str, float], None] | None


class ExportError(RuntimeError):
    """An export that could not be written; the message says why and that nothing was kept."""


@dataclass(frozen=True)
class ExportTarget:
    format: Format = "ct2"
    quantization: str = "int8"  # ct2: CT2_QUANTIZATIONS; onnx: ONNX_PRECISIONS

    def __post_init__(self) -> None:
        allowed = {"ct2": CT2_QUANTIZATIONS, "onnx": ONNX_PRECISIONS}.get(self.format)
        if allowed is None:
            raise ValueError(f"format must be 'ct2' or 'onnx', not {self.format!r}")
        if self.quantization not in allowed:
            raise ValueError(
                f"{self.format} quantization {self.quantization!r}: choose one of "
                + ", ".join(allowed)
            )

    @property
    def label(self) -> str:
        return f"{self.format}-{self.quantization}"


@dataclass(frozen=True)
class ExportConfig:
    """What to export and how to check it. Vary with `dataclasses.replace`.

    `out`: with one target, the export directory itself; with several, the directory that
    receives one sub-directory per target. Default: the workspace's exports/."""

    model: str
    targets: tuple[ExportTarget, ...] = (ExportTarget(),)
    out: str | None = None
    eval_dataset: str | None = None  # its test split is the held-out set
    split: str = "test"
    language: str | None = None  # default: the dataset's language, else English speech
    eval_limit: int | None = None  # at most this many held-out utterances
    check: bool = True  # run the parity check
    register: bool = True  # link each export into models/ with its status
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("choose at least one format and quantization")
        if len({t.label for t in self.targets}) != len(self.targets):
            raise ValueError("the same format and quantization is listed twice")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ValueError("eval_limit must be at least 1")


@dataclass(frozen=True)
class ExportResult:
    source: ExportSource
    exports: tuple[Path, ...]  # one directory per target, in order
    registered: tuple[str, ...]  # registry names (empty without `register`)
    report: ParityReport | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": {"name": self.source.name, "path": str(self.source.hf_dir),
                       "description": self.source.description},
            "exports": [str(p) for p in self.exports],
            "registered": list(self.registered),
            "seconds": round(self.seconds, 1),
            "parity": self.report.to_dict() if self.report else None,
        }  # fmt: skip


def _out_dirs(config: ExportConfig, source: ExportSource, workspace: Workspace) -> list[Path]:
    if config.out and len(config.targets) == 1:
        return [Path(config.out).expanduser().resolve()]
    root = Path(config.out).expanduser().resolve() if config.out else workspace.exports
    return [root / f"{source.name}-{t.label}" for t in config.targets]


def _write_export(target: ExportTarget, hf_dir: Path, staging: Path, progress: Progress) -> None:
    if target.format == "ct2":
        convert_to_ct2(hf_dir, staging, target.quantization)
        return
    from optimization.onnx_export import export_onnx

    export_onnx(hf_dir, staging, precision=target.quantization, progress=progress)


def _is_export(path: Path) -> bool:
    return (path / EXPORT_INFO).is_file()


def build_export(
    target: ExportTarget, source: ExportSource, out_dir: Path, progress: Progress = None
) -> Path:
    """Write one export into `out_dir` (which must not exist), all or nothing."""
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists: choose another output directory")
    started = time.perf_counter()
    try:
        with staged_directory(out_dir, _is_export) as staging:
            _write_export(target, source.hf_dir, staging, progress)
            info = asdict(target) | {
                "source": source.description, "source_path": str(source.hf_dir),
                "created": time.time(), "seconds": round(time.perf_counter() - started, 1),
            }  # fmt: skip
            (staging / EXPORT_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ExportError(
                f"the disk filled up while writing {out_dir}: nothing was kept; free "
                f"{_needed(source)} or choose another --out"
            ) from exc
        raise
    return out_dir


def _needed(source: ExportSource) -> str:
    size = sum(f.stat().st_size for f in source.hf_dir.glob("*.safetensors"))
    return f"about {size / 1e6:.0f} MB"


def _register(path: Path, row: ParityRow | None, source: ExportSource, target: ExportTarget,
              workspace: Workspace) -> str:  # fmt: skip
    """Record the export's facts and status beside it and link it into models/."""
    status = "flagged" if row and row.flagged else "ready"
    metrics = {} if row is None else {"parity/wer": row.wer, "parity/cer": row.cer,
                                      "parity/token_agreement": row.token_agreement}  # fmt: skip
    register_model(path, source=f"{target.label} export of {source.description}", status=status,
                   metrics=metrics, flag_reasons=list(row.reasons) if row else [],
                   format=target.format, quantization=target.quantization)  # fmt: skip
    return link_into_models(path, workspace)


def _scaled(progress: Progress, start: float, end: float) -> Progress:
    if progress is None:
        return None
    return lambda what, fraction: progress(what, start + (end - start) * fraction)


def export_models(
    config: ExportConfig, workspace: Workspace | None = None, progress: Progress = None
) -> ExportResult:
    """Resolve the source, build every target, check them together, register them."""
    workspace, started = workspace or get_workspace(), time.perf_counter()
    say = progress or (lambda what, fraction: None)
    say("reading the source model (LoRA adapters merged)", 0.0)
    source = resolve_source(config.model, workspace)
    outs = _out_dirs(config, source, workspace)
    if taken := [str(p) for p in outs if p.exists()]:
        raise FileExistsError(f"{', '.join(taken)} already exists: choose another output directory")
    share = 0.5 if config.check else 0.95
    for index, (target, out) in enumerate(zip(config.targets, outs, strict=True)):
        begin = 0.05 + share * index / len(outs)
        say(f"exporting {target.label}", begin)
        build_export(target, source, out, _scaled(progress, begin, begin + share / len(outs)))
    report = _check(config, source, outs, _scaled(progress, 0.05 + share, 0.97))
    rows = report.rows[1:] if report else [None] * len(outs)
    names = tuple(
        _register(out, row, source, target, workspace)
        for out, row, target in zip(outs, rows, config.targets, strict=True)
    ) if config.register else ()  # fmt: skip
    say("done", 1.0)
    return ExportResult(source, tuple(outs), names, report, time.perf_counter() - started)


def _check(config: ExportConfig, source: ExportSource, outs: list[Path],
           progress: Progress) -> ParityReport | None:  # fmt: skip
    if not config.check:
        return None
    heldout = heldout_for(config.eval_dataset, config.language, config.split, config.eval_limit)
    pairs = zip(outs, config.targets, strict=True)
    candidates = [Candidate(out, out.name, target.quantization) for out, target in pairs]
    report = parity_check(Candidate(source.hf_dir, source.name, "float32"), candidates, heldout,
                          device=config.device, progress=progress)  # fmt: skip
    for out, row in zip(outs, report.rows[1:], strict=True):
        (out / PARITY_FILE).write_text(
            json.dumps({"heldout": report.heldout, "source": asdict(report.rows[0]),
                        "export": asdict(row)}, indent=2), encoding="utf-8")  # fmt: skip
    return report


def _target_of(path: Path) -> ExportTarget:
    """The format and precision an export was written with (export.json, else its files)."""
    try:
        info = json.loads((path / EXPORT_INFO).read_text(encoding="utf-8"))
        return ExportTarget(info["format"], info["quantization"])
    except (OSError, ValueError, KeyError, TypeError):
        if any(path.glob("*.onnx")):
            return ExportTarget("onnx", "fp32")
        return ExportTarget("ct2", "float32")


def check_existing(
    source_reference: str, export_dir: str | os.PathLike, config: ExportConfig,
    workspace: Workspace | None = None, progress: Progress = None,
) -> ParityReport:  # fmt: skip
    """The parity check of an export made elsewhere against `source_reference`; the export's
    registry status follows the result (how a bad export already in the registry gets flagged)."""
    workspace = workspace or get_workspace()
    source, path = resolve_source(source_reference, workspace), Path(export_dir)
    target = _target_of(path)
    heldout = heldout_for(config.eval_dataset, config.language, config.split, config.eval_limit)
    report = parity_check(Candidate(source.hf_dir, source.name, "float32"),
                          [Candidate(path, path.name, target.quantization)], heldout,
                          device=config.device, progress=progress)  # fmt: skip
    if config.register:
        _register(path, report.rows[1], source, target, workspace)
    return report
