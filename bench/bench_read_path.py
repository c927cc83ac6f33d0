"""Issue #11: how fast can the carousel read what the radiance job needs? Every path, side by side, one run.

    .venv/bin/python bench/bench_read_path.py --file /tmp/rp/TERRA_BF_L1B_O85079_..._V001.h5 \\
        --work-dir /tmp/rp --state-dir /tmp/rp/state [--skip-sample] [--keep-env]

What "the job needs" (docs/compute-radiance.md, docs/basicfusion-layout.md section 9), per family:
- MODIS: lat/lon of every granule; SolarZenith, SensorZenith and the 7 VIS bands of the descending ones;
- MISR: AN BlockCenterTime, the geometry, GeoLatitude/GeoLongitude and the 4 AN bands over the daylit
  block range (first..last);
- CERES: the 8 FM1 arrays of every hour group.

Paths measured (each in a fresh subprocess: wall seconds per family and peak RSS):
- `h5py-local`: h5py on the local full orbit, one process: the read floor;
- `direct-local-wN`: datacarousel.chunkread on the local file (pread + zlib), N threads;
- `direct-s3-wN`: the carousel path: chunk index from the linked HSDS domain (metadata only), bytes by
  ranged GETs of the restored S3 object in moto, zlib in the client, N threads;
- `h5py-s3fs-all`: h5py over an s3fs file object with fsspec's "all" cache (one GET of the whole object);
- on a sample (CERES + one descending MODIS granule + MISR GeoLatitude), the slow paths too:
  h5py over s3fs with "readahead"/"blockcache" caches and block sizes, and h5pyd through HSDS.

The S3 object is the job's datasets of the full orbit copied with H5Ocopy (byte-identical chunks,
same shapes, chunking and filters; 1.35 GB instead of 12.8 GB): moto holds every object in its own
process, and a multipart upload of 12.8 GB would be assembled in its memory. (moto's server as the
embedded environment runs it serves a ranged GET by reading only the range; see
docs/local-environment.md. The line "moto:" below shows the cost of a 1-byte GET of a 1 MB object
and of this 1.35 GB object.)
The script also prints the gzip ratio of the full orbit and moto's cost per GET.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import posixpath
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import h5pyd
import numpy as np
import s3fs
from boto3.s3.transfer import TransferConfig

from batch_jobs.compute_radiance import science as s
from batch_jobs.compute_radiance import window as w
from batch_jobs.compute_radiance.job import compute_orbit
from datacarousel import aws, hsds
from datacarousel import chunkread as cr
from datacarousel import orbit as readers
from workbench.local import environment
from workbench.synthetic.generator import generate_orbit

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FAMILIES = ("MODIS", "MISR", "CERES")
GB = 1e9
ORBIT = 85079
S3_PREFIX = "bench-read-path"


# ----------------------------------------------------------------------------- what the job needs
def job_plan(h5: Any) -> dict[str, Any]:
    """Descending granules, MISR block range and CERES groups, decided exactly as the job does."""
    granules = sorted(h5["MODIS"], key=w.parse_granule_time)
    descending = [g for g in granules if w.is_descending(h5[f"MODIS/{g}/_1KM/Geolocation/Latitude"][()])]
    window = w.time_window(descending)
    assert window is not None, "the bench needs an orbit with a daylit half"
    blocks = w.blocks_in_window(w.parse_block_center_times(h5["MISR/AN/BlockCenterTime"][()]), *window)
    ceres = [g for g in sorted(h5["CERES"]) if "FM1" in h5[f"CERES/{g}"]]
    return {"granules": granules, "descending": descending, "first": int(blocks[0]), "last": int(blocks[-1]),
            "ceres": ceres}  # fmt: skip


MISR_WHOLE = ["MISR/Geolocation/GeoLatitude", "MISR/Geolocation/GeoLongitude",
              *(f"MISR/AN/Data_Fields/{b}_Radiance" for b in s.MISR_BANDS)]  # fmt: skip
MISR_SMALL = ["MISR/Solar_Geometry/SolarZenith", "MISR/AN/Sensor_Geometry/AnZenith"]
LATLON = ("_1KM/Geolocation/Latitude", "_1KM/Geolocation/Longitude")
DAY = ("SolarZenith", "SensorZenith", *(f"_1KM/Data_Fields/{f}" for f in s.MODIS_VIS_FIELDS))


class Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.bytes: dict[str, int] = {}

    def run(self, family: str, fn: Callable[[], int]) -> None:
        started = time.perf_counter()
        n = fn()
        self.seconds[family] = self.seconds.get(family, 0.0) + time.perf_counter() - started
        self.bytes[family] = self.bytes.get(family, 0) + n


def read_h5py(h5: Any, plan: dict[str, Any], sample: bool) -> Timer:
    """h5py (or h5pyd) reading what the job needs: `ds[()]`, MISR `ds[first:last+1]`."""
    t = Timer()
    first, last = plan["first"], plan["last"]

    def modis() -> int:
        n = 0
        for g in plan["descending"][:1] if sample else plan["granules"]:
            n += sum(h5[f"MODIS/{g}/{p}"][()].nbytes for p in LATLON)
            if g in plan["descending"]:
                n += sum(h5[f"MODIS/{g}/{p}"][()].nbytes for p in DAY)
        return n

    def misr() -> int:
        if sample:
            return int(h5[MISR_WHOLE[0]][first : last + 1].nbytes)
        n = h5["MISR/AN/BlockCenterTime"][()].nbytes
        return n + sum(h5[p][first : last + 1].nbytes for p in MISR_SMALL + MISR_WHOLE)

    def ceres() -> int:
        return sum(h5[f"CERES/{g}/FM1/{p}"][()].nbytes for g in plan["ceres"] for p in cr.CERES_INSTRUMENT_DATASETS)

    t.run("MODIS", modis)
    t.run("MISR", misr)
    t.run("CERES", ceres)
    return t


def read_prefetched(
    index: dict[str, cr.DatasetIndex], reader: cr.RangeReader, streamer: cr.RangeStreamer | None,
    plan: dict[str, Any], *, workers: int, sample: bool, stats: cr.Stats,
) -> Timer:  # fmt: skip
    """As `read_direct`, but MODIS, the MISR geometry and CERES go through one `Prefetcher` (requests
    planned from the index for the whole job, fetched ahead); MISR whole-array chunks streamed."""
    t = Timer()
    first, last = plan["first"], plan["last"]
    counted = cr.counted(reader, stats)
    names = plan["descending"][:1] if sample else plan["granules"]
    order = [f"MODIS/{g}/{p}" for g in names for p in (*LATLON, *DAY) if f"MODIS/{g}/{p}" in index]
    order += [] if sample else ["MISR/AN/BlockCenterTime", *MISR_SMALL]
    order += [f"CERES/{g}/FM1/{p}" for g in plan["ceres"] for p in cr.CERES_INSTRUMENT_DATASETS]
    pre = cr.Prefetcher([index[p] for p in order], counted, fetchers=workers, decoders=workers, stats=stats)

    def modis() -> int:
        n = 0
        for g in names:
            lat, lon = (pre.get(f"MODIS/{g}/{p}") for p in LATLON)
            n += lat.nbytes + lon.nbytes
            if w.is_descending(lat):
                n += sum(pre.get(f"MODIS/{g}/{p}").nbytes for p in DAY)
        return n

    def stream(path: str) -> int:
        src: Any = streamer if streamer is not None else counted
        return sum(
            a.nbytes
            for a in cr.iter_leading_range(
                index[path], src, first, last, streamer=streamer is not None, ahead=2, stats=stats
            )
        )

    def misr() -> int:
        if sample:
            return stream(MISR_WHOLE[0])
        n = pre.get("MISR/AN/BlockCenterTime").nbytes + sum(pre.get(p)[first : last + 1].nbytes for p in MISR_SMALL)
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                return n + sum(pool.map(stream, MISR_WHOLE))
        return n + sum(stream(p) for p in MISR_WHOLE)

    def ceres() -> int:
        return sum(pre.get(f"CERES/{g}/FM1/{p}").nbytes for g in plan["ceres"] for p in cr.CERES_INSTRUMENT_DATASETS)

    with pre:
        t.run("MODIS", modis)
        t.run("MISR", misr)
        t.run("CERES", ceres)
    return t


def read_direct(
    index: dict[str, cr.DatasetIndex], reader: cr.RangeReader, streamer: cr.RangeStreamer | None,
    plan: dict[str, Any], *, workers: int, sample: bool, stats: cr.Stats,
) -> Timer:  # fmt: skip
    """chunkread reading what the job needs, granule by granule as the job asks (the next granule's
    lat/lon fetched ahead when workers > 1), MISR streamed up to the last daylit block."""
    t = Timer()
    first, last = plan["first"], plan["last"]
    counted = cr.counted(reader, stats)

    def modis() -> int:
        names = plan["descending"][:1] if sample else plan["granules"]

        def latlon(g: str) -> dict[str, Any]:
            return cr.read_datasets([index[f"MODIS/{g}/{p}"] for p in LATLON], counted, workers=workers, stats=stats)

        n = 0
        with ThreadPoolExecutor(1) as ahead:
            nxt = ahead.submit(latlon, names[0]) if workers > 1 else None
            for k, g in enumerate(names):
                got = nxt.result() if nxt is not None else latlon(g)
                if workers > 1 and k + 1 < len(names):
                    nxt = ahead.submit(latlon, names[k + 1])
                lat = got[f"MODIS/{g}/{LATLON[0]}"]
                n += sum(a.nbytes for a in got.values())
                if w.is_descending(lat):
                    day = cr.read_datasets([index[f"MODIS/{g}/{p}"] for p in DAY], counted, workers=workers,
                                           stats=stats)  # fmt: skip
                    n += sum(a.nbytes for a in day.values())
        return n

    def stream(path: str) -> int:
        src: Any = streamer if streamer is not None else counted
        return sum(
            a.nbytes
            for a in cr.iter_leading_range(
                index[path], src, first, last, streamer=streamer is not None, ahead=2, stats=stats
            )
        )

    def misr() -> int:
        if sample:
            return stream(MISR_WHOLE[0])
        n = cr.read_dataset(index["MISR/AN/BlockCenterTime"], counted).nbytes
        n += sum(cr.read_leading_range(index[p], counted, first, last).nbytes for p in MISR_SMALL)
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                return n + sum(pool.map(stream, MISR_WHOLE))
        return n + sum(stream(p) for p in MISR_WHOLE)

    def ceres() -> int:
        wanted = [index[f"CERES/{g}/FM1/{p}"] for g in plan["ceres"] for p in cr.CERES_INSTRUMENT_DATASETS]
        return sum(a.nbytes for a in cr.read_datasets(wanted, counted, workers=workers, stats=stats).values())

    t.run("MODIS", modis)
    t.run("MISR", misr)
    t.run("CERES", ceres)
    return t


# ----------------------------------------------------------------------------- child processes
def _s3() -> S3Client:
    return aws.client("s3")


def _count_gets(fs: Any) -> list[int]:
    """Count the GetObject calls s3fs makes (a botocore event on its client)."""
    calls = [0]
    try:
        fs.connect()
        fs.s3.meta.events.register("before-call.s3.GetObject", lambda **_: calls.__setitem__(0, calls[0] + 1))
    except Exception:  # counting is best effort
        calls[0] = -1
    return calls


def child(kind: str, cfg: dict[str, Any]) -> dict[str, Any]:
    plan, sample = cfg["plan"], cfg.get("sample", False)
    out: dict[str, Any] = {}
    started = time.perf_counter()
    if kind == "h5py-local":
        with h5py.File(cfg["file"], "r") as h5:
            t = read_h5py(h5, plan, sample)
    elif kind.startswith("direct-local"):
        workers = int(kind.rsplit("-w", 1)[1])
        with h5py.File(cfg["file"], "r") as h5:
            t0 = time.perf_counter()
            index = cr.index_datasets(h5, cr.radiance_job_paths(h5))
            out["index_s"] = time.perf_counter() - t0
        reader, close = cr.file_range_reader(cfg["file"])
        stats = cr.Stats()
        how = read_prefetched if "prefetch" in kind else read_direct
        t = how(index, reader, None, plan, workers=workers, sample=sample, stats=stats)
        close()
        out["stats"] = stats.as_dict()
    elif kind.startswith("direct-s3"):
        workers = int(kind.rsplit("-w", 1)[1])
        t0 = time.perf_counter()
        with h5pyd.File(cfg["domain"], "r") as d:  # the chunk index: metadata from HSDS, no data
            index = {}
            with h5py.File(cfg["subset"], "r") as local:  # only to list the paths the same way
                paths = [p for p in cr.radiance_job_paths(local) if p in local]
            for p in paths:
                index[p], _uri = cr.index_from_hsds(d[p], p)
            small = {p: np.asarray(d[p][()]) for p, i in index.items() if not i.direct}
        out["index_s"] = time.perf_counter() - t0
        out["hsds_copied"] = sorted(small)
        s3 = _s3()
        stats = cr.Stats()
        for p, value in small.items():  # datasets HSDS holds itself (<= 512 elements): its answer, from memory
            index[p] = _InMemory.index(p, value)
        reader = _InMemory.wrap(cr.s3_range_reader(s3, cfg["bucket"], cfg["key"]), small)
        streamer = cr.s3_range_streamer(s3, cfg["bucket"], cfg["key"], stats)
        how = read_prefetched if "prefetch" in kind else read_direct
        t = how(index, reader, streamer, plan, workers=workers, sample=sample, stats=stats)
        out["stats"] = stats.as_dict()
    elif kind.startswith("h5py-s3fs"):
        _, _, cache, block = kind.split("-", 3) if kind.count("-") >= 3 else (*kind.split("-"), "0")
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL"]},
                               skip_instance_cache=True)  # fmt: skip
        gets = _count_gets(fs)
        block_size = int(block.rstrip("M") or 0) * 1024 * 1024 or 5 * 1024 * 1024
        with (
            fs.open(f"{cfg['bucket']}/{cfg['key']}", "rb", cache_type=cache, block_size=block_size) as fobj,
            h5py.File(fobj, "r") as h5,
        ):
            t = read_h5py(h5, plan, sample)
        out["stats"] = {"requests": gets[0]}
    elif kind == "hsds":
        with h5pyd.File(cfg["domain"], "r") as d:
            t = read_h5py(d, plan, sample)
    elif kind.startswith("job-"):
        # job-local-h5py | job-local-wN | job-s3-wN | job-hsds-wN (the carousel path) | job-hsds-h5pyd
        _, where, mode = kind.split("-", 2)
        use_direct = mode.startswith("w")
        n_threads = int(mode[1:]) if use_direct else None
        t = Timer()
        opener = {
            "local": lambda: readers.open_local(cfg["file"], direct=use_direct, workers=n_threads),
            "s3": lambda: readers.open_s3(f"s3://{cfg['bucket']}/{cfg['key']}", direct=use_direct, workers=n_threads),
            "hsds": lambda: readers.open_hsds(cfg["domain"], direct=use_direct, workers=n_threads),
        }[where]
        with opener() as src:
            result = compute_orbit(src)
            if src._direct is not None:
                out["stats"] = src._direct.stats.as_dict()
        t.seconds["job"] = time.perf_counter() - started
        out["samples"] = [float(result.modis.count.sum()), float(result.misr.count.sum()),
                          float(result.ceres.count.sum())]  # fmt: skip
    else:
        raise SystemExit(f"unknown kind {kind}")
    out.update(seconds=t.seconds, bytes=t.bytes, total_s=time.perf_counter() - started)
    out["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


class _InMemory:
    """Serves the few datasets HSDS copied (not linked) from the values HSDS returned: fake offsets past 2**60."""

    BASE = 1 << 60

    @classmethod
    def index(cls, path: str, value: np.ndarray) -> cr.DatasetIndex:
        offset = cls.BASE + (abs(hash(path)) % (1 << 40)) * 1024
        return cr.DatasetIndex(path, value.shape, value.dtype.str, cr.CONTIGUOUS,
                               chunks=(cr.Chunk((0,) * value.ndim, offset, value.nbytes),))  # fmt: skip

    @classmethod
    def wrap(cls, reader: cr.RangeReader, values: dict[str, np.ndarray]) -> cr.RangeReader:
        table = {cls.index(p, v).chunks[0].byte_offset: np.ascontiguousarray(v).tobytes() for p, v in values.items()}

        def read(offset: int, size: int) -> bytes:
            if offset >= cls.BASE:
                return table[offset][:size]
            return reader(offset, size)

        return read


def measure(kind: str, cfg: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, __file__, "--child", kind, json.dumps(cfg)], capture_output=True,
                              text=True, timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s", "total_s": time.perf_counter() - started}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}"}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# ----------------------------------------------------------------------------- set-up
def compression(path: Path) -> dict[str, float]:
    raw = stored = gz_raw = gz_stored = 0

    def visit(_name: str, obj: Any) -> None:
        nonlocal raw, stored, gz_raw, gz_stored
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            n = int(np.prod(obj.shape, dtype=np.int64)) * obj.dtype.itemsize
            st = obj.id.get_storage_size()
            raw += n
            stored += st
            if obj.compression == "gzip":
                gz_raw += n
                gz_stored += st

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return {"file_bytes": path.stat().st_size, "raw_bytes": raw, "stored_bytes": stored, "ratio_all": stored / raw,
            "ratio_gzip": gz_stored / gz_raw}  # fmt: skip


def job_subset(src: Path, dst: Path) -> Path:
    """The job's datasets copied with H5Ocopy: the stored chunks are copied byte for byte."""
    if dst.exists():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".partial")
    with h5py.File(src, "r") as f, h5py.File(tmp, "w", libver="earliest") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        for p in cr.radiance_job_paths(f):
            if p in f:
                f.copy(f[p], g.require_group(posixpath.dirname(p)), name=posixpath.basename(p))
    tmp.replace(dst)
    return dst


