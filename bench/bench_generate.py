"""Benchmark: generation time, on-disk size and compression ratio of synthetic orbits per preset.

    .venv/bin/python bench/bench_generate.py                    # tiny, small, medium, full
    .venv/bin/python bench/bench_generate.py --presets tiny small --repeats 5

Files go to a temporary directory (default under /tmp) that is deleted afterwards.
Prints a table: median wall time and CPU time (user + system, all threads) over the
repeats, peak resident memory of the process so far (presets run smallest first), file
size, uncompressed bytes of all datasets, whole-file ratio, and the ratio of the gzip
radiance datasets alone. On a shared machine the CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import h5py

from workbench.synthetic import PRESETS, generate_orbit


def measure(path: Path) -> tuple[int, int, int, int]:
    """(file bytes, uncompressed bytes of every dataset, radiance stored bytes, radiance raw bytes)."""
    totals = [0, 0, 0]

    def visit(_name: str, obj: object) -> None:
        if not isinstance(obj, h5py.Dataset):
            return
        raw = obj.size * obj.dtype.itemsize
        totals[0] += raw
        if obj.compression == "gzip" and obj.name.endswith(("_RefSB", "_Emissive", "_Radiance")):
            totals[1] += obj.id.get_storage_size()
            totals[2] += raw

    with h5py.File(path) as h5:
        h5.visititems(visit)
    return path.stat().st_size, totals[0], totals[1], totals[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "medium", "full"], choices=list(PRESETS))
    parser.add_argument("--repeats", type=int, default=3, help="runs of tiny and small (medium and full: 1)")
    parser.add_argument("--orbit", type=int, default=85079)
    parser.add_argument("--workers", type=int, default=None, help="deflate threads (default: min(2, cores))")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp"), help="parent of the scratch directory")
    args = parser.parse_args()

    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="bench_generate_", dir=args.tmp))
    try:
        for preset in args.presets:
            repeats = 1 if preset in ("medium", "full") else args.repeats
            times, cpu = [], []
            for i in range(repeats):
                out = scratch / f"{preset}-{i}"
                start, start_cpu = time.perf_counter(), _cpu()
                path = generate_orbit(args.orbit, out, preset=preset, workers=args.workers)
                times.append(time.perf_counter() - start)
                cpu.append(_cpu() - start_cpu)
                if i < repeats - 1:
                    shutil.rmtree(out)
            size, raw, rad_stored, rad_raw = measure(path)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB
            rows.append((preset, repeats, statistics.median(times), statistics.median(cpu), peak, size, raw,
                         size / raw, rad_stored / rad_raw))  # fmt: skip
            shutil.rmtree(path.parent)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    widths = (8, 4, 9, 9, 8, 10, 10, 8, 18)
    header = ("preset", "runs", "wall s", "cpu s", "peak GB", "file MB", "raw MB", "file/raw", "radiance gzip/raw")
    print(" ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))))
    for preset, runs, median, cpu_s, peak, size, raw, ratio, rad_ratio in rows:
        cells = (preset, f"{runs}", f"{median:.2f}", f"{cpu_s:.2f}", f"{peak:.2f}", f"{size / 1e6:.1f}",
                 f"{raw / 1e6:.1f}", f"{ratio:.3f}", f"{rad_ratio:.3f}")  # fmt: skip
        print(" ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))))


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


if __name__ == "__main__":
    main()
