"""The carousel's model-based test at length: thousands of random interleavings, with a seed.

    .venv/bin/python bench/bench_carousel_model.py [--examples 2000] [--chunk 50] [--steps 25] [--seed N]

Runs `tests/carousel/integration/test_carousel_model.py` (the machine: `carousel_model.py`) in
chunks of `--chunk` examples, chunk i with hypothesis seed N + i (`make test` runs a small
derandomized profile), and prints a line per chunk: examples so far, seeds, invariant violations
(0, or hypothesis's shrunk failing sequence is printed above with its reproduction blob) and the
wall time. It stops at the first violation; exit status: pytest's.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/carousel/integration/test_carousel_model.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=50, help="examples per pytest run")
    parser.add_argument("--steps", type=int, default=25, help="rules per example (at most)")
    parser.add_argument("--seed", type=int, default=None, help="first hypothesis seed (default: random, printed)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    started = time.perf_counter()
    done = 0
    for index in range((args.examples + args.chunk - 1) // args.chunk):
        count = min(args.chunk, args.examples - done)
        env = {**os.environ, "DC_MODEL_EXAMPLES": str(count), "DC_MODEL_STEPS": str(args.steps)}
        command = [
            sys.executable,
            "-m",
            "pytest",
            TEST,
            "-q",
            "-p",
            "no:cacheprovider",
            f"--hypothesis-seed={seed + index}",
        ]
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        rc = run.returncode
        if rc != 0:  # the shrunk failing sequence and its reproduction blob
            print(run.stdout[-20000:], run.stderr[-5000:], sep="\n")
        done += count
        seconds = time.perf_counter() - started
        verdict = "0 invariant violations" if rc == 0 else "an invariant violated (above)"
        print(
            f"model: {done} examples x <= {args.steps} steps, seeds {seed}..{seed + index}: {verdict}; {seconds:.0f} s",
            flush=True,
        )
        if rc != 0:
            return rc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
