"""Moving orbit files into the archive bucket and a job's results out of the results bucket.

`plan_upload` / `upload` put every BasicFusion orbit file of a directory under its archive key
(`naming.archive_key`) with a chosen storage class, skipping objects already there with the same size;
`job_objects` / `fetch` copy everything under a job's results prefix (`results/<job>/`: per-orbit
results, the reducer's composites, NetCDF files, quick-looks, its marker) into a local folder, keeping
the key layout and skipping files already there with the same size; `jobs_with_results` lists the jobs
a results bucket holds anything for (what `datacarousel down` warns about). The command line around
them is `workbench.commands.transfer`; `Reporter` is how they say what they do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from datacarousel import archive, naming
from datacarousel.contract import Env
from datacarousel.errors import BadFileName, BadInput

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Multipart above 64 MiB in 64 MiB parts, 4 parts at a time: a 40 GB orbit is 640 parts (S3's limit is 10,000).
TRANSFER_CONFIG = TransferConfig(
    multipart_threshold=64 * 2**20, multipart_chunksize=64 * 2**20, max_concurrency=4, use_threads=True
)


class Reporter(Protocol):
    """What a transfer says: a line per file, bytes as they move, the total up front."""

    def begin(self, files: int, total_bytes: int) -> None: ...

    def advance(self, n_bytes: int) -> None: ...

    def line(self, text: str) -> None: ...

    def end(self) -> None: ...


def size_text(n_bytes: int) -> str:
    """`1.23 GB`: decimal units, as S3 and the bill count them."""
    value = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{n_bytes} B" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _existing_size(s3: S3Client, bucket: str, key: str) -> int | None:
    try:
        return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as exc:
        if archive.is_not_found(exc):
            return None
        raise


# ---- upload ----


@dataclass(frozen=True)
class OrbitFile:
    path: Path
    name: naming.BasicFusionName
    key: str
    size: int


@dataclass
class UploadPlan:
    files: list[OrbitFile]  # BasicFusion orbit files, each with its archive key
    not_basicfusion: list[str]  # `*.h5` names that do not parse


@dataclass
class UploadReport:
    uploaded: list[OrbitFile] = field(default_factory=list)
    skipped: list[OrbitFile] = field(default_factory=list)  # already there with the same size
    not_basicfusion: list[str] = field(default_factory=list)

    @property
    def uploaded_bytes(self) -> int:
        return sum(f.size for f in self.uploaded)

    def summary(self, bucket: str, storage_class: str) -> str:
        return (
            f"uploaded {len(self.uploaded)} ({size_text(self.uploaded_bytes)}) to s3://{bucket}/ as {storage_class}, "
            f"skipped {len(self.skipped)} already there, {len(self.not_basicfusion)} not BasicFusion names"
        )


def plan_upload(directory: Path, prefix: str) -> UploadPlan:
    """The `*.h5` files of `directory` (not its subfolders): BasicFusion ones with their keys, the others by name.

    `BadInput` if the directory is missing or holds no `*.h5` file at all."""
    if not directory.is_dir():
        raise BadInput(f"{directory} is not a directory (write orbit files with `datacarousel generate --out DIR`)")
    files: list[OrbitFile] = []
    others: list[str] = []
    for path in sorted(p for p in directory.glob("*.h5") if p.is_file()):
        try:
            name = naming.BasicFusionName.parse(path.name)
        except BadFileName:
            others.append(path.name)
            continue
        files.append(OrbitFile(path, name, naming.archive_key(name, prefix), path.stat().st_size))
    if not files and not others:
        raise BadInput(
            f"no *.h5 file in {directory} (write orbit files with `datacarousel generate --out {directory}`)"
        )
    return UploadPlan(files, others)


def upload(
    s3: S3Client,
    bucket: str,
    plan: UploadPlan,
    *,
    storage_class: str,
    reporter: Reporter,
    config: TransferConfig = TRANSFER_CONFIG,
) -> UploadReport:
    """Upload what the bucket lacks (an object of the same size is left alone: replacing it would drop a
    restored copy the tables may count on); a different size is replaced."""
    report = UploadReport(not_basicfusion=list(plan.not_basicfusion))
    todo: list[tuple[OrbitFile, int | None]] = []
    for item in plan.files:
        there = _existing_size(s3, bucket, item.key)
        if there == item.size:
            report.skipped.append(item)
        else:
            todo.append((item, there))
    reporter.begin(len(todo), sum(item.size for item, _ in todo))
    try:
        for item, there in todo:
            s3.upload_file(
                str(item.path),
                bucket,
                item.key,
                ExtraArgs={"StorageClass": storage_class},
                Config=config,
                Callback=reporter.advance,
            )
            report.uploaded.append(item)
            replaced = f" (replaced an object of {size_text(there)})" if there is not None else ""
            reporter.line(f"uploaded {item.path.name} -> s3://{bucket}/{item.key} ({size_text(item.size)}){replaced}")
    finally:
        reporter.end()
    return report


# ---- fetch ----


def job_prefix(job_id: str) -> str:
    return f"{naming.RESULTS_PREFIX}/{job_id}/"


def check_job_id(job_id: str) -> str:
    """A job id as a key segment and a folder name: no `/`, not `.` or `..`, not empty."""
    if not job_id or "/" in job_id or "\\" in job_id or job_id in (".", ".."):
        raise BadInput(f"{job_id!r} is not a job id (see `datacarousel status` for the jobs)")
    return job_id


def job_objects(s3: S3Client, bucket: str, job_id: str) -> dict[str, int]:
    """Every object under the job's results prefix: relative key -> size (all pages)."""
    prefix = job_prefix(check_job_id(job_id))
    objects: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = str(obj["Key"])
            if not key.endswith("/"):  # a "folder" placeholder holds nothing to fetch
                objects[key[len(prefix) :]] = int(obj.get("Size", 0))
    return objects


