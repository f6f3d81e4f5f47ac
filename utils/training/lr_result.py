"""The learning-rate finder's result and figure, without the training stack (no torch or
Lightning import): what the UI reads back from `python -m utils.training.lr_find --output`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

PROGRESS_PREFIX = "lr-find step"  # --progress lines on stderr: "lr-find step 3/100"


@dataclass(frozen=True)
class LrFinderResult:
    """The range test: `lrs[i]` (learning rates) and `losses[i]` (smoothed training loss, nats
    per token; NaN where a step gave none) of each optimizer step, and the suggested rate (None
    when too few finite points)."""

    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    suggestion: float | None
    num_steps: int  # steps asked for; len(lrs) is smaller when the loss diverged early

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LrFinderResult:
        """The inverse of `to_dict` (None losses back to NaN); ValueError when malformed."""
        try:
            lrs = tuple(float(v) for v in data["lrs"])
            losses = tuple(math.nan if v is None else float(v) for v in data["losses"])
            suggestion = data["suggestion"]
            suggestion = None if suggestion is None else float(suggestion)
            num_steps = int(data["num_steps"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a learning-rate finder result: {exc}") from exc
        if len(lrs) != len(losses):
            raise ValueError("not a learning-rate finder result: lrs and losses differ in length")
        return cls(lrs, losses, suggestion, num_steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "suggestion": self.suggestion,
            "num_steps": self.num_steps,
            "lrs": list(self.lrs),
            "losses": [loss if math.isfinite(loss) else None for loss in self.losses],
        }


def lr_finder_figure(result: LrFinderResult) -> Any:
    """A plotly Figure: smoothed loss against learning rate (log axis), the suggestion marked."""
    import plotly.graph_objects as go

    figure = go.Figure(
        go.Scatter(x=list(result.lrs), y=list(result.losses), mode="lines", name="loss")
    )
    if result.suggestion is not None:
        figure.add_vline(
            x=math.log10(result.suggestion),
            line_dash="dash",
            annotation_text=f"suggested {result.suggestion:.2e}",
        )
    figure.update_xaxes(type="log", title_text="learning rate")
    figure.update_yaxes(title_text="training loss (smoothed)")
    figure.update_layout(title="Learning-rate finder", showlegend=False)
    return figure
