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

from workbench.local import environment


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
    return {
        "up_s": up_s,
        "moto_s": env.timings.get("moto_ready", float("nan")),
        "stack_s": env.timings.get("stack", float("nan")),
        "hsds_s": env.timings.get("hsds_ready", float("nan")),
        "down_s": down_s,
        "processes": float(len(pids)),
        "rss_mib": rss / 2**20,
    }


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
    columns = [
        ("up (s)", "up_s", ".2f"),
        ("moto ready", "moto_s", ".2f"),
        ("stack done", "stack_s", ".2f"),
        ("hsds ready", "hsds_s", ".2f"),
        ("down (s)", "down_s", ".2f"),
        ("processes", "processes", ".0f"),
        ("RSS (MiB)", "rss_mib", ".0f"),
    ]
    header = f"{'run':>6} " + " ".join(f"{title:>10}" for title, _, _ in columns)
    print(header)
    print("-" * len(header))
    for i, run in enumerate(runs, start=1):
        print(f"{i:>6} " + " ".join(f"{run[key]:>10{fmt}}" for _, key, fmt in columns))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"{'median':>6} " + " ".join(f"{med[key]:>10{fmt}}" for _, key, fmt in columns))
    print("(moto ready / stack done / hsds ready: seconds from the start of `up`; moto and HSDS start together)")
    print(f"up + down median: {med['up_s'] + med['down_s']:.2f} s")


if __name__ == "__main__":
    main()
