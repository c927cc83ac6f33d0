"""Time `up` (until every service is ready) and `down` of the embedded environment.

    .venv/bin/python bench/bench_up_down.py [--runs 3] [--stack-file stack.py] [--dn-count 2]

Each run uses a fresh state directory. Prints per-run times and medians as a table. No
assertion: this machine is shared, so read the numbers next to each other, not as limits.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from datacarousel.local import environment


def _one_run(stack_file: Path | None, dn_count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="dc-bench-") as tmp:
        state = Path(tmp) / "state"
        started = time.perf_counter()
        env = environment.up(state, stack_file=stack_file, dn_count=dn_count)
        up_s = time.perf_counter() - started
        pids = env.pids()
        rss = 0
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                rss += psutil.Process(pid).memory_info().rss
        started = time.perf_counter()
        environment.down(state)
        down_s = time.perf_counter() - started
        left = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if left:
            raise SystemExit(f"processes left after down: {left}")
    return {"up_s": up_s, "down_s": down_s, "processes": float(len(pids)), "rss_mib": rss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dn-count", type=int, default=2)
    parser.add_argument(
        "--stack-file",
        type=Path,
        default=Path(os.environ["DC_STACK_FILE"]) if os.environ.get("DC_STACK_FILE") else None,
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    runs = [_one_run(args.stack_file, args.dn_count) for _ in range(args.runs)]
    load = os.getloadavg()[0]
    print(
        f"embedded environment: {args.runs} runs, {args.dn_count} HSDS data nodes, "
        f"stack {args.stack_file or 'stack.py'}, load average {load:.1f} on {os.cpu_count()} cores"
    )
    header = f"{'run':>6} {'up (s)':>8} {'down (s)':>9} {'processes':>10} {'RSS (MiB)':>10}"
    print(header)
    print("-" * len(header))
    for i, run in enumerate(runs, start=1):
        print(f"{i:>6} {run['up_s']:>8.2f} {run['down_s']:>9.2f} {run['processes']:>10.0f} {run['rss_mib']:>10.0f}")
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"{'median':>6} {med['up_s']:>8.2f} {med['down_s']:>9.2f} {med['processes']:>10.0f} {med['rss_mib']:>10.0f}")
    print(f"up + down median: {med['up_s'] + med['down_s']:.2f} s")


if __name__ == "__main__":
    main()
