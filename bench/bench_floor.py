"""Issue #22: the true floor of the radiance job: pread and inflate exactly the chunk bytes it needs, nothing else.

    .venv/bin/python bench/bench_floor.py --file ORBIT.h5 [--repeat 3] [--threads 2] [--h5py] [--job]
        [--restart-points] [--malloc-reuse] [--original 'COMMAND {file}']

"Exactly the chunk bytes the job needs" comes from the project's chunk index (`datacarousel.chunkread`:
`radiance_job_paths`, `index_datasets`) and the job's plan (as `compute_orbit` decides it, from the data):
the lat/lon chunks of every MODIS granule; SolarZenith, SensorZenith and the two RefSB arrays of the
descending ones; MISR BlockCenterTime, the geometry chunks over the daylit block range, GeoLatitude,
GeoLongitude and the 4 AN bands (whole-array chunks: inflated to their end, as the job does to check
the zlib checksum); every CERES FM1 array. Rows (each a median of --repeat interleaved rounds, spread
min-max; page cache warm; GB/s of output (compressed bytes for pread) per wall second and per CPU second,
the second being the per-core rate on a shared machine):
- pread: the compressed bytes of those chunks, one `os.pread` per chunk, one thread;
- inflate, per library, 1 thread and --threads threads (largest chunks first), from bytes in memory:
  zlib (CPython's), `isal` (python-isal: ISA-L), `deflate` (libdeflate, one-shot into a buffer of the
  known size), `zlib-ng` (python-zlib-ng); a library is kept only if it gives output byte-identical to
  zlib's on every chunk (checked once, before timing);
- floor: pread + inflate of each chunk by the fastest library, 1 thread and --threads threads;
- with --h5py, the h5py baseline (`bench_compute_radiance.read_floor`: h5py reads the same datasets);
- with --job, the job itself (`compute_orbit` over the local direct reader) on 1 core and on --threads cores,
  each run in a fresh Python pinned to those CPUs (its reader threads: as many; its background read-ahead
  threads share them), as the job's command runs it (`datacarousel.malloc.tune_for_jobs`: one malloc arena,
  freed buffers reused), with its peak RSS (VmHWM);
- with --restart-points, also the job with the file's restart points (ORBIT.h5.restart-points, built first
  if missing, with its build time: `datacarousel.chunkread.restart`), on 1 and --threads cores, and the floor
  with restart points: the other chunks as above, and of each whole-array chunk only the segments that hold the
  daylit blocks, each pread and inflated alone (libdeflate) with its Adler-32 — what the job must do at least
  with those points (the night blocks of the MISR bands are neither read nor inflated); its GB/s are still of
  the bytes the job needs without points;
- with --original 'COMMAND {file}', a command run on --threads cores in the same rounds, `{file}` replaced by
  the orbit's path: the original Climate Marble code, say (its build and driver: docs/performance.md; not
  part of this repository), with its wall, CPU and peak RSS (its own, from wait4).
With --malloc-reuse the script reruns itself with glibc's mmap threshold off (see REUSE; the job's own
setting, given to the floor rows too): output buffers are then reused instead of page-faulted in, and
"sys" drops to ~0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from batch_jobs.compute_radiance import window as w  # noqa: E402
from batch_jobs.compute_radiance.job import compute_orbit  # noqa: E402
from datacarousel import chunkread as cr  # noqa: E402
from datacarousel.chunkread import restart  # noqa: E402
from datacarousel.malloc import tune_for_jobs  # noqa: E402
from datacarousel.orbit import open_local  # noqa: E402

# glibc hands every buffer above 32 MB out as fresh mmap'd pages (a page fault per 4 KB written, 20-40 % of an
# inflate); with these a buffer freed is reused. The job could run so too (a process per orbit).
REUSE = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}
Task = tuple[str, int, int, int]  # dataset path, byte offset, stored size, uncompressed size (0: not deflate)
SegmentTask = tuple[int, restart.Segment]  # the chunk's byte offset, one of its segments


def inflaters() -> dict[str, Callable[[bytes, int], Any]]:
    """name -> inflate(raw, expected size) for every library installed."""
    out: dict[str, Callable[[bytes, int], Any]] = {"zlib": lambda raw, n: zlib.decompress(raw, bufsize=n)}
    try:
        from isal import isal_zlib  # noqa: PLC0415

        out["isal"] = lambda raw, n: isal_zlib.decompress(raw, bufsize=n)
    except ImportError:
        pass
    try:
        import deflate  # noqa: PLC0415

        out["libdeflate"] = deflate.zlib_decompress  # one shot into a buffer of the size given
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng  # noqa: PLC0415

        out["zlib-ng"] = lambda raw, n: zlib_ng.decompress(raw, bufsize=n)
    except ImportError:
        pass
    return out


def job_chunks(path: Path) -> tuple[list[Task], int, int]:
    """The chunks the job reads, decided as `compute_orbit` decides (descending test, daylit MISR blocks), and the
    first and last of those blocks."""
    with h5py.File(path, "r") as h5:
        index = cr.index_datasets(h5, cr.radiance_job_paths(h5))
        granules = sorted(h5["MODIS"], key=w.parse_granule_time)
        descending = [g for g in granules if w.is_descending(h5[f"MODIS/{g}/_1KM/Geolocation/Latitude"][()])]
        window = w.time_window(descending)
        assert window is not None, "the bench needs an orbit with a daylit half"
        blocks = w.blocks_in_window(w.parse_block_center_times(h5["MISR/AN/BlockCenterTime"][()]), *window)
    first, last = int(blocks[0]), int(blocks[-1])
    wanted = []
    for p, ix in index.items():
        parts = p.split("/")
        if parts[0] == "MODIS" and parts[1] not in descending and "Geolocation" not in p:
            continue
        for c in ix.chunks:
            rows = ix.chunk_shape[0] if ix.chunk_shape else ix.shape[0] if ix.shape else 1
            if parts[0] == "MISR" and len(ix.shape) >= 3 and not (c.offset[0] <= last and c.offset[0] + rows > first):
                continue  # MISR per-block arrays: only the chunks over the daylit blocks (all of a whole-array one)
            size = ix.nbytes if ix.chunk_shape is None else np.prod(ix.chunk_shape) * np.dtype(ix.dtype).itemsize
            wanted.append((p, c.byte_offset, c.size, int(size) if ix.deflate else 0))
    return sorted(wanted, key=lambda t: -t[3]), first, last


def segment_work(path: Path, tasks: list[Task], first: int, last: int) -> tuple[list[Task], list[SegmentTask]]:
    """The job's chunks as it reads them with the file's restart points: a whole-array chunk whose points keep a
    checksum per segment is cut to the segments that hold blocks first..last (`RestartIndex.covering`, as
    `iter_leading_range` asks); the other chunks stay whole."""
    lookup = restart.loads_file(path.with_name(path.name + restart.SIDECAR_SUFFIX).read_bytes())
    whole: list[Task] = []
    cut: list[SegmentTask] = []
    with h5py.File(path, "r") as h5:
        for task in tasks:
            name, offset, stored, size = task
            index = lookup(name, offset, stored) if size else None
            if index is None or not index.checks:
                whole.append(task)
                continue
            row_bytes = size // h5[name].shape[0]
            cut += [(offset, g) for g in index.covering(first * row_bytes, (last + 1) * row_bytes)]
    return whole, sorted(cut, key=lambda t: -(t[1].out_hi - t[1].out_lo))


def floor_segments_run(fn: Callable[[bytes, int], Any], fd: int, whole: list[Task], cut: list[SegmentTask],
                       threads: int) -> int:  # fmt: skip
    """The floor with restart points: the whole chunks as `floor_run` does them, and each segment read and
    inflated alone with its Adler-32 computed (what the job checks it against), largest first."""

    def one_segment(item: SegmentTask) -> int:
        offset, g = item
        out = restart.inflate_segment(os.pread(fd, g.byte_hi - g.read_lo, offset + g.read_lo), g)
        restart.adler32(out)
        return len(out)

    if threads <= 1:
        return floor_run(fn, fd, whole, 1) + sum(map(one_segment, cut))
    with ThreadPoolExecutor(threads) as pool:
        segments = pool.map(one_segment, cut)
        return floor_run(fn, fd, whole, threads) + sum(segments)


def pread_all(fd: int, tasks: list[Task]) -> list[bytes]:
    return [os.pread(fd, size, offset) for _, offset, size, _ in tasks]


def check(libs: dict[str, Callable[[bytes, int], Any]], tasks: list[Task], raws: list[bytes]) -> dict[str, str]:
    """Libraries whose output differs from zlib's on some chunk (name -> the first such chunk)."""
    bad: dict[str, str] = {}
    for (p, _, _, n), raw in zip(tasks, raws, strict=True):
        if not n:
            continue
        want = zlib.decompress(raw, bufsize=n)
        for name, fn in libs.items():
            if name not in bad and bytes(fn(raw, n)) != want:
                bad[name] = p
    return bad


