"""Carousel simulator bench: policies side by side on the full 84,303-file catalogue.

For each workload (researchers' jobs with overlapping queries arriving over
time) it runs demand and rotation (with the keep-or-release rule, the
simulator's default), naive, and for comparison demand and rotation without
keeping and demand with a plain 2-day lease. Per run it prints restore
amplification (bytes restored / unique bytes needed), cost (retrieval,
staging) and cost against two lower bounds, peak staged bytes, job completion
(median, p95), the simulation's wall time and the planning step's median / max
time. The bounds (`carousel.cost.need_lower_bound`): "floor" = each needed byte
restored once at the tier and staged one day (valid for every schedule);
"prompt" = every job served from its arrival, per file the cheaper of keeping
the copy across a gap between two needs or restoring it again (ignores
latency and the window, so a lower bound for schedules that do not hold jobs
back); and amplification 1 with prompt service, with the staged bytes it needs
at once. Then one planning step over the full catalogue with a heavy
snapshot, per policy, and building that snapshot from records (the adapter's
path). Writes a PNG per workload.

    .venv/bin/python bench/bench_simulator.py [--jobs 40] [--out-dir var/bench]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np

from carousel.catalogue import CatalogueArrays, load
from carousel.model import (
    F_ARCHIVED,
    F_FAILED,
    F_INDEXED,
    F_RESTORED,
    F_RESTORING,
    JF_DONE,
    JF_QUEUED,
    JF_RUNNING,
    JF_WAITING,
    JOB_FILE_FROM_CODE,
    FileTable,
    JobFileRecord,
    JobFileTable,
    JobRecord,
    JobTable,
    Snapshot,
)
from carousel.planner import DAY_S, HOUR_S, PlannerConfig, Policy, plan
from carousel.plot import plot
from carousel.simulator import EPOCH, TB, SimConfig, SimResult, make_workload, simulate

GOAL_AMPLIFICATION = 1.01
PB = 10**15


def _fmt_days(seconds: float) -> str:
    return f"{seconds / DAY_S:5.1f} d"


def report(name: str, results: dict[str, SimResult], window_bytes: int) -> None:
    """One line per policy run, side by side, then the bounds they are measured against."""
    any_result = next(iter(results.values()))
    bound = any_result.need_bound
    assert bound is not None
    print(
        f"\n== workload {name}: {any_result.jobs} jobs, {any_result.unique_files_needed} unique files "
        f"({any_result.unique_bytes_needed / TB:.0f} TB) needed, window {window_bytes / TB:.0f} TB =="
    )
    print(
        f"{'policy':24} {'amplif.':>7} {'cost $':>8} {'retriev.':>8} {'staging':>8} {'x prompt':>8} {'x floor':>7} "
        f"{'peak TB':>7} {'median':>7} {'p95':>7} {'done':>4} {'sim s':>6} {'step ms med/max':>15}"
    )
    for label, r in results.items():
        steps_ms = np.array(r.step_s) * 1000 if r.step_s else np.zeros(1)
        print(
            f"{label:24} {r.amplification:7.3f} {r.cost.total:8.2f} {r.cost.retrieval:8.2f} {r.cost.staging:8.2f} "
            f"{r.cost.total / r.prompt_bound.total:8.3f} {r.cost.total / r.lower_bound.total:7.2f} "
            f"{r.peak_staged_bytes / TB:7.1f} {_fmt_days(r.median_completion_s):>7} "
            f"{_fmt_days(r.p95_completion_s):>7} {r.jobs_completed:4d} {r.wall_s:6.1f} "
            f"{np.median(steps_ms):7.0f}/{steps_ms.max():<7.0f}"
        )
        bad = {k: v for k, v in r.violations.items() if v}
        if bad:
            print(f"  !! invariant violations: {bad}")
    amp_prompt = bound.prompt_restored_bytes / any_result.unique_bytes_needed
    print(
        f"  bounds: floor (each byte restored once, staged 1 day; jobs may wait for each other) "
        f"${bound.floor.total:.2f}\n"
        f"          prompt (each job served from its arrival; per file keep across a gap or restore again, "
        f"whichever is cheaper) ${bound.prompt.total:.2f}, its amplification {amp_prompt:.3f}\n"
        f"          amplification 1 with prompt service: ${bound.once.total:.2f} "
        f"({bound.once.total / bound.prompt.total:.2f}x prompt), holding {bound.once_peak_bytes / TB:.0f} TB at once "
        f"({'fits' if bound.once_peak_bytes <= window_bytes else 'does not fit'} the window)"
    )
    for label, r in results.items():
        if label.split()[0] in (Policy.DEMAND.value, Policy.ROTATION.value) and "(" not in label:
            verdict = "meets" if r.amplification <= GOAL_AMPLIFICATION else "misses"
            print(f"  {label}: amplification {r.amplification:.3f} ({verdict} goal <= {GOAL_AMPLIFICATION})")


def heavy_snapshot(catalogue: CatalogueArrays, jobs: int = 40, seed: int = 0) -> Snapshot:
    """Every file of the archive, a full window in flight, `jobs` jobs each over 10% of the archive."""
    rng = np.random.default_rng(seed)
    n = len(catalogue)
    now = EPOCH + 30 * DAY_S
    state = np.full(n, F_ARCHIVED, np.int8)
    window = rng.choice(n, size=6_000, replace=False)
    state[window[:3_000]] = F_RESTORING
    state[window[3_000:5_300]] = F_INDEXED
    state[window[5_300:5_990]] = F_RESTORED
    state[window[5_990:]] = F_FAILED
    requested = np.where(state != F_ARCHIVED, now - rng.uniform(0, 60, n) * HOUR_S, np.nan)
    expiry = np.where((state == F_INDEXED) | (state == F_RESTORED), now + rng.uniform(-6, 40, n) * HOUR_S, np.nan)
    domains = [""] * n
    for i in np.nonzero(state == F_INDEXED)[0]:
        domains[i] = f"/home/bench/basicfusion/{catalogue.names[i]}"
    files = FileTable.build(
        catalogue.names,
        catalogue.orbit,
        catalogue.size,
        keys=catalogue.keys,
        domains=domains,
        state=state,
        requested_at=requested,
        expiry=expiry,
    )
    job_rows, file_rows = [], []
    span = n // 10
    for k in range(jobs):
        lo = int(rng.integers(0, n - span))
        file_rows.append(np.arange(lo, lo + span))
        job_rows.append(np.full(span, k))
    jf_file = np.concatenate(file_rows)
    jf_job = np.concatenate(job_rows)
    jf_state = np.full(len(jf_file), JF_WAITING, np.int8)
    in_window = np.isin(jf_file, window[3_000:5_990])
    jf_state[in_window] = rng.choice([JF_WAITING, JF_QUEUED, JF_RUNNING, JF_DONE], size=int(in_window.sum()))
    job_table = JobTable.build(
        [f"job-{k:03d}" for k in range(jobs)],
        [f"owner-{k % 10:02d}" for k in range(jobs)],
        EPOCH + rng.uniform(27, 30, jobs) * DAY_S,  # recent arrivals: the keep rule is active
    )
    return Snapshot(files, job_table, JobFileTable.build(jf_job, jf_file, jf_state))


def time_step(snapshot: Snapshot, policy: Policy, repeats: int = 5) -> tuple[float, int]:
    config = PlannerConfig(window_bytes=200 * TB, window_files=8_000, policy=policy, keep_s=SimConfig().keep_s)
    now = EPOCH + 30 * DAY_S
    times = []
    actions = 0
    for _ in range(repeats):
        tick = time.perf_counter()
        result = plan(snapshot, now, config)
        times.append(time.perf_counter() - tick)
        actions = len(result)
    return statistics.median(times), actions


def time_from_records(snapshot: Snapshot) -> float:
    files = [snapshot.files.record(i) for i in range(len(snapshot.files))]
    jobs = [
        JobRecord(snapshot.jobs.ids[j], snapshot.jobs.owners[j], float(snapshot.jobs.submitted_at[j]))
        for j in range(len(snapshot.jobs))
    ]
    rows = [
        JobFileRecord(
            snapshot.jobs.ids[snapshot.job_files.job[r]],
            snapshot.files.names[snapshot.job_files.file[r]],
            JOB_FILE_FROM_CODE[int(snapshot.job_files.state[r])],
        )
        for r in range(len(snapshot.job_files))
    ]
    tick = time.perf_counter()
    Snapshot.from_records(files, jobs, rows)
    return time.perf_counter() - tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window-tb", type=float, default=60.0)
    parser.add_argument("--out-dir", default="var/bench")
    args = parser.parse_args()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    tick = time.perf_counter()
    catalogue = load(args.seed)
    print(
        f"catalogue: {len(catalogue)} files, {catalogue.size.sum() / PB:.2f} PB "
        f"(loaded in {time.perf_counter() - tick:.1f} s)"
    )

    workloads = {
        "campaign (arrivals over 4 days)": SimConfig(
            seed=args.seed, jobs=args.jobs, arrival_span_s=4 * DAY_S, window_bytes=int(args.window_tb * TB)
        ),
        "spread (arrivals over 21 days)": SimConfig(
            seed=args.seed, jobs=args.jobs, themes=8, arrival_span_s=21 * DAY_S, window_bytes=int(args.window_tb * TB)
        ),
    }
    longest = 0.0
    for k, (name, config) in enumerate(workloads.items()):
        workload = make_workload(catalogue, config)
        rows = sum(len(j.files) for j in workload)
        print(f"\nworkload {name}: {len(workload)} jobs, {rows} job-files, window {config.window_bytes / TB:.0f} TB")
        no_keep = dataclasses.replace(config, keep_s=0.0)
        runs = {
            "demand": (Policy.DEMAND, config),
            "rotation": (Policy.ROTATION, config),
            "naive": (Policy.NAIVE, config),
            "demand (no keep)": (Policy.DEMAND, no_keep),
            "rotation (no keep)": (Policy.ROTATION, no_keep),
            "demand (no keep, lease 2)": (Policy.DEMAND, dataclasses.replace(no_keep, lease_days=2)),
        }
        results = {label: simulate(catalogue, workload, policy, cfg) for label, (policy, cfg) in runs.items()}
        longest = max(longest, *(r.wall_s for r in results.values()))
        report(name, results, config.window_bytes)
        path = out_dir / f"carousel_simulation_{k}.png"
        plot({Policy(label): r for label, r in results.items() if label in {p.value for p in Policy}}, str(path))
        print(f"  plot: {path}")

    print(f"\nlongest single simulation: {longest:.1f} s (goal < 60 s)")

    snapshot = heavy_snapshot(catalogue)
    print(
        f"\none planning step over the full catalogue: {len(snapshot.files)} files, {len(snapshot.jobs)} jobs, "
        f"{len(snapshot.job_files)} job-files (median of 5; goal < 1 s)"
    )
    for policy in Policy:
        seconds, actions = time_step(snapshot, policy)
        print(f"  {policy.value:9} {seconds * 1000:7.1f} ms  ({actions} actions)")
    print(f"  Snapshot.from_records (adapter path, same size): {time_from_records(snapshot) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
