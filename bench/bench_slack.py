"""Carousel slack bench: the cost-latency curve when researchers state a slack (a deadline per job).

For the campaign and spread workloads (the same as `bench_simulator.py`: 40 jobs, 60 TB window, Bulk,
1-day lease) it runs the demand policy with every job's deadline = its arrival + slack, over a sweep of
slack values, with the keep-or-release rule off and on, plus the prompt runs (no deadline: today's
behaviour). Per run: cost, cost against the floor and the prompt bound, restore amplification, median
and p95 job completion, jobs finishing after their deadline (and the worst of them), and how many jobs
the prompt run with the same keep setting itself finishes later than that slack: a slack shorter than
the prompt service time cannot be met by holding back (those jobs are released at once). Then one
planning step over the full catalogue with deadlines (median and range of 7). Writes the curve (cost
against p95 completion, with the floor and the prompt bound).

    .venv/bin/python bench/bench_slack.py [--slacks 3,5,7,10,14,17,21,28] [--plot docs/images/carousel-slack.png]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np
from bench_simulator import heavy_snapshot  # a sibling script: run as bench/bench_slack.py

from carousel.catalogue import CatalogueArrays, load
from carousel.model import Snapshot
from carousel.planner import DAY_S, PlannerConfig, Policy, plan
from carousel.plot import SlackCurve, plot_slack
from carousel.simulator import EPOCH, TB, SimConfig, SimResult, make_workload, simulate

GOAL_X_FLOOR = 1.5
GOAL_AMPLIFICATION = 1.3


def _late(count: int, worst_s: float) -> str:
    return f"{count} ({worst_s / DAY_S:.1f} d)" if count else "0"


def _row(label: str, r: SimResult, prompt: tuple[int, float] | None) -> str:
    before = "-" if prompt is None else _late(*prompt)
    return (
        f"{label:18} {r.cost.total:8.0f} {r.cost.total / r.lower_bound.total:7.2f} "
        f"{r.cost.total / r.prompt_bound.total:8.3f} {r.amplification:7.3f} {r.median_completion_s / DAY_S:7.1f} "
        f"{r.p95_completion_s / DAY_S:6.1f} {_late(r.jobs_late, r.max_late_s):>12} {before:>12} "
        f"{r.jobs_completed:4d} {r.wall_s:6.1f}" + (f"  !! {r.violations}" if any(r.violations.values()) else "")
    )


def sweep(
    catalogue: CatalogueArrays, name: str, config: SimConfig, slacks: list[float], policy: Policy
) -> tuple[SlackCurve, list[str]]:
    """Prompt runs, then the slack runs (keep off, keep on); the table's lines and the curve."""
    workload = make_workload(catalogue, config)
    no_keep = dataclasses.replace(config, keep_s=0.0)
    prompt = {"keep off": simulate(catalogue, workload, policy, no_keep)}
    prompt["keep on"] = simulate(catalogue, workload, policy, config)
    base = prompt["keep off"]
    lines = [
        f"\n== {name}: {base.jobs} jobs, {base.unique_bytes_needed / TB:.0f} TB needed; "
        f"floor ${base.lower_bound.total:.0f}, prompt bound ${base.prompt_bound.total:.0f} ==",
        f"{'slack':18} {'cost $':>8} {'x floor':>7} {'x prompt':>8} {'amplif.':>7} {'median':>7} {'p95 d':>6} "
        f"{'late (max)':>12} {'prompt late':>12} {'done':>4} {'sim s':>6}",
    ]
    series: dict[str, list[tuple[str, SimResult]]] = {}
    for keep, r in prompt.items():
        lines.append(_row(f"none (prompt) {keep[5:]}", r, None))
        series[f"{policy.value}, keep {keep[5:]}"] = [("prompt", r)]
    for slack in slacks:
        for keep, cfg in (("keep off", no_keep), ("keep on", config)):
            over = [c - slack * DAY_S for c in prompt[keep].completion_s if c > slack * DAY_S]
            prompt_late = (len(over), max(over, default=0.0))
            run_cfg = dataclasses.replace(cfg, slack_s=slack * DAY_S)
            r = simulate(catalogue, make_workload(catalogue, run_cfg), policy, run_cfg)
            lines.append(_row(f"{slack:4.0f} d, {keep}", r, prompt_late))
            series[f"{policy.value}, keep {keep[5:]}"].append((f"{slack:.0f} d", r))
    for label, runs in series.items():
        for slack_label, r in runs[1:]:
            x_floor = r.cost.total / r.lower_bound.total
            if x_floor <= GOAL_X_FLOOR and r.amplification <= GOAL_AMPLIFICATION and r.jobs_late == 0:
                lines.append(
                    f"  goal met ({label}): slack {slack_label}: {x_floor:.2f} x floor, amplification "
                    f"{r.amplification:.3f}, no job late"
                )
                break
    curve = SlackCurve(name, base.lower_bound.total, base.prompt_bound.total, series)
    return curve, lines