def moto_get_cost(s3: S3Client, bucket: str, key: str, repeat: int = 3) -> dict[str, float]:
    small = f"{S3_PREFIX}/one-megabyte"
    s3.put_object(Bucket=bucket, Key=small, Body=os.urandom(1 << 20))

    def get(k: str) -> float:
        t0 = time.perf_counter()
        s3.get_object(Bucket=bucket, Key=k, Range="bytes=0-0")["Body"].read()
        return time.perf_counter() - t0

    return {"get_1_byte_of_1MB_object_s": statistics.median(get(small) for _ in range(repeat)),
            "get_1_byte_of_subset_object_s": statistics.median(get(key) for _ in range(repeat))}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", help="full-preset orbit file (generated into --work-dir if not given)")
    ap.add_argument("--work-dir", default="/tmp/dc-read-path")
    ap.add_argument("--state-dir", help="embedded environment state dir (default <work-dir>/state)")
    ap.add_argument("--keep-env", action="store_true", help="leave the environment up (and reuse it next time)")
    ap.add_argument("--skip-sample", action="store_true", help="skip the slow paths measured on the sample")
    ap.add_argument("--only", help="comma-separated kinds to run (default: all)")
    ap.add_argument("--no-full", action="store_true", help="measure only the sample")
    ap.add_argument("--s3-key", help="key of an already uploaded job subset in the archive bucket")
    ap.add_argument("--domain", help="HSDS domain already linked to that object")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], json.loads(args.child[1]))))
        return
    logging.basicConfig(level=logging.WARNING)

    work = Path(args.work_dir)
    path = Path(args.file) if args.file else None
    if path is None:
        found = sorted((work / "full").glob(f"TERRA_BF_L1B_O{ORBIT}_*.h5"))
        path = found[0] if found else generate_orbit(ORBIT, work / "full", preset="full")
    report: dict[str, Any] = {"file": str(path), "compression": compression(path)}
    subset = job_subset(path, work / "subset" / path.name)
    with h5py.File(path, "r") as h5:
        plan = job_plan(h5)
    report["plan"] = {k: (len(v) if isinstance(v, list) else v) for k, v in plan.items()}
    state = Path(args.state_dir or work / "state")
    env = environment.up(state)
    os.environ.update(env.env)
    try:
        s3 = aws.client("s3")
        bucket = env.env["DC_ARCHIVE_BUCKET"]
        key = args.s3_key or f"{S3_PREFIX}/{path.name}"
        domain = args.domain or f"{env.env['DC_HSDS_FOLDER']}{S3_PREFIX}/{path.name}"
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except Exception:  # not there yet
            t0 = time.perf_counter()
            s3.upload_file(str(subset), bucket, key, ExtraArgs={"StorageClass": "DEEP_ARCHIVE"},
                           Config=TransferConfig(multipart_chunksize=256 << 20, max_concurrency=2))  # fmt: skip
            s3.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1})
            report["upload_s"] = time.perf_counter() - t0
        if not hsds.domain_exists(domain):
            hsds.ensure_folder(posixpath.dirname(domain) + "/")
            report["link"] = hsds.link_file(f"s3://{bucket}/{key}", domain).seconds
        report["moto"] = moto_get_cost(s3, bucket, key)
        cfg = {"file": str(path), "subset": str(subset), "bucket": bucket, "key": key, "domain": domain,
               "plan": plan}  # fmt: skip
        kinds = ["h5py-local", "direct-local-w1", "direct-local-w2", "direct-local-prefetch-w2", "direct-s3-w1",
                 "direct-s3-w2", "direct-s3-prefetch-w1", "direct-s3-prefetch-w2",
                 "h5py-s3fs-all", "job-local-h5py", "job-local-w1", "job-local-w2", "job-hsds-w1",
                 "job-hsds-w2"]  # fmt: skip
        sample_kinds = ["h5py-local", "direct-local-w1", "direct-s3-w1", "h5py-s3fs-readahead-4M",
                        "h5py-s3fs-readahead-64M", "h5py-s3fs-blockcache-16M", "hsds"]  # fmt: skip
        only = set(args.only.split(",")) if args.only else None
        full_rows, sample_rows = {}, {}
        measure("h5py-local", cfg)  # warm-up: page cache
        for kind in kinds:
            if (only is None or kind in only) and not args.no_full:
                full_rows[kind] = measure(kind, cfg)
                print(kind, json.dumps(full_rows[kind]), flush=True)
        if not args.skip_sample:
            for kind in sample_kinds:
                if only is None or kind in only:
                    sample_rows[kind] = measure(kind, {**cfg, "sample": True}, timeout=900)
                    print("sample", kind, json.dumps(sample_rows[kind]), flush=True)
        report["full"], report["sample"] = full_rows, sample_rows
    finally:
        if not args.keep_env:
            environment.down(state)
    (work / "bench_read_path.json").write_text(json.dumps(report, indent=1))
    print_table(report)


