"""`datacarousel up` / `down` on a machine whose every core is busy with another process.

    .venv/bin/python bench/bench_up_under_load.py [--runs 10] [--load N] [--timeout 60] [--stack-file stack.py]

Starts `--load` (default: one per core) busy-loop processes, then runs `up` and `down`
(`workbench.local.environment`, a fresh temporary state directory each time) `--runs` times and
prints each start-up time, how many attempts `up` needed (it retries a start that failed, up to
`environment.START_ATTEMPTS`), the successes out of runs, the median and the spread. A failed
start-up prints its message. The load processes are stopped by PID at the end, also on an
error or Ctrl-C. No assertion: the machine is shared, read the numbers, not limits.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.local import environment
from workbench.local.errors import LocalEnvironmentError
from workbench.local.process import busy_loops


@dataclass
class Run:
    ok: bool
    up_s: float
    down_s: float
    attempts: int
    hsds_s: float = float("nan")
    error: str = ""


class _AttemptCounter(logging.Handler):
    """Counts `up`'s "start attempt N of M failed" warnings (each is one more attempt)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.failed: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("start attempt"):
            self.failed.append(record.getMessage())


def _one_run(stack_file: Path | None, timeout: float, counter: _AttemptCounter) -> Run:
    counter.failed.clear()
    with tempfile.TemporaryDirectory(prefix="dc-bench-load-") as tmp:
        state = Path(tmp) / "state"
        started = time.perf_counter()
        try:
            env = environment.up(state, stack_file=stack_file, timeout=timeout)
        except LocalEnvironmentError as exc:
            up_s = time.perf_counter() - started
            environment.down(state)  # `up` stopped what it started; this only checks
            kept = Path(tempfile.mkdtemp(prefix="dc-bench-load-logs-"))
            shutil.copytree(state / "logs", kept, dirs_exist_ok=True)
            return Run(False, up_s, 0.0, len(counter.failed) + 1, error=f"{exc} (logs kept in {kept})")
        up_s = time.perf_counter() - started
        attempts = len(counter.failed) + 1
        started = time.perf_counter()
        environment.down(state)
        down_s = time.perf_counter() - started
    return Run(True, up_s, down_s, attempts, hsds_s=env.timings.get("hsds_ready", float("nan")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--load", type=int, default=os.cpu_count() or 1, help="busy-loop processes (default: cores)")
    parser.add_argument("--timeout", type=float, default=60.0, help="`up --timeout`: seconds per readiness wait")
    parser.add_argument(
        "--stack-file",
        type=Path,
        default=Path(os.environ["DC_STACK_FILE"]) if os.environ.get("DC_STACK_FILE") else None,
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    counter = _AttemptCounter()
    logging.getLogger(environment.__name__).addHandler(counter)

    runs: list[Run] = []
    load_before = os.getloadavg()[0]
    with busy_loops(args.load) as pids:
        pid_list = " ".join(map(str, pids))
        print(f"load: {len(pids)} busy-loop processes (pids {pid_list}); load average before {load_before:.1f}")
        for i in range(1, args.runs + 1):
            run = _one_run(args.stack_file, args.timeout, counter)
            runs.append(run)
            state = "ok" if run.ok else "FAILED"
            print(
                f"run {i:>2}: {state:<6} up {run.up_s:6.1f} s  (hsds ready {run.hsds_s:5.1f} s, "
                f"attempts {run.attempts})  down {run.down_s:4.1f} s  load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if run.error:
                print(f"        {run.error}", flush=True)
    ok = [r.up_s for r in runs if r.ok]
    print(f"successes: {len(ok)}/{len(runs)} on {os.cpu_count()} cores, up --timeout {args.timeout:g}")
    if ok:
        spread = f"{min(ok):.1f}..{max(ok):.1f} s" + (f", stdev {statistics.stdev(ok):.1f} s" if len(ok) > 1 else "")
        print(f"up median {statistics.median(ok):.1f} s, spread {spread}")
    retried = sum(1 for r in runs if r.attempts > 1)
    print(f"runs that needed more than one attempt: {retried}")


if __name__ == "__main__":
    main()