def inflate_all(fn: Callable[[bytes, int], Any], tasks: list[Task], raws: list[bytes], threads: int) -> int:
    work = [(raw, n) for (_, _, _, n), raw in zip(tasks, raws, strict=True) if n]
    if threads <= 1:
        return sum(len(fn(raw, n)) for raw, n in work)
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(lambda w: len(fn(*w)), work))


def floor_run(fn: Callable[[bytes, int], Any], fd: int, tasks: list[Task], threads: int) -> int:
    def one(t: Task) -> int:
        raw = os.pread(fd, t[2], t[1])
        return len(fn(raw, t[3])) if t[3] else len(raw)

    if threads <= 1:
        return sum(one(t) for t in tasks)
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(one, tasks))


class Measured(NamedTuple):
    """A row run in a process of its own: what that process took."""

    wall: float
    user: float
    system: float
    peak_rss: int


Row = Callable[[], "int | Measured"]


def rows_of(libs: dict[str, Callable[[bytes, int], Any]], best: str, *, fd: int, tasks: list[Task], raws: list[bytes],
            threads: int, path: Path, h5py_baseline: bool, job: bool,
            segments: tuple[list[Task], list[SegmentTask]] | None, original: str | None) -> dict[str, Row]:  # fmt: skip
    rows: dict[str, Row] = {"pread, 1 thread": lambda: sum(map(len, pread_all(fd, tasks)))}
    for name, fn in libs.items():
        rows[f"inflate {name}, 1 thread"] = partial(inflate_all, fn, tasks, raws, 1)
        rows[f"inflate {name}, {threads} threads"] = partial(inflate_all, fn, tasks, raws, threads)
    rows[f"floor: pread + {best}, 1 thread"] = lambda: floor_run(libs[best], fd, tasks, 1)
    rows[f"floor: pread + {best}, {threads} threads"] = lambda: floor_run(libs[best], fd, tasks, threads)
    if segments is not None:
        whole, cut = segments
        label = "floor with restart points: the segments of the daylit blocks"
        rows[f"{label}, 1 thread"] = lambda: floor_segments_run(libs[best], fd, whole, cut, 1)
        rows[f"{label}, {threads} threads"] = lambda: floor_segments_run(libs[best], fd, whole, cut, threads)
    if h5py_baseline:
        from bench_compute_radiance import read_floor  # noqa: PLC0415

        rows["baseline: h5py reads the same datasets (zlib), 1 thread"] = lambda: int(read_floor(str(path))["bytes"])
    for points in (False, True) if segments is not None else (False,) if job else ():
        label = "job + restart points" if points else "job"
        rows[f"{label}, local direct reads, 1 core"] = partial(job_in_a_process, path, 1, points)
        rows[f"{label}, local direct reads, {threads} cores"] = partial(job_in_a_process, path, threads, points)
    if original:
        command = [part.replace("{file}", str(path)) for part in shlex.split(original)]
        rows[f"original (--original), {threads} cores"] = partial(command_in_a_process, command, threads)
    return rows


