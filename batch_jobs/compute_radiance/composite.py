"""The reducer: orbit results added into a daily or monthly composite ("marble"), mean = sum / count.

A composite keeps the sums and counts (so composites can be added further) and the
means per channel (NaN where a cell has no sample). Every orbit counts once: a
source already in the composite is not added again, so a rerun or a redelivered
result cannot double-count. All inputs must share the same parameters. A composite with any
synthetic orbit in it is synthetic: it carries the generators of its synthetic inputs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from datacarousel.contract import RESULTS_PREFIX
from datacarousel.errors import BadFileName
from datacarousel.naming import BasicFusionName

log = logging.getLogger(__name__)

SUM_TO_COUNT = {
    "modis_rad_sum": "modis_count",
    "modis_sol_sum": "modis_count",
    "misr_rad_sum": "misr_count",
    "ceres_sw_sum": "ceres_count",
    "ceres_lw_sum": "ceres_count",
}
COUNTS = ("modis_count", "misr_count", "ceres_count")
KIND_COMPOSITE = "composite"
# Present (the generator's name and version) in a result of a synthetic orbit file and in any
# composite that has one; absent for real data. Several generators are joined by SYNTHETIC_SEPARATOR.
SYNTHETIC_MARKER = "synthetic"
SYNTHETIC_SEPARATOR = "; "


def mean_name(sum_name: str) -> str:
    return sum_name.replace("_sum", "_mean")


def period_of(source: str, daily: bool) -> str:
    """`YYYY.MM` (monthly) or `YYYY.MM.DD` (daily) of an orbit file or result name, from its start time."""
    base = source.rsplit("/", 1)[-1].replace("CLIMARBLE", "TERRA_BF_L1B", 1)
    if base.endswith(".npz"):
        base = base[: -len(".npz")] + ".h5"
    name = BasicFusionName.parse(base)
    return name.start.strftime("%Y.%m.%d" if daily else "%Y.%m")


class Composite:
    """Running sums and counts over orbit results."""

    def __init__(self, period: str = "") -> None:
        self.period = period
        self.arrays: dict[str, npt.NDArray[Any]] = {}
        self.sources: list[str] = []
        self.parameters: str | None = None
        self.t0 = float("inf")
        self.t1 = float("-inf")
        self.synthetic: set[str] = set()

    def add(self, result: Mapping[str, npt.NDArray[Any]]) -> bool:
        """Add one orbit result (or another composite). Returns False if its sources were already in."""
        params = str(result["parameters"])
        if self.parameters is None:
            self.parameters = params
        elif params != self.parameters:
            raise ValueError(f"parameters differ: {params} vs {self.parameters}")
        sources = [str(s) for s in np.atleast_1d(result["sources"])] if "sources" in result else [str(result["source"])]
        if any(s in self.sources for s in sources):
            log.info("composite %s: %s already included, not added again", self.period, ", ".join(sources))
            return False
        for name in (*SUM_TO_COUNT, *COUNTS):
            data = np.asarray(result[name])
            if name in self.arrays:
                if self.arrays[name].shape != data.shape:
                    raise ValueError(f"{name}: shape {data.shape} differs from {self.arrays[name].shape}")
                self.arrays[name] = self.arrays[name] + data
            else:
                self.arrays[name] = data.astype(np.int64 if name in COUNTS else np.float64, copy=True)
        for coord in ("latitude", "longitude"):
            self.arrays.setdefault(coord, np.asarray(result[coord]))
        t0, t1 = float(result["t0"]), float(result["t1"])
        if np.isfinite(t0):
            self.t0 = min(self.t0, t0)
        if np.isfinite(t1):
            self.t1 = max(self.t1, t1)
        self.sources.extend(sources)
        if SYNTHETIC_MARKER in result and str(result[SYNTHETIC_MARKER]):
            self.synthetic.update(str(result[SYNTHETIC_MARKER]).split(SYNTHETIC_SEPARATOR))
        return True

    def means(self) -> dict[str, npt.NDArray[np.float64]]:
        out = {}
        for sum_name, count_name in SUM_TO_COUNT.items():
            total, count = self.arrays[sum_name], self.arrays[count_name]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[mean_name(sum_name)] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        return out

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        if not self.sources:
            raise ValueError("empty composite: no orbit result was added")
        generators = SYNTHETIC_SEPARATOR.join(sorted(self.synthetic))
        marker = {SYNTHETIC_MARKER: np.array(generators)} if generators else {}
        return {
            **self.arrays,
            **self.means(),
            **marker,
            "kind": np.array(KIND_COMPOSITE),
            "period": np.array(self.period),
            "sources": np.array(sorted(self.sources), dtype=str),
            "n_orbits": np.array(len(self.sources), dtype=np.int64),
            "parameters": np.array(self.parameters or ""),
            "t0": np.array(self.t0 if np.isfinite(self.t0) else np.nan, dtype=np.float64),
            "t1": np.array(self.t1 if np.isfinite(self.t1) else np.nan, dtype=np.float64),
        }


def build(results: Iterable[tuple[str, Mapping[str, npt.NDArray[Any]]]], period: str = "") -> Composite:
    """Composite of the (label, arrays) results whose orbit falls in `period` (all of them if it is empty)."""
    daily = period.count(".") == 2
    comp = Composite(period)
    for label, arrays in results:
        if period:
            try:
                if period_of(str(arrays.get("source", label)), daily) != period:
                    continue
            except BadFileName:
                log.warning("composite %s: %s has no BasicFusion orbit name, left out", period, label)
                continue
        comp.add(arrays)
    return comp


def parameters_of(arrays: Mapping[str, npt.NDArray[Any]]) -> dict[str, Any]:
    return dict(json.loads(str(arrays["parameters"])))


def composite_key_prefix(job_id: str, year_month: str) -> str:
    """Where a job's orbit results of one month are (`naming.result_key` puts them there)."""
    return f"{RESULTS_PREFIX}/{job_id}/{year_month}/"
