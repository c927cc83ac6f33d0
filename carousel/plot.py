"""The simulator's plot: staged bytes and finished jobs over time, one line per policy (PNG, Agg)."""

from __future__ import annotations

from collections.abc import Mapping
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