def command_in_a_process(command: list[str], cores: int) -> Measured:
    """`command` pinned to `cores` CPUs, run by a fresh small Python (`--child-command`) so that the peak RSS that
    wait4 reports is the command's own, not this process's memory at fork."""
    wrapper = [sys.executable, __file__, "--file", "-", "--child-command", str(cores), *command]
    done = subprocess.run(wrapper, capture_output=True, text=True, check=True, timeout=3600)
    wall, user, system, peak = json.loads(done.stdout.splitlines()[-1])
    return Measured(wall, user, system, peak)


def child_command(cores: int, command: list[str]) -> None:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])  # inherited by the command
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{shlex.join(command)} failed (wait status {status})")
    wall = time.perf_counter() - started
    print(json.dumps([wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss * 1024]))


def job_in_a_process(path: Path, cores: int, points: bool) -> Measured:
    """The whole radiance job on the orbit in a fresh Python pinned to `cores` CPUs (its reader threads: as many),
    as `batch_jobs.compute_radiance run --file` runs it (`malloc.tune_for_jobs`; the file's restart points if
    `points`): its wall, user, sys seconds and peak RSS."""
    command = [sys.executable, __file__, "--file", str(path), "--child-job", str(cores), str(int(points))]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=1800)
    wall, user, system, peak = json.loads(done.stdout.splitlines()[-1])
    return Measured(wall, user, system, peak)


