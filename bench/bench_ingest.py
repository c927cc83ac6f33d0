"""Ingest benchmarks on the embedded environment (moto server + real HSDS + the stack).

    .venv/bin/python bench/bench_ingest.py [--keys 84303] [--repeats 3]

1. Loader throughput over the whole archive catalogue (84,303 keys, empty objects
   put in moto's archive bucket under the catalogue's keys):
   a. listing alone (one chain of pages vs folders in parallel), then listing + restore
      status + BasicFusionFiles and ledger lookups + decisions (dry run), every key;
   b. the goal (1,500 keys/s): list and queue the whole catalogue into the index queue
      (SendMessageBatch of 10, the ledger's BatchWriteItem of 25), checked afterwards (queue
      depth = keys, ledger items present); then a re-run, which queues nothing;
   c. SendMessageBatch latency at the depth (b) left and at depth 0, side by side.
2. Index time: link (`hsload --link`, chunks stay in S3) vs copy (`hsload` without --link)
   of one synthetic orbit per preset, and link time against number of datasets and bytes.
3. record_metadata: items written per second (the DynamoDB conditional writes alone, and
   the whole step reading HSDS domains).

Prints medians; every ratio is measured side by side in one run.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import psutil

from datacarousel import aws, hsds, naming
from datacarousel.files_table import FileMetadata, FilesTable, iso
from datacarousel.naming import BasicFusionName
from datacarousel.times import utcnow
from index_file.adapters import HsdsTarget
from loader.adapters import list_pages, list_pages_parallel
from loader.adapters import run as run_loader
from loader.ledger import IndexRequestLedger
from record_metadata.adapters import run as run_record_metadata
from workbench.local import environment, moto_server
from workbench.synthetic.catalogue import archive_catalogue
from workbench.synthetic.generator import generate_orbit

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("bench_ingest")

LOADER_GOAL_KEYS_S = 1500
S3_SOURCE_MAX_BYTES = 2 * 1024**3  # larger orbit files are linked from the HSDS POSIX root


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times: list[float] = []
    result: Any = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def moto_pid(local: environment.LocalEnvironment) -> int:
    (moto,) = [s for s in local.services if s.name == moto_server.NAME]
    return moto.pids[0]


def queue_depth(sqs: SQSClient, queue_url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


class CpuMeter:
    """CPU seconds spent by this process and by moto's server between `start()` and `stop()`:
    which side of the loader's conversation with moto is the busy one."""

    def __init__(self, moto_pid: int) -> None:
        self.moto = psutil.Process(moto_pid)
        self.me = psutil.Process()

    @staticmethod
    def _cpu(proc: psutil.Process) -> float:
        times = proc.cpu_times()
        return float(times.user + times.system)

    def start(self) -> None:
        self._start = (self._cpu(self.me), self._cpu(self.moto))

    def stop(self) -> tuple[float, float]:
        return self._cpu(self.me) - self._start[0], self._cpu(self.moto) - self._start[1]


