"""Issue #22: samples per second per core of the radiance job's gridding kernels, old and new, on a full orbit.

    .venv/bin/python bench/bench_gridding.py [--repeat 5] [--old REV | --old-file OLD_science.py | --numpy]

The arrays have the sizes of a `full` orbit (docs/synthetic-data.md) and are synthesized in memory:
- MODIS: 10 descending granules of 2030 x 1354 pixels (a descending swath's lat/lon, sensor zenith
  0..65 degrees across the swath, so ~28 % of the pixels pass vza < 18; angles in hundredths of a
  degree, as MOD03 stores them), 7 VIS bands around the ceiling, some <= 0, 1 % saturated (-992):
  about 50 M samples counted per orbit;
- MISR: 130 daylit blocks of 128 x 512 pixels (65 % pass the geometry test), 4 bands with 2 % NaN and
  values outside (0, 1000): about 20 M samples counted; and the 4x4 aggregation of the 275 m bands
  before it (130 blocks x 4 bands of 512 x 2048: 545 M samples, 13 blocks in memory aggregated 40 times), and
  over the columns the job aggregates (`JOB_COLUMNS`) where both versions take them;
- CERES: 2 M FM1 footprints along the track (about a third taken).

A "sample" is one (pixel, channel) counted in a cell; index rules are rated per pixel indexed, and
`ceres_granule` also per footprint read (most of its work is the mask of every footprint). "old" is
science.py at REV (default: the commit before issue #22), loaded from git, run without the compiled kernels
(native.py: no older science.py had them); with `--numpy`, "old" is the working tree's science.py without them
(its numpy paths); "new" the working tree's with them (if built).
Every kernel runs single-threaded; in each of `--repeat` rounds every kernel runs old then new, or new
then old in every other round (interleaved: neither always gets the freshly faulted-in memory). The
per-core rate is items / process CPU time (user + system); the table gives the median over rounds with
the spread (min-max), and the median user and system seconds.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from inspect import signature
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from batch_jobs.compute_radiance import native, science  # noqa: E402

OLD_REV = "6714eb6"  # main before issue #22's gridding kernels
SCIENCE = "batch_jobs/compute_radiance/science.py"
ROWS, COLS, GRANULES = 2030, 1354, 10
BLOCKS, BLOCK_SHAPE = 130, (128, 512)
AGGREGATED_BLOCKS = 13  # 275 m blocks in memory for misr_aggregate (52 MB); aggregated 40 times = 130 blocks x 4 bands
# The 1.1 km columns the job aggregates (`science.taken_columns`): 336 of 512, the share the geometry test takes in
# every block of a generated full orbit (0.656), centred.
JOB_COLUMNS = slice(88, 424)
FOOTPRINTS = 2_000_000


def synth_modis(seed: int = 0) -> list[dict[str, Any]]:
    """10 descending granules (lat/lon differ; angles and bands shared: the kernels' work does not depend on it)."""
    rng = np.random.default_rng(seed)
    r = np.arange(ROWS, dtype=np.float64)[:, None] / ROWS
    c = np.arange(COLS, dtype=np.float64)[None, :] / COLS - 0.5
    centi = lambda a: (np.rint(a * 100.0) / 100.0).astype(np.float32)  # noqa: E731 (MOD03: int16 hundredths)
    vza = centi(np.abs(130.0 * c + 0.0 * r))
    sza = centi(20 + 68 * r + 3 * c)  # the last rows pass 89 degrees (night edge)
    rs = rng.uniform(0.01, 0.03, 7).astype(np.float32)
    fs = rng.uniform(4e-5, 6e-5, 7).astype(np.float32)
    ceiling = (np.float32(32767) * rs).astype(np.float32)
    bands = (ceiling[:, None, None] * rng.uniform(-0.05, 1.02, (7, ROWS, COLS))).astype(np.float32)
    bands[1:][rng.random((6, ROWS, COLS)) < 0.01] = np.float32(-992.0)
    granules = []
    for k in range(GRANULES):
        lat = 80 - 17 * k - 18.5 * r + 0.4 * c
        lon = -100 + 2 * k + 23 * c / np.maximum(np.cos(np.radians(lat)), 0.2)
        granules.append({"lat": lat.astype(np.float32), "lon": lon.astype(np.float32), "sza": sza, "vza": vza,
                         "bands": bands, "radiance_scales": rs, "reflectance_scales": fs})  # fmt: skip
    return granules


def synth_misr(seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    line = np.arange(BLOCKS * BLOCK_SHAPE[0], dtype=np.float64).reshape(BLOCKS, BLOCK_SHAPE[0], 1)
    j = np.arange(BLOCK_SHAPE[1], dtype=np.float64).reshape(1, 1, -1) / BLOCK_SHAPE[1] - 0.5
    lat = 75 - 150 * line / line.size + 0.3 * j
    lon = -95 + 0.01 * line / BLOCK_SHAPE[0] + 5 * j / np.maximum(np.cos(np.radians(lat)), 0.2)
    mask = np.broadcast_to(line < 0.65 * line.size, lat.shape).copy()
    rad = rng.uniform(-10, 1100, (4, BLOCKS, *BLOCK_SHAPE)).astype(np.float32)
    rad[rng.random(rad.shape) < 0.02] = np.nan
    rad_275m = rng.uniform(-10, 1100, (AGGREGATED_BLOCKS, 4 * BLOCK_SHAPE[0], 4 * BLOCK_SHAPE[1])).astype(np.float32)
    rad_275m[rng.random(rad_275m.shape) < 0.02] = np.nan
    return {"lat": lat.astype(np.float32), "lon": lon.astype(np.float32), "mask": mask, "rad": rad,
            "rad_275m": rad_275m}  # fmt: skip


def synth_ceres(seed: int = 2) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, FOOTPRINTS)
    lat = 80 - 160 * t + rng.uniform(-4, 4, FOOTPRINTS)
    return {
        "time": 2457373.0 + t / 15,
        "lat": lat,
        "lon": -95 + 40 * np.sin(7 * t) / np.maximum(np.cos(np.radians(lat)), 0.2) + rng.uniform(-4, 4, FOOTPRINTS),
        "sw": rng.uniform(-50, 1100, FOOTPRINTS).astype(np.float32),
        "lw": rng.uniform(100, 400, FOOTPRINTS).astype(np.float32),
        "mode_flags": rng.integers(0, 3, FOOTPRINTS).astype(np.int8),
        "sza": rng.uniform(0, 100, FOOTPRINTS).astype(np.float32),
        "vza": rng.uniform(0, 40, FOOTPRINTS).astype(np.float32),
    }


def kernels(
    s: ModuleType, modis: list[dict[str, Any]], misr: dict[str, Any], ceres: dict[str, Any]
) -> dict[str, Callable[[], int]]:
    """name -> a call returning the items it handled (samples counted, or pixels indexed)."""
    grid = s.Grid()
    acc_modis, acc_misr, acc_ceres = s.Accumulator(grid, 7), s.Accumulator(grid, 4), s.Accumulator(grid, 1)
    cells = s.misr_cells(misr["mask"], misr["lat"], misr["lon"], grid)
    taken = [s.modis_pixel_mask(g["lat"], g["lon"], g["sza"], g["vza"], grid=grid, vza_max=18.0)[0] for g in modis]
    modis_lat = np.concatenate([g["lat"].ravel()[t] for g, t in zip(modis, taken, strict=True)])
    modis_lon = np.concatenate([g["lon"].ravel()[t] for g, t in zip(modis, taken, strict=True)])
    misr_lat, misr_lon = misr["lat"].ravel()[cells.pixel], misr["lon"].ravel()[cells.pixel]
    t0, t1 = float(ceres["time"][0]), float(ceres["time"][-1])

    def counted(acc: Any, run: Callable[[], object]) -> int:
        before = int(acc.count.sum())
        run()
        return int(acc.count.sum()) - before

    def modis_orbit() -> int:
        return counted(acc_modis, lambda: [s.modis_granule(acc_modis, **g) for g in modis])

    def misr_orbit() -> int:
        def run() -> None:
            found = s.misr_cells(misr["mask"], misr["lat"], misr["lon"], grid)
            for ch in range(4):
                s.misr_band(acc_misr, ch, found, misr["rad"][ch])

        return counted(acc_misr, run)

    def misr_aggregate() -> int:
        rad = misr["rad_275m"]
        into = (
            {"out": np.empty((len(rad), *BLOCK_SHAPE), np.float32)}
            if "out" in signature(s.misr_aggregate).parameters
            else {}
        )
        for _ in range(40):
            s.misr_aggregate(rad, BLOCK_SHAPE, **into)
        return 40 * rad.size

    def misr_aggregate_columns() -> int:
        rad = misr["rad_275m"]
        out = np.empty((len(rad), *BLOCK_SHAPE), np.float32)
        for _ in range(40):
            s.misr_aggregate(rad, BLOCK_SHAPE, out=out, columns=JOB_COLUMNS)
        return 40 * rad.size * (JOB_COLUMNS.stop - JOB_COLUMNS.start) // BLOCK_SHAPE[1]

    # every representation the module's MisrCells takes, made before the timing (pixel runs since issue #22)
    known = {"pixel": cells.pixel, "cells": cells.cells} | ({"runs": cells.runs} if hasattr(cells, "runs") else {})

    def misr_bands() -> int:
        found = s.MisrCells(**known)  # as the job: one MisrCells for the 4 bands
        return counted(acc_misr, lambda: [s.misr_band(acc_misr, ch, found, misr["rad"][ch]) for ch in range(4)])

    return {
        "MODIS: modis_granule x10": modis_orbit,
        "MISR: misr_cells + misr_band x4": misr_orbit,
        "CERES: ceres_granule": lambda: counted(acc_ceres, lambda: s.ceres_granule(acc_ceres, ceres, t0=t0, t1=t1)),
        "  ceres_granule (footprints)": lambda: [s.ceres_granule(acc_ceres, ceres, t0=t0, t1=t1), FOOTPRINTS][1],
        "  misr_band x4": misr_bands,
        "  misr_cells (pixels)": lambda: s.misr_cells(misr["mask"], misr["lat"], misr["lon"], grid).cells.size,
        "  modis_ceres_index (pixels)": lambda: s.modis_ceres_index(modis_lat, modis_lon, grid)[0].size,
        "  misr_index (pixels)": lambda: s.misr_index(misr_lat, misr_lon, grid)[0].size,
        "MISR 4x4 aggregation (275 m samples)": misr_aggregate,
    } | (  # the job's path since the aggregation takes columns (an older science.py has no such row)
        {"  the job's columns only (samples)": misr_aggregate_columns}
        if "columns" in signature(s.misr_aggregate).parameters
        else {}
    )


def without_library(table: dict[str, Callable[[], int]]) -> dict[str, Callable[[], int]]:
    """The same calls with the compiled kernels off: each caller takes its numpy path."""

    def numpy_only(run: Callable[[], int]) -> int:
        library, native.KERNELS = native.KERNELS, None
        try:
            return run()
        finally:
            native.KERNELS = library

    return {name: functools.partial(numpy_only, run) for name, run in table.items()}


def load_rev(rev: str) -> ModuleType:
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{SCIENCE}"], check=True, capture_output=True)
    with tempfile.NamedTemporaryFile("wb", suffix=".py", delete=False) as f:
        f.write(text.stdout)
    try:
        return load_file(Path(f.name), f"science_old_{rev}")
    finally:
        os.unlink(f.name)


def load_file(path: Path, name: str = "science_old") -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


Row = tuple[int, float, float, float]  # items, user s, system s, wall s


def measure(runs: dict[str, dict[str, Callable[[], int]]], repeat: int) -> dict[tuple[str, str], list[Row]]:
    out: dict[tuple[str, str], list[Row]] = {}
    names = list(dict.fromkeys(name for table in runs.values() for name in table))
    for round_ in range(repeat):
        for name in names:
            for label, table in list(runs.items())[:: 1 if round_ % 2 == 0 else -1]:
                if name not in table:
                    continue
                t, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                n = table[name]()
                u = resource.getrusage(resource.RUSAGE_SELF)
                out.setdefault((name, label), []).append(
                    (n, u.ru_utime - t.ru_utime, u.ru_stime - t.ru_stime, time.perf_counter() - wall)
                )
    return out


def report(results: dict[tuple[str, str], list[Row]], labels: list[str]) -> None:
    head = f"{'kernel':34} {'impl':4} {'items':>11} {'M items/s per core: median (min-max)':>37}"
    print(f"{head} {'user s':>7} {'sys s':>6} {'wall s':>7}")
    for (name, label), rows in results.items():
        n = rows[0][0]
        rates = sorted(n / max(r[1] + r[2], 1e-9) / 1e6 for r in rows)
        spread = f"{statistics.median(rates):8.1f} ({rates[0]:.1f}-{rates[-1]:.1f})"
        user, system = statistics.median(r[1] for r in rows), statistics.median(r[2] for r in rows)
        print(f"{name:34} {label:4} {n:>11,} {spread:>37} {user:7.3f} {system:6.3f} "
              f"{statistics.median(r[3] for r in rows):7.3f}")  # fmt: skip
    if len(labels) == 2:
        print("\nspeed-up (median CPU s, old / new):")
        for name in dict.fromkeys(n for n, _ in results):
            if any((name, lab) not in results for lab in labels):
                continue
            old, new = (statistics.median(r[1] + r[2] for r in results[(name, lab)]) for lab in labels)
            print(f"  {name:34} {old / new:5.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--old", default=OLD_REV, help=f"git revision of the old science.py (default {OLD_REV})")
    ap.add_argument("--old-file", type=Path, help="an older science.py, instead of --old")
    ap.add_argument("--numpy", action="store_true", help="old: the working tree's science.py, compiled kernels off")
    ap.add_argument("--new-only", action="store_true", help="time the working tree's kernels only")
    args = ap.parse_args()
    started = time.perf_counter()
    modis, misr, ceres = synth_modis(), synth_misr(), synth_ceres()
    print(f"synthesized in {time.perf_counter() - started:.1f} s; load average {os.getloadavg()}")
    runs = {}
    print(f"compiled kernels: {'on' if native.KERNELS is not None else 'not built'} in new, off in old")
    if args.numpy:
        runs["old"] = without_library(kernels(science, modis, misr, ceres))
    elif not args.new_only:
        old = load_file(args.old_file) if args.old_file is not None else load_rev(args.old)
        runs["old"] = without_library(kernels(old, modis, misr, ceres))
    runs["new"] = kernels(science, modis, misr, ceres)
    report(measure(runs, args.repeat), list(runs))
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
