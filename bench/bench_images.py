"""Container images: size of each, and build time cold versus with a warm dependency layer.

    .venv/bin/python bench/bench_images.py [--engine podman|docker] [--repeat N] [--skip-debian]

Measured side by side in one run, under the tag `bench` (the `local` and `test` images are left
alone):

1. the local Debian base (debootstrap + import), when the engine is podman;
2. cold: every image with `--no-cache` (the shared dependency image reinstalls everything);
3. warm dependency layer: a code change (one comment added to a staged copy of the packages),
   so only the code layers rebuild; median of N runs;
4. fully cached: the same inputs again; median of N runs.

Sizes: uncompressed, all layers, and the part that is the image's own (above the shared base).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from workbench import images

TAG = "bench"


def _staged_root(destination: Path, marker: str) -> Path:
    """A copy of what the builds read (docker/ and the packages), with `marker` in the shared code."""
    root = images.REPO_ROOT
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    packages = {p for spec in images.WORKER_IMAGES for p in spec.context_files() if "/" not in p}
    for name in ("docker", *sorted(packages)):
        if (root / name).is_dir():
            shutil.copytree(root / name, destination / name, ignore=ignore)
    init = destination / "datacarousel" / "__init__.py"
    init.write_text(init.read_text() + f"# bench {marker}\n")
    return destination


def _build_all(engine: images.Engine, root: Path, *, no_cache: bool) -> dict[str, images.BuildResult]:
    names = [s.name for s in images.WORKER_IMAGES if not s.missing_packages(root)]
    results = images.build_images(
        names, engine=engine, tag=TAG, root=root, no_cache=no_cache, output=subprocess.DEVNULL
    )
    return {r.name: r for r in results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["podman", "docker"], default=None)
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each warm measurement (median).")
    parser.add_argument("--skip-debian", action="store_true", help="Do not time the Debian base.")
    args = parser.parse_args()
    engine = images.detect_engine(args.engine)
    print(f"engine: {engine.name} ({engine.executable}, runtime {engine.runtime or 'default'})")

    if engine.name == "podman" and not args.skip_debian:
        ref = images.LOCAL_DEBIAN_IMAGE.replace(":bookworm", ":bench")
        seconds = images.ensure_debian_base(engine, ref, rebuild=True)
        size_mb = images.image_size(engine, ref) / 1e6
        print(f"Debian base (debootstrap minbase + import): {seconds:.1f} s, {size_mb:.0f} MB")
        subprocess.run(engine.cli("rmi", ref), capture_output=True, check=False)

    with tempfile.TemporaryDirectory(prefix="dc-bench-images-") as tmp:
        start = time.monotonic()
        cold = _build_all(engine, _staged_root(Path(tmp) / "cold", "cold"), no_cache=True)
        cold_total = time.monotonic() - start
        warm: dict[str, list[float]] = {name: [] for name in cold}
        cached: dict[str, list[float]] = {name: [] for name in cold}
        warm_totals, cached_totals = [], []
        for run in range(args.repeat):
            root = _staged_root(Path(tmp) / f"warm{run}", f"warm {run} {time.time()}")
            start = time.monotonic()
            for name, result in _build_all(engine, root, no_cache=False).items():
                warm[name].append(result.seconds)
            warm_totals.append(time.monotonic() - start)
            start = time.monotonic()
            for name, result in _build_all(engine, root, no_cache=False).items():
                cached[name].append(result.seconds)
            cached_totals.append(time.monotonic() - start)

    base_size = cold[images.BASE.name].size_bytes
    print()
    print(f"{'image':32} {'size MB':>8} {'own MB':>7} {'cold s':>7} {'warm s':>7} {'cached s':>8} {'cold/warm':>9}")
    for name, result in cold.items():
        own = result.size_bytes - (0 if name == images.BASE.name else base_size)
        w, c = statistics.median(warm[name]), statistics.median(cached[name])
        print(
            f"{name:32} {result.size_bytes / 1e6:8.0f} {own / 1e6:7.1f} {result.seconds:7.1f} {w:7.1f} {c:8.1f}"
            f" {result.seconds / w if w else float('nan'):9.1f}"
        )
    w, c = statistics.median(warm_totals), statistics.median(cached_totals)
    print(
        f"{'all (sequential, incl. sizes)':32} {'':8} {'':7} {cold_total:7.1f} {w:7.1f} {c:8.1f} {cold_total / w:9.1f}"
    )
    print(f"\nwarm = a code change with the dependency layer cached; median of {args.repeat} runs each.")
    print("own MB = layers above the shared dependency image (stored and pulled once per host).")


if __name__ == "__main__":
    main()
