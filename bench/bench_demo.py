"""End-to-end wall time of `datacarousel demo`, and time per stage, at the default size (or another).

    .venv/bin/python bench/bench_demo.py [--runs 1] [--preset tiny] [--orbits N] [-- extra demo options]

Each run is the real command (`datacarousel demo`) in a subprocess, in a fresh state directory, so
it includes bringing the embedded environment up and down. The per-stage times come from the
run's own summary.json. Prints each run and the medians side by side. No assertion: this machine
is shared, so read the numbers next to each other, not as limits.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DATACAROUSEL = str(Path(sys.executable).with_name("datacarousel"))


def one_run(preset: str, orbits: int | None, extra: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dc-bench-demo-") as tmp:
        state, out = Path(tmp) / "state", Path(tmp) / "out"
        argv = [DATACAROUSEL, "demo", "--preset", preset, "--state-dir", str(state), "--out", str(out), *extra]
        if orbits:
            argv += ["--orbits", str(orbits)]
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"demo failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        summary = json.loads((out / "summary.json").read_text())
    stages = dict(summary["stages_s"])
    milestones = {f"carousel @ {k}": v for k, v in summary["carousel_milestones_s"].items() if k != "steps"}
    return {
        "wall_s": wall,
        "stages": stages,
        "milestones": milestones,
        "steps": summary["carousel_milestones_s"].get("steps"),
        "files": summary["files"]["count"],
        "restore_calls": summary["files"]["restore_calls"],
        "demands": summary["files"]["job_file_demands"],
        "bytes": summary["files"]["bytes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--orbits", type=int, default=None)
    parser.add_argument("extra", nargs="*", help="more `datacarousel demo` options (after --)")
    args = parser.parse_args()
    runs = [one_run(args.preset, args.orbits, args.extra) for _ in range(args.runs)]
    first = runs[0]
    print(
        f"datacarousel demo, preset {args.preset}: {first['files']} files ({first['bytes'] / 2**20:.1f} MiB), "
        f"{first['restore_calls']} restore calls for {first['demands']} job-file demands, {args.runs} run(s)"
    )
    names = list(first["stages"]) + list(first["milestones"])
    header = f"{'stage':52s}" + "".join(f"{'run ' + str(i + 1):>10s}" for i in range(len(runs))) + f"{'median':>10s}"
    print(header)
    for name in names:
        values = [r["stages"].get(name, r["milestones"].get(name, float("nan"))) for r in runs]
        cells = "".join(f"{v:10.1f}" for v in values)
        print(f"{name:52s}{cells}{statistics.median(values):10.1f}")
    walls = [r["wall_s"] for r in runs]
    print(f"{'end to end (wall, incl. process start)':52s}" + "".join(f"{w:10.1f}" for w in walls)
          + f"{statistics.median(walls):10.1f}")  # fmt: skip
    steps = [r["steps"] for r in runs]
    print(f"{'carousel steps':52s}" + "".join(f"{s:10d}" for s in steps))


if __name__ == "__main__":
    main()