def bench_loader(env: dict[str, str], keys: int, moto_server_pid: int) -> None:
    s3, sqs, ddb = aws.client("s3"), aws.client("sqs"), aws.client("dynamodb")
    files = FilesTable(ddb, env["DC_FILES_TABLE"])
    ledger = IndexRequestLedger(ddb, env["DC_INDEX_REQUESTS_TABLE"])
    bucket, queue = env["DC_ARCHIVE_BUCKET"], env["DC_INDEX_QUEUE_URL"]
    loader = partial(run_loader, s3, sqs, files, ledger, bucket=bucket, queue_url=queue)
    catalogue = archive_catalogue()[:keys]
    started = time.perf_counter()
    with ThreadPoolExecutor(10) as pool:  # boto3's connection pool holds 10
        list(pool.map(lambda e: s3.put_object(Bucket=bucket, Key=e.key, Body=b""), catalogue, chunksize=64))
    print(f"setup: put {len(catalogue):,} empty objects in {time.perf_counter() - started:.1f} s")

    # a0. listing alone, one chain of pages vs the loader's folder-parallel listing, side by side
    # (moto sorts every key under the prefix for each page: a page of the whole bucket costs O(keys)).
    started = time.perf_counter()
    listed = sum(len(page) for page in list_pages(s3, bucket))
    list_s = time.perf_counter() - started
    print(f"listing alone, one chain of pages, {listed:,} keys: {list_s:.1f} s = {listed / list_s:,.0f} keys/s")
    started = time.perf_counter()
    listed_parallel = sum(len(page) for page in list_pages_parallel(s3, bucket))
    parallel_s = time.perf_counter() - started
    assert listed_parallel == listed, (listed_parallel, listed)
    print(
        f"listing alone, folders in parallel (the loader's way), {listed:,} keys: {parallel_s:.1f} s "
        f"= {listed / parallel_s:,.0f} keys/s (x{list_s / parallel_s:.1f})"
    )

    # a. dry run over everything
    report = loader(dry_run=True, now=utcnow())
    print(
        f"loader dry run (list + lookups + decide), {report.listed:,} keys: {report.seconds:.1f} s "
        f"= {report.listed / report.seconds:,.0f} keys/s"
    )

    # b. the goal: list and queue the whole catalogue into one queue (sends of 10 + ledger writes of 25)
    assert queue_depth(sqs, queue) == 0
    meter = CpuMeter(moto_server_pid)
    meter.start()
    report = loader(now=utcnow())
    loader_cpu, moto_cpu = meter.stop()
    assert report.queued == report.listed == len(catalogue) and report.send_failed == 0, report.as_dict()
    depth = queue_depth(sqs, queue)
    assert depth == len(catalogue), (depth, len(catalogue))
    sample = [BasicFusionName.parse(e.key).file_name for e in catalogue[:: max(len(catalogue) // 500, 1)]]
    assert len(ledger.get_many(sample)) == len(sample), "every request sent is in the ledger"
    rate = report.listed / report.seconds
    print(
        f"loader list + queue + ledger, whole catalogue, {report.listed:,} keys: {report.seconds:.1f} s "
        f"= {rate:,.0f} keys/s ({rate / LOADER_GOAL_KEYS_S:.2f} x the goal of {LOADER_GOAL_KEYS_S:,}); "
        f"queue depth after: {depth:,}"
    )
    per_key = 1000 / report.listed
    print(
        f"  CPU: moto's server {moto_cpu:.1f} s ({moto_cpu * per_key:.2f} ms/key: one process, at most one core), "
        f"the loader {loader_cpu:.1f} s ({loader_cpu * per_key:.2f} ms/key)"
    )
    again = loader(now=utcnow())
    assert again.queued == 0 and queue_depth(sqs, queue) == depth, again.as_dict()
    print(
        f"  re-run: queued {again.queued}, skipped {dict(again.skipped)} in {again.seconds:.1f} s "
        f"= {again.listed / again.seconds:,.0f} keys/s"
    )

    # c. SendMessageBatch latency at the depth the whole catalogue left and at depth 0, side by side
    # (moto as shipped recounts the queue on every send; the embedded environment's moto does not).
    body = "x" * 200

    def send() -> None:
        sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": body} for i in range(10)])

    deep, _ = median_time(send, 20)
    sqs.purge_queue(QueueUrl=queue)
    shallow, _ = median_time(send, 20)
    print(
        f"SendMessageBatch(10): {shallow * 1000:.1f} ms at depth ~0, {deep * 1000:.1f} ms at depth {depth:,} "
        f"(x{deep / shallow:.2f})"
    )


def _preset_of(path: Path) -> str:
    with h5py.File(path, "r") as f:
        value = f.attrs.get("synthetic_preset", "file")
    return value.decode() if isinstance(value, bytes) else str(value)


def make_datasets_file(path: Path, datasets: int, elements: int) -> Path:
    """An HDF5 file of `datasets` float32 datasets of `elements` each, one chunk per dataset (as
    BasicFusion stores whole arrays), so that bytes grow without the number of chunks growing."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for i in range(datasets):
            f.create_dataset(f"g{i % 10}/d{i}", data=rng.random(elements, dtype=np.float32), chunks=(elements,))
    return path


def copy_load(hsload: str, path: Path, domain: str, env: dict[str, str]) -> str | None:
    """`hsload` without --link; None when it worked, else why the server refused it."""
    done = subprocess.run(
        [hsload, str(path), domain], check=False, env=env, capture_output=True, text=True, timeout=7200
    )
    if done.returncode == 0:
        return None
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return lines[-1][-200:] if lines else f"exit {done.returncode}"


def bench_index(
    state: environment.LocalEnvironment,
    presets: list[str],
    orbit_files: list[Path],
    *,
    repeats: int,
    copy_repeats: int,
    work: Path,
) -> list[str]:
    env = state.env
    s3 = aws.client("s3")
    bucket = env["DC_ARCHIVE_BUCKET"]
    access = hsds.HsdsAccess.resolve(environ=env)
    folder = env["DC_HSDS_FOLDER"]
    domains: list[str] = []
    hs_env = {**os.environ, **env}
    hsload = str(Path(sys.executable).parent / "hsload")
    hsds.ensure_folder(f"{folder}bench-copy/", access)
    orbits = zip(range(64001, 64001 + len(presets)), presets, strict=True)
    sources = [(preset, generate_orbit(orbit, work, preset=preset)) for orbit, preset in orbits]
    sources += [(_preset_of(path), path) for path in orbit_files]
    print("\nindex one orbit: link (chunks stay in the source) vs copy (hsload without --link, from the local file)")
    print(f"{'preset':8} {'source':6} {'bytes':>15} {'datasets':>9} {'link s':>8} {'copy s':>8} {'copy/link':>9}")
    for preset, path in sources:
        name = BasicFusionName.parse(path.name)
        domain = naming.hsds_domain(folder, name)
        size = path.stat().st_size
        if size <= S3_SOURCE_MAX_BYTES:
            key = naming.archive_key(name, "bench/")
            s3.upload_file(str(path), bucket, key)
            kind, link = "s3", partial(hsds.link_file, f"s3://{bucket}/{key}", domain, access)
        else:
            # moto would hold a 12.8 GB object in its own process: link the same bytes from the
            # HSDS server's POSIX root instead (a hard link, no copy); the work of a link is the same.
            key = ""
            linked = state.hsds_root / state.hsds_bucket / "bench" / path.name
            linked.parent.mkdir(parents=True, exist_ok=True)
            if not linked.exists():
                os.link(path, linked)
            kind, link = "posix", partial(hsds.link_file, linked, domain, access, posix_root=state.hsds_root)
        link_s, result = median_time(link, repeats)
        copy_domain = f"{folder}bench-copy/{name.file_name}"
        copy_s, refusal = median_time(partial(copy_load, hsload, path, copy_domain, hs_env), copy_repeats)
        domains += [domain, copy_domain]
        row = f"{preset:8} {kind:6} {size:>15,} {result.datasets:>9} {link_s:>8.2f}"
        if refusal is not None:
            print(f"{row} {'refused':>8} {'-':>9}")
            print(f"         copy refused after {copy_s:.1f} s: {refusal}")
        else:
            print(f"{row} {copy_s:>8.2f} {copy_s / link_s:>9.1f}")
        if key:
            s3.delete_object(Bucket=bucket, Key=key)  # moto holds objects in its own process

    print("\nlink time against number of datasets (4 KiB each) and against bytes (50 datasets)")
    print(f"{'datasets':>9} {'bytes':>12} {'link s':>8} {'s/dataset':>10}")
    shapes = [(50, 1024), (100, 1024), (200, 1024), (400, 1024), (50, 64 * 1024), (50, 1024 * 1024)]
    for i, (count, elements) in enumerate(shapes):
        path = make_datasets_file(work / f"datasets-{count}-{elements}.h5", count, elements)
        key = f"bench/datasets/{path.name}"
        s3.upload_file(str(path), bucket, key)
        domain = f"{folder}bench-datasets/{i}-{path.name}"
        link_s, _ = median_time(partial(hsds.link_file, f"s3://{bucket}/{key}", domain, access), repeats)
        domains.append(domain)
        print(f"{count:>9} {path.stat().st_size:>12,} {link_s:>8.2f} {link_s / count:>10.4f}")
    return domains


def bench_records(env: dict[str, str], count: int) -> None:
    files = FilesTable(aws.client("dynamodb"), env["DC_FILES_TABLE"])
    now = utcnow()
    metas = []
    # Orbits with no item yet (the loader part of this run marked some as queued: not indexed).
    candidates = [BasicFusionName.for_orbit(o).file_name for o in range(70000, 70000 + 2 * count)]
    taken = files.get_many(candidates)
    free = [BasicFusionName.parse(n).orbit for n in candidates if n not in taken][:count]
    assert len(free) == count, f"only {len(free)} free orbits"
    for orbit in free:
        name = BasicFusionName.for_orbit(orbit)
        metas.append(
            FileMetadata(
                file_name=name.file_name, orbit=orbit, start_time=iso(name.start),
                end_time=iso(naming.orbit_end(orbit)), year=name.start.year, month=name.start.month,
                day=name.start.day, year_month=name.year_month, misr_path=name.misr_path,
                instruments=("CERES", "MISR", "MODIS"), modis_day_granules=10, modis_night_granules=10,
                ceres_granules=2, misr_first_daylit_block=30, misr_last_daylit_block=150, size_bytes=1,
                domain=naming.hsds_domain(env["DC_HSDS_FOLDER"], name),
            )
        )  # fmt: skip
    started = time.perf_counter()
    outcomes = [files.record_metadata(m, now) for m in metas]
    serial = time.perf_counter() - started
    assert outcomes.count("written") == count, outcomes[:5]
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        again = list(pool.map(lambda m: files.record_metadata(m, now), metas))
    unchanged = time.perf_counter() - started
    assert again.count("unchanged") == count
    print(
        f"\nrecord_metadata writes: {count} items in {serial:.1f} s = {count / serial:,.0f} items/s (serial, "
        f"read + conditional write); re-run with nothing to change: {count / unchanged:,.0f} items/s (8 threads)"
    )
    target = HsdsTarget(hsds.HsdsAccess.resolve(environ=env), env["DC_HSDS_FOLDER"])
    report = run_record_metadata(files, target, utcnow())
    print(
        f"record_metadata whole step (walk HSDS + read each domain + write): {report.domains} domains in "
        f"{report.seconds:.1f} s = {report.domains / max(report.seconds, 1e-9):.1f} domains/s {dict(report.outcomes)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=naming.ORBIT_COUNT, help="catalogue keys to put and list")
    parser.add_argument("--presets", default="tiny", help="orbit presets for link vs copy, e.g. tiny,small")
    parser.add_argument(
        "--orbit-file", type=Path, action="append", default=[], help="an existing orbit file to link and copy too"
    )
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each link (median printed)")
    parser.add_argument("--copy-repeats", type=int, default=1, help="repeats of each copy load (slow)")
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: loader,index,records")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    skip = set(filter(None, args.skip.split(",")))
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # run the finally: stop the services
    with (
        tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp,
        environment.running(Path(tmp) / "env") as local,
    ):
        env = local.env
        print(f"embedded environment up ({local.state_dir}); cpu count {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
        if "loader" not in skip:
            bench_loader(env, args.keys, moto_pid(local))
        if "index" not in skip:
            bench_index(
                local,
                [p for p in args.presets.split(",") if p],
                args.orbit_file,
                repeats=args.repeats,
                copy_repeats=args.copy_repeats,
                work=Path(tmp) / "orbits",
            )
        if "records" not in skip:
            bench_records(env, args.records)


if __name__ == "__main__":
    main()
