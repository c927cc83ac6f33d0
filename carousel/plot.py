"""The simulator's plots (PNG, Agg): staged bytes and finished jobs over time, one line per policy; and the
cost-latency curve across slack values (`plot_slack`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from carousel.planner import DAY_S, Policy
from carousel.simulator import EPOCH, TB, SimResult


def plot(results: Mapping[Policy, SimResult], path: str | Path) -> None:
    """Write the comparison figure to `path` (no global pyplot state, no display needed)."""
    fig = Figure(figsize=(10, 7))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    for policy, result in results.items():
        days = (np.asarray(result.timeline.t) - EPOCH) / DAY_S
        top.plot(days, np.asarray(result.timeline.staged_bytes) / TB, label=policy.value)
        bottom.plot(days, result.timeline.jobs_done, label=policy.value)
    top.set_ylabel("staged (TB)")
    top.set_title("Data Carousel simulation: staged bytes and finished jobs")
    bottom.set_ylabel("jobs finished")
    bottom.set_xlabel("days")
    top.legend()
    bottom.legend()
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)


@dataclass(frozen=True)
class SlackCurve:
    """One workload's cost-latency curve: runs over slack values (labels), and its two bounds."""

    workload: str
    floor: float  # $: each needed byte restored once, staged one day
    prompt: float  # $: the cheapest schedule serving every job from its arrival
    series: Mapping[str, Sequence[tuple[str, SimResult]]]  # series name -> (slack label, run) in slack order


def plot_slack(curves: Sequence[SlackCurve], path: str | Path) -> None:
    """Cost against p95 job completion across slack values, one panel per workload, with the floor and the
    prompt bound as horizontal lines (PNG, Agg)."""
    fig = Figure(figsize=(6 * len(curves), 5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, curve in zip(axes, curves, strict=True):
        late_shown = False
        for name, runs in curve.series.items():
            x = [r.p95_completion_s / DAY_S for _, r in runs]
            y = [r.cost.total for _, r in runs]
            (line,) = ax.plot(x, y, marker="o", label=name)
            for (label, r), xi, yi in zip(runs, x, y, strict=True):
                color = line.get_color()
                ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)
                if r.jobs_late:
                    mark = None if late_shown else "jobs late"
                    ax.plot([xi], [yi], marker="x", markersize=9, color="red", label=mark)
                    late_shown = True
        ax.axhline(curve.prompt, linestyle=":", color="black", label=f"prompt bound ${curve.prompt:,.0f}")
        ax.axhline(curve.floor, linestyle="--", color="grey", label=f"floor ${curve.floor:,.0f}")
        ax.set_title(f"{curve.workload} (point labels: slack)", fontsize=10)
        ax.set_xlabel("p95 job completion (days)")
        ax.set_ylabel("cost ($)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