def child_job(path: Path, cores: int, points: bool) -> None:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])  # the job sees `cores` CPUs and uses them all
    tune_for_jobs()  # as the job's main does
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)  # imports not counted
    with open_local(path, restart_points=points) as source:
        compute_orbit(source)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    # VmHWM: this process's own peak (ru_maxrss would also count the parent's memory at fork)
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    print(json.dumps([wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, peak]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--h5py", action="store_true", help="add the h5py baseline row")
    ap.add_argument("--job", action="store_true", help="add the job's rows (1 thread and --threads), same rounds")
    ap.add_argument(
        "--restart-points",
        action="store_true",
        help="also the job with the file's restart points (built first, beside the file, if missing)",
    )
    ap.add_argument("--malloc-reuse", action="store_true", help=f"rerun with {' '.join(REUSE)} (no page faults)")
    ap.add_argument("--original", metavar="COMMAND", help="add a row: COMMAND ({file}: the orbit) on --threads cores")
    ap.add_argument("--child-job", nargs=2, help=argparse.SUPPRESS)  # CORES POINTS: one job row's process
    ap.add_argument("--child-command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # CORES COMMAND...
    args = ap.parse_args()
    if args.child_command:
        child_command(int(args.child_command[0]), args.child_command[1:])
        return
    if args.child_job:
        child_job(args.file, int(args.child_job[0]), args.child_job[1] == "1")
        return
    if args.malloc_reuse and any(os.environ.get(k) != v for k, v in REUSE.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **REUSE})
    print(f"malloc: {' '.join(f'{k}={os.environ[k]}' for k in REUSE if k in os.environ) or 'defaults'}")
    sys.path.insert(0, str(Path(__file__).parent))
    tasks, first, last = job_chunks(args.file)
    stored, raw_total = sum(t[2] for t in tasks), sum(t[3] or t[2] for t in tasks)
    print(f"{args.file.name}: {len(tasks)} chunks, {stored / 1e9:.3f} GB stored, {raw_total / 1e9:.3f} GB inflated")
    fd = os.open(args.file, os.O_RDONLY)
    raws = pread_all(fd, tasks)  # also warms the page cache
    libs = inflaters()
    for name, path in check(libs, tasks, raws).items():
        print(f"{name}: output differs from zlib's on {path}: left out")
        del libs[name]
    times: dict[str, float] = {}  # one 1-thread round to pick the fastest, by user CPU (wall is noisy when shared)
    for name, inflate in libs.items():
        started = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        inflate_all(inflate, tasks, raws, 1)
        times[name] = resource.getrusage(resource.RUSAGE_SELF).ru_utime - started
    best = min(libs, key=lambda n: times[n])
    if args.restart_points:
        sidecar = args.file.with_name(args.file.name + restart.SIDECAR_SUFFIX)
        if not sidecar.is_file():
            started = time.perf_counter()
            sidecar.write_bytes(restart.dumps_file(restart.build_file(args.file, workers=args.threads)))
            print(f"restart points built in {time.perf_counter() - started:.1f} s ({args.threads} threads): {sidecar}")
    segments = None
    if args.restart_points:
        segments = segment_work(args.file, tasks, first, last)
        inflated = sum(t[3] or t[2] for t in segments[0]) + sum(g.out_hi - g.out_lo for _, g in segments[1])
        print(f"with restart points: {len(segments[1])} segments; {inflated / 1e9:.3f} GB inflated in all")
    rows = rows_of(libs, best, fd=fd, tasks=tasks, raws=raws, threads=args.threads, path=args.file,
                   h5py_baseline=args.h5py, job=args.job or args.restart_points,
                   segments=segments, original=args.original)  # fmt: skip
    got: dict[str, list[Measured]] = {name: [] for name in rows}
    for _ in range(args.repeat):
        for name, row in rows.items():
            wall, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            result = row()
            after = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
            in_process = Measured(time.perf_counter() - wall, after.ru_utime - before.ru_utime,
                                  after.ru_stime - before.ru_stime, 0)  # fmt: skip
            got[name].append(result if isinstance(result, Measured) else in_process)
    print(f"\n{'row':58} {'median s':>8} {'(min-max)':>13} {'user s':>6} {'sys s':>5} {'GB/s':>5} {'GB/s/CPU-s':>10} "
          f"{'peak GB (min-max)':>17}")  # fmt: skip
    for name, runs in got.items():
        walls = sorted(r.wall for r in runs)
        peaks = sorted(r.peak_rss / 1e9 for r in runs)
        out_bytes = stored if name.startswith("pread") else raw_total
        user, system = statistics.median(r.user for r in runs), statistics.median(r.system for r in runs)
        wall = statistics.median(walls)
        peak = f"{statistics.median(peaks):.2f} ({peaks[0]:.2f}-{peaks[-1]:.2f})" if peaks[-1] else "-"
        print(f"{name:58} {wall:8.2f} {f'({walls[0]:.2f}-{walls[-1]:.2f})':>13} {user:6.2f} {system:5.2f} "
              f"{out_bytes / wall / 1e9:5.2f} {out_bytes / (user + system) / 1e9:10.2f} {peak:>17}")  # fmt: skip
    print(
        f"\nfastest inflater (user CPU of one round): {best}; "
        + ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
        + f"; load average now {os.getloadavg()[0]:.1f}"
    )
    os.close(fd)


if __name__ == "__main__":
    main()
