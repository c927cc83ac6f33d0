"""Benchmark: generation time, on-disk size and compression ratio of synthetic orbits per preset.

    .venv/bin/python bench/bench_generate.py                    # tiny, small, medium, full
    .venv/bin/python bench/bench_generate.py --presets tiny small --repeats 5

Files go to a temporary directory (default under /tmp) that is deleted afterwards.
Prints a table: median wall time over the repeats, file size, uncompressed bytes of
all datasets, whole-file ratio, and the ratio of the gzip radiance datasets alone.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import h5py

from datacarousel.synthetic import PRESETS, generate_orbit


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
    parser.add_argument("--repeats", type=int, default=3, help="runs per preset except full (always 1)")
    parser.add_argument("--orbit", type=int, default=85079)
    parser.add_argument("--workers", type=int, default=None, help="deflate threads (default: min(2, cores))")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp"), help="parent of the scratch directory")
    args = parser.parse_args()

    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="bench_generate_", dir=args.tmp))
    try:
        for preset in args.presets:
            repeats = 1 if preset == "full" else args.repeats
            times = []
            for i in range(repeats):
                out = scratch / f"{preset}-{i}"
                start = time.perf_counter()
                path = generate_orbit(args.orbit, out, preset=preset, workers=args.workers)
                times.append(time.perf_counter() - start)
                if i < repeats - 1:
                    shutil.rmtree(out)
            size, raw, rad_stored, rad_raw = measure(path)
            rows.append((preset, repeats, statistics.median(times), size, raw, size / raw, rad_stored / rad_raw))
            shutil.rmtree(path.parent)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    widths = (8, 4, 9, 10, 10, 8, 18)
    header = ("preset", "runs", "median s", "file MB", "raw MB", "file/raw", "radiance gzip/raw")
    print(" ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))))
    for preset, runs, median, size, raw, ratio, rad_ratio in rows:
        cells = (preset, f"{runs}", f"{median:.2f}", f"{size / 1e6:.1f}", f"{raw / 1e6:.1f}", f"{ratio:.3f}",
                 f"{rad_ratio:.3f}")  # fmt: skip
        print(" ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))))


if __name__ == "__main__":
    main()