def print_table(report: dict[str, Any]) -> None:
    c = report["compression"]
    print(
        f"orbit {report['file']}: {c['file_bytes'] / GB:.2f} GB on disk, {c['raw_bytes'] / GB:.2f} GB "
        f"uncompressed; stored/raw: gzip datasets {c['ratio_gzip']:.3f}, all datasets {c['ratio_all']:.3f}"
    )
    print(f"plan: {report['plan']}; moto: {report.get('moto')}")
    for title, rows in (("full need", report["full"]), ("sample", report["sample"])):
        if not rows:
            continue
        floor = rows.get("h5py-local", {}).get("total_s")
        print(f"\n{title}: seconds per family, total, ratio to h5py-local, peak RSS, requests")
        print(f"{'path':28}{'MODIS':>8}{'MISR':>8}{'CERES':>8}{'total':>9}{'ratio':>7}{'RSS GB':>8}{'GETs':>7}")
        for kind, m in rows.items():
            if "error" in m:
                print(f"{kind:28} {m['error']}")
                continue
            sec = m.get("seconds", {})
            ratio = m["total_s"] / floor if floor else float("nan")
            req = m.get("stats", {}).get("requests", "")
            print(
                f"{kind:28}"
                + "".join(f"{sec.get(f, float('nan')):8.2f}" for f in FAMILIES)
                + f"{m['total_s']:9.2f}{ratio:7.2f}{m['maxrss'] / GB:8.2f}{req!s:>7}"
            )


if __name__ == "__main__":
    main()