def with_deadlines(snapshot: Snapshot, slack_s: float) -> Snapshot:
    """The heavy snapshot with a deadline on every other job (arrival + slack)."""
    jobs = snapshot.jobs
    deadline = np.where(np.arange(len(jobs)) % 2 == 0, jobs.submitted_at + slack_s, np.nan)
    table = dataclasses.replace(jobs, deadline=deadline)
    return snapshot.replace(jobs=table)


def time_steps(snapshot: Snapshot, policy: Policy, repeats: int = 7) -> tuple[float, float, float, int]:
    config = PlannerConfig(window_bytes=200 * TB, window_files=8_000, policy=policy)
    now = EPOCH + 30 * DAY_S
    times, actions = [], 0
    for _ in range(repeats):
        tick = time.perf_counter()
        actions = len(plan(snapshot, now, config))
        times.append(time.perf_counter() - tick)
    return statistics.median(times), min(times), max(times), actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window-tb", type=float, default=60.0)
    parser.add_argument("--slacks", default="3,5,7,10,14,17,21,28", help="slack values in days, comma-separated")
    parser.add_argument("--policy", default=Policy.DEMAND.value, choices=[Policy.DEMAND.value, Policy.ROTATION.value])
    parser.add_argument("--plot", default="var/bench/carousel-slack.png")
    args = parser.parse_args()
    slacks = [float(s) for s in args.slacks.split(",") if s]
    catalogue = load(args.seed)
    window = int(args.window_tb * TB)
    workloads = {
        "campaign (arrivals over 4 days)": SimConfig(
            seed=args.seed, jobs=args.jobs, arrival_span_s=4 * DAY_S, window_bytes=window
        ),
        "spread (arrivals over 21 days)": SimConfig(
            seed=args.seed, jobs=args.jobs, themes=8, arrival_span_s=21 * DAY_S, window_bytes=window
        ),
    }
    curves = []
    for name, config in workloads.items():
        curve, lines = sweep(catalogue, name, config, slacks, Policy(args.policy))
        print("\n".join(lines), flush=True)
        curves.append(curve)
    out = Path(args.plot)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_slack(curves, out)
    print(f"\nplot: {out}")

    snapshot = heavy_snapshot(catalogue)
    print(
        f"\none planning step over the full catalogue ({len(snapshot.files)} files, {len(snapshot.job_files)} "
        "job-files; median [min-max] of 7; goal < 1 s):"
    )
    cases = (("no deadlines", snapshot), ("half the jobs with 14 d slack", with_deadlines(snapshot, 14 * DAY_S)))
    for label, snap in cases:
        for policy in (Policy.DEMAND, Policy.ROTATION):
            med, lo, hi, actions = time_steps(snap, policy)
            print(
                f"  {label:30} {policy.value:9} {med * 1000:7.1f} ms [{lo * 1000:.0f}-{hi * 1000:.0f}] "
                f"({actions} actions)"
            )


if __name__ == "__main__":
    main()
