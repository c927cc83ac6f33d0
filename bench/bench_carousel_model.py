"""The carousel's model-based test at length: thousands of random interleavings, with a seed.

    .venv/bin/python bench/bench_carousel_model.py [--examples 2000] [--steps 30] [--seed N]

Runs `tests/carousel/integration/test_carousel_model.py` (the machine: `carousel_model.py`) with
that many examples (`make test` runs a small derandomized profile), and prints one line: examples,
rule steps per example, seed, invariant violations (0, or hypothesis's shrunk failing sequence is
printed above it with its reproduction blob) and the wall time. Exit status: pytest's.
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
    parser.add_argument("--steps", type=int, default=30, help="rules per example (at most)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: a random one, printed)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    env = {**os.environ, "DC_MODEL_EXAMPLES": str(args.examples), "DC_MODEL_STEPS": str(args.steps)}
    command = [sys.executable, "-m", "pytest", TEST, "-q", "-p", "no:cacheprovider", f"--hypothesis-seed={seed}"]
    started = time.perf_counter()
    rc = subprocess.call(command, cwd=ROOT, env=env)
    seconds = time.perf_counter() - started
    verdict = "0 invariant violations" if rc == 0 else "an invariant violated (see above)"
    print(f"model: {args.examples} examples x <= {args.steps} steps, seed {seed}: {verdict}; {seconds:.0f} s")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