def _local_path(root: Path, relative: str) -> Path:
    parts = PurePosixPath(relative).parts
    if not parts or any(p in ("..", ".", "") for p in parts) or relative.startswith("/"):
        raise BadInput(f"result key {relative!r} would leave {root}")
    return root.joinpath(*parts)


@dataclass
class FetchReport:
    root: Path
    fetched: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # already there with the same size

    def summary(self) -> str:
        files = len(self.fetched) + len(self.skipped)
        total = sum(self.fetched.values()) + sum(self.skipped.values())
        return (
            f"{files} file(s), {size_text(total)} in {self.root} "
            f"(fetched {len(self.fetched)}, {size_text(sum(self.fetched.values()))}; "
            f"skipped {len(self.skipped)} already there)"
        )


def fetch(
    s3: S3Client,
    bucket: str,
    job_id: str,
    objects: dict[str, int],
    root: Path,
    *,
    reporter: Reporter,
    config: TransferConfig = TRANSFER_CONFIG,
) -> FetchReport:
    """Download `objects` (relative key -> size under the job's prefix) into `root`, keeping the layout."""
    prefix = job_prefix(job_id)
    report = FetchReport(root)
    todo: list[tuple[str, int, Path]] = []
    for relative, size in sorted(objects.items()):
        path = _local_path(root, relative)
        if path.is_file() and path.stat().st_size == size:
            report.skipped[relative] = size
        else:
            todo.append((relative, size, path))
    reporter.begin(len(todo), sum(size for _, size, _ in todo))
    try:
        for relative, size, path in todo:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".part")  # never a half file under the real name
            s3.download_file(bucket, prefix + relative, str(partial), Config=config, Callback=reporter.advance)
            partial.replace(path)
            report.fetched[relative] = size
            reporter.line(f"fetched {relative} ({size_text(size)})")
    finally:
        reporter.end()
    return report


def jobs_with_results(s3: S3Client, bucket: str, *, limit: int = 1000) -> list[str]:
    """The job ids the results bucket holds anything for (`results/<job>/...`), sorted; looks at no more
    than `limit` keys' worth of listing pages for the common prefixes."""
    jobs: list[str] = []
    seen = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{naming.RESULTS_PREFIX}/", Delimiter="/"
    ):
        for common in page.get("CommonPrefixes", []):
            jobs.append(str(common["Prefix"]).rstrip("/").rsplit("/", 1)[-1])
        seen += int(page.get("KeyCount", 0))
        if seen >= limit:
            break
    return sorted(jobs)


def environment_s3(env: Mapping[str, str]) -> S3Client:
    """An S3 client of an embedded environment's env file (its moto endpoint and dummy keys), quick to give
    up: it asks one question on the way to `datacarousel down`, which must not hang on it."""
    session = boto3.session.Session(
        aws_access_key_id=env.get(Env.AWS_ACCESS_KEY_ID),
        aws_secret_access_key=env.get(Env.AWS_SECRET_ACCESS_KEY),
        region_name=env.get(Env.AWS_REGION),
    )
    config = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=2, read_timeout=5)
    return session.client("s3", endpoint_url=env.get(Env.AWS_ENDPOINT_URL), config=config)


def loss_warning(bucket: str, jobs: Sequence[str], shown: int = 3) -> str:
    """The one line `datacarousel down` prints when moto holds results: they go with it; how to keep them."""
    commands = ", ".join(f"`datacarousel fetch {job}`" for job in jobs[:shown])
    more = ", …" if len(jobs) > shown else ""
    return (
        f"warning: s3://{bucket}/{naming.RESULTS_PREFIX}/ holds results of {len(jobs)} job(s), kept only in moto's "
        f"memory: they are lost as it stops (keep them by running {commands}{more} before `datacarousel down`)"
    )
