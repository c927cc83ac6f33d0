"""The job SDK: an analysis is its description (`definition.toml`) and one function per orbit.

An analysis author writes the science and wires it with `main`; everything else — receiving its
work items from its own queue, heartbeats, opening the orbit through the fast read path, writing
the result once and idempotently under the job's prefix, skips and failures with their reasons,
dead-lettering poison, the reduce step at the end of a job — is done here, the same way for every
analysis:

    from datacarousel import job

    DEFINITION = job.describe(__file__)           # definition.toml beside this module

    def process(work: job.Work) -> job.Result:
        with work.open_orbit() as orbit:          # local file, restored S3 object or HSDS domain
            data = my_science(orbit, **work.parameters)
        return job.Result(to_bytes(data), skipped=("no CERES",))

    def reduce(reduction: job.Reduction) -> None:  # optional: once, after the job's last file
        for key, body in reduction.results():
            ...
        reduction.put("summary.nc", summary_bytes)

    if __name__ == "__main__":
        job.main(DEFINITION, process, reduce)

Errors: raise `BadInput` for what retrying cannot fix (the work item is dead-lettered with the
message as its reason); `TransientError`, or any AWS/HSDS hiccup, is retried by the queue.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from datacarousel import archive, aws, errors, malloc, naming, orbit, queue_worker
from datacarousel.config import Settings
from datacarousel.definitions import NO_OBJECT, OBJECT_PARAMETER, JobDefinition, load, option_name
from datacarousel.errors import (
    BadFileName,
    BadInput,
    ConfigError,
    DataCarouselError,
    MalformedMessage,
    NotReadable,
    TransientError,
    one_line,
)
from datacarousel.messages import ReduceRequest, WorkItem, parse_job_message
from datacarousel.naming import BasicFusionName
from datacarousel.work_queues import WorkQueues

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

# Object metadata of a result: what it was computed from, so a repeated work item is skipped.
META_PARAMETERS = "dc-parameters-digest"
META_SOURCE_ETAG = "dc-source-etag"
META_SKIPPED = "dc-skipped"
READERS = ("s3", "hsds", "auto")


def describe(module_file: str) -> JobDefinition:
    """The description of the analysis whose module this is: `definition.toml` in its package, or
    beside the package (the root of a research group's own project, as in `examples/`)."""
    package = Path(module_file).resolve().parent
    for folder in (package, package.parent):
        if (folder / "definition.toml").is_file():
            return load(folder / "definition.toml")
    raise ConfigError(f"no definition.toml in {package} or {package.parent}")


@dataclass(frozen=True)
class Result:
    """One orbit's result: the bytes to store, and what was left out of it and why."""

    data: bytes
    skipped: tuple[str, ...] = ()
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Work:
    """One work item as the analysis sees it: the orbit, its typed parameters, how to open it."""

    item: WorkItem
    name: BasicFusionName
    parameters: Mapping[str, Any]  # typed values (floats, ints, strings, tuples), defaults filled in
    opener: Callable[[], orbit.OrbitReader] = field(repr=False)
    canonical: Mapping[str, str] = field(default_factory=dict)  # the same values as their canonical strings

    def open_orbit(self) -> orbit.OrbitReader:
        """The orbit through the fast read path (a context manager; close it, or use `with`)."""
        return self.opener()


@dataclass
class Reduction:
    """A job whose every file is final: its orbit results, and where to put what reduces them."""

    job_id: str
    parameters: Mapping[str, Any]
    s3: S3Client
    bucket: str
    result_suffix: str
    written: list[str] = field(default_factory=list)
    owner: str = ""  # who submitted the job, for what the reducer writes (map titles); "" when not known

    @property
    def prefix(self) -> str:
        return f"{naming.RESULTS_PREFIX}/{self.job_id}/"

    def result_keys(self) -> list[str]:
        """The job's orbit results (`results/<job>/<YYYY.MM>/<name><suffix>`), sorted."""
        keys = aws.list_keys(self.s3, self.bucket, self.prefix)
        return sorted(k for k in keys if k.endswith(self.result_suffix) and k.count("/") == 3)

    def results(self) -> Iterator[tuple[str, bytes]]:
        for key in self.result_keys():
            yield key, bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def exists(self, relative: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self.prefix + relative)
        except ClientError as exc:
            if archive.is_not_found(exc):
                return False
            raise
        return True

    def record(self, key: str) -> None:
        """Count a key written by an earlier, interrupted run of this reduction in its marker."""
        if key not in self.written:
            self.written.append(key)

    def put(self, relative: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Write `results/<job>/<relative>`; returns the key."""
        key = self.prefix + relative
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        self.record(key)
        return key


@dataclass(frozen=True)
class Outcome:
    """What handling one work item did."""

    key: str
    computed: bool  # False when an identical result was already stored
    skipped: tuple[str, ...] = ()


Process = Callable[[Work], Result]
Reduce = Callable[[Reduction], None]


def parameters_digest(definition: JobDefinition, canonical: Mapping[str, str]) -> str:
    """What a result was computed with: the definition's name and every parameter, canonical."""
    text = json.dumps({"definition": definition.name, "parameters": dict(canonical)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Handler:
    """`handler(body)` for `queue_worker.drain`: a WorkItem becomes one result object; a ReduceRequest,
    the definition's reduction and then the job's reduced marker (written last)."""

    def __init__(
        self,
        definition: JobDefinition,
        process: Process,
        reduce: Reduce | None = None,
        *,
        s3: S3Client,
        results_bucket: str,
        reader: str = "auto",
        defaults: Mapping[str, Any] | None = None,
        s3_fs: Any | None = None,
    ) -> None:
        if reader not in READERS:
            raise ValueError(f"reader must be one of {READERS}")
        self.definition = definition
        self.process = process
        self.reduce = reduce
        self.s3 = s3
        self.results_bucket = results_bucket
        self.reader = reader
        self.defaults = definition.validate(defaults or {})
        self.s3_fs = s3_fs

    def __call__(self, body: str) -> None:
        message = parse_job_message(body)
        if message.job_definition != self.definition.name:
            raise BadInput(f"a {message.job_definition} message reached {self.definition.name}'s queue")
        try:
            if isinstance(message, ReduceRequest):
                self.handle_reduce(message)
            else:
                self.handle_item(message)
        finally:
            malloc.release_free_memory()  # what the file's buffers held, kept for reuse while it was read

    def canonical(self, given: Mapping[str, str], where: str) -> dict[str, str]:
        try:
            return self.definition.validate({**self.defaults, **given})
        except BadInput as exc:
            raise MalformedMessage(f"{where}: {exc}") from exc

    def handle_item(self, item: WorkItem) -> Outcome:
        """Compute and store one orbit's result, or find it stored already."""
        where = f"work item {item.job_id}/{item.file_name}"
        try:
            name = BasicFusionName.parse(item.file_name)
        except BadFileName as exc:
            raise BadInput(f"{where}: {exc}") from exc
        canonical = self.canonical(item.parameters, where)
        digest = parameters_digest(self.definition, canonical)
        key = self.definition.result_key(item.job_id, name)
        etag = self.source_etag(item)
        if self.already_done(key, digest, etag):
            log.info("%s: result already at %s, skipped", where, key)
            return Outcome(key, computed=False)
        work = Work(item, name, self.definition.values(canonical), partial(self.open, item), canonical)
        result = self.process(work)
        metadata = {META_PARAMETERS: digest, META_SOURCE_ETAG: etag, META_SKIPPED: ",".join(result.skipped)[:1024]}
        try:
            self.s3.put_object(
                Bucket=self.results_bucket,
                Key=key,
                Body=result.data,
                ContentType=result.content_type,
                Metadata=metadata,
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"result put to s3://{self.results_bucket}/{key} failed: {exc}") from exc
        log.info("%s: wrote s3://%s/%s (%d bytes); skipped: %s", where, self.results_bucket, key,
                 len(result.data), ", ".join(result.skipped) or "nothing")  # fmt: skip
        return Outcome(key, computed=True, skipped=result.skipped)

    def handle_reduce(self, request: ReduceRequest) -> list[str]:
        """Run the reduction (if the definition has one), then write the job's reduced marker."""
        canonical = self.canonical(request.parameters, f"reduce request {request.job_id}")
        reduction = Reduction(
            request.job_id,
            self.definition.values(canonical),
            self.s3,
            self.results_bucket,
            self.definition.result_suffix,
            owner=request.owner,
        )
        try:
            if self.reduce is not None:
                self.reduce(reduction)
            marker = {"job_id": request.job_id, "keys": sorted(reduction.written)}
            self.s3.put_object(
                Bucket=self.results_bucket,
                Key=naming.reduced_marker_key(request.job_id),
                Body=json.dumps(marker, sort_keys=True).encode(),
                ContentType="application/json",
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(f"job {request.job_id}: reducing failed: {exc}") from exc
        log.info("job %s: reduced (%d objects written)", request.job_id, len(reduction.written))
        return sorted(reduction.written)

    def open(self, item: WorkItem) -> orbit.OrbitReader:
        use_hsds = self.reader == "hsds" or (self.reader == "auto" and bool(item.domain))
        if use_hsds:
            if not item.domain:
                raise BadInput(f"work item {item.file_name}: no HSDS domain to read")
            return orbit.open_hsds(item.domain)
        return orbit.open_s3(f"s3://{item.bucket}/{item.key}", fs=self.s3_fs)

    def source_etag(self, item: WorkItem) -> str:
        """The source object's ETag; NotReadable while it is archived, BadInput if it is gone for good."""
        where = f"s3://{item.bucket}/{item.key}"
        try:
            head = self.s3.head_object(Bucket=item.bucket, Key=item.key)
        except ClientError as exc:
            code = archive.error_code(exc)
            if code in archive.NOT_FOUND_CODES:
                if item.domain and self.reader != "s3":
                    return ""  # reading from HSDS; the S3 object is not needed
                raise BadInput(f"{where}: no such object") from exc
            if code in ("403", "AccessDenied", "InvalidObjectState"):
                raise BadInput(f"{where}: not readable: {code}") from exc
            raise TransientError(f"head {where}: {exc}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"head {where}: {exc}") from exc
        storage_class = str(head.get("StorageClass", "STANDARD"))
        restore = archive.parse_restore_header(head.get("Restore")).status
        why = archive.why_unreadable(storage_class, restore, datetime.now(UTC))
        if why is not None:
            # Not readable yet (or its copy expired): retry later; the queue's redrive bounds the retries.
            raise NotReadable(f"{where} is archived ({storage_class}) and not restored: {why.value}")
        return archive.normalize_etag(head.get("ETag"))

    def already_done(self, key: str, digest: str, etag: str) -> bool:
        try:
            head = self.s3.head_object(Bucket=self.results_bucket, Key=key)
        except ClientError as exc:
            if archive.is_not_found(exc):
                return False
            raise TransientError(f"head s3://{self.results_bucket}/{key}: {exc}") from exc
        meta = head.get("Metadata", {})
        return bool(etag) and meta.get(META_PARAMETERS) == digest and meta.get(META_SOURCE_ETAG) == etag


# --- serving the definition's own queue, and the command line ------------------------------------


def serve(
    handler: Handler,
    *,
    max_messages: int | None = None,
    visibility_timeout: int | None = None,
    stack: str | None = None,
) -> queue_worker.DrainReport:
    """Drain the definition's own work queue (`<stack>-<definition>-work`) until it is empty.

    SIGTERM (what AWS Batch sends before it stops a job) finishes the current message, then stops:
    a message left unfinished returns to the queue when its visibility lapses.
    """
    settings = Settings.from_env(need=["stack_name"])
    sqs = aws.client("sqs")
    queues = WorkQueues(sqs, stack or settings.require("stack_name")).of(handler.definition.name)
    stop = threading.Event()

    def on_sigterm(signum: int, frame: Any) -> None:
        log.warning("SIGTERM: finishing the current message, then stopping")
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    return queue_worker.drain(
        sqs,
        queues.url,
        queues.dead_letter_url,
        handler,
        max_messages=max_messages,
        visibility_timeout=visibility_timeout or handler.definition.visibility_timeout_s,
        stop=stop,
    )


def write_output(data: bytes, out: str, default_name: str, s3: S3Client | None = None) -> str:
    """Write a result to a local file or folder, or to `s3://bucket/key` (a key ending in '/' is a prefix)."""
    if out.startswith("s3://"):
        bucket, _, key = out[len("s3://") :].partition("/")
        if not bucket:
            raise BadInput(f"{out}: no bucket")
        key = key + default_name if not key or key.endswith("/") else key
        (s3 or aws.client("s3")).put_object(Bucket=bucket, Key=key, Body=data)
        return f"s3://{bucket}/{key}"
    path = Path(out)
    if path.is_dir() or out.endswith("/"):
        path = path / default_name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)  # a reader never sees half a file
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}") from exc
    return str(path)


CONSOLE_JOB_ID = "console"  # results of single-orbit runs started by hand: results/console/<YYYY.MM>/


def console_item(definition: JobDefinition, url: str, parameters: Mapping[str, str]) -> WorkItem:
    """The work item of a single-orbit run on one archive object (`--object s3://bucket/key`)."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket or not key:
        raise BadInput(f"--object takes s3://bucket/key of an archive object, got {url!r}")
    try:
        name = BasicFusionName.parse(key.rsplit("/", 1)[-1])
    except BadFileName as exc:
        raise BadInput(f"--object {url}: {exc}") from exc
    return WorkItem(CONSOLE_JOB_ID, definition.name, name.file_name, bucket, key, parameters=dict(parameters))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _one_line_parser(command_line: Sequence[str]) -> type[argparse.ArgumentParser]:
    """An argparse parser class (for the parser and its subparsers) that ends a usage error in one line naming
    `--help` (exit 2), not a usage block; an unknown option of `command_line` is named first (argparse would
    report a missing required option before it)."""

    class OneLineParser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            known = self._option_string_actions
            unknown = [
                t
                for t in command_line
                if t.startswith("-") and not _is_number(t) and t.split("=", 1)[0] not in known  # -95: a value
            ]
            if unknown:
                message = f"unrecognized arguments: {' '.join(unknown)}"
            self.exit(2, f"error: {one_line(message)} (see `{self.prog} --help`)\n")

    return OneLineParser


def _parser(definition: JobDefinition, command_line: Sequence[str]) -> argparse.ArgumentParser:
    parser_class = _one_line_parser(command_line)
    parser = parser_class(
        prog=f"python -m {definition.command[-1]}",
        description=f"{definition.name}: {definition.summary}",
        epilog="Exit codes: 0 done, 1 retry later, 2 bad input or configuration.",
    )
    modes = parser.add_subparsers(dest="mode", required=True, metavar="MODE", parser_class=parser_class)
    queue = modes.add_parser("queue", help="Drain this definition's work queue (the Batch job's default).")
    queue.add_argument("--max-messages", type=int, default=None, help="Stop after this many messages.")
    queue.add_argument(
        option_name(OBJECT_PARAMETER),
        dest="object",
        default=NO_OBJECT,
        help="s3://bucket/key of one readable archive object: compute it (result under results/console/) "
        f"instead of draining the queue; {NO_OBJECT!r} (the default): drain the queue.",
    )
    run = modes.add_parser("run", help="Run one orbit: a local file, an S3 object or an HSDS domain.")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="Local BasicFusion file.")
    source.add_argument("--s3", help="s3://bucket/key of a readable BasicFusion object.")
    source.add_argument("--domain", help="HSDS domain (HS_ENDPOINT, HS_USERNAME, HS_PASSWORD).")
    run.add_argument("--out", required=True, help="Result file, folder, or s3://bucket/key ('/' at the end: a prefix).")
    reduce = modes.add_parser("reduce", help="Reduce a job's results now (what its ReduceRequest does).")
    reduce.add_argument("--job-id", required=True, help="The job whose results to reduce.")
    for mode in (queue, run, reduce):
        mode.add_argument("--reader", choices=READERS, default="auto", help="How work items are read.")
        for p in definition.parameters:
            mode.add_argument(
                option_name(p.name),
                dest=f"param_{p.name}",
                metavar=p.name.upper(),
                default=p.default,
                help=p.describe(),
            )
    return parser


def _run_one(definition: JobDefinition, process: Process, args: argparse.Namespace, defaults: dict[str, str]) -> str:
    if args.file:
        name_text, opener = Path(args.file).name, partial(orbit.open_local, args.file)
    elif args.s3:
        name_text, opener = args.s3.rsplit("/", 1)[-1], partial(orbit.open_s3, args.s3)
    else:
        name_text, opener = args.domain.rsplit("/", 1)[-1], partial(orbit.open_hsds, args.domain)
    try:
        name = BasicFusionName.parse(name_text)
    except BadFileName as exc:
        raise BadInput(str(exc)) from exc
    item = WorkItem("local", definition.name, name.file_name, "local", name_text, parameters=defaults)
    result = process(Work(item, name, definition.values(defaults), opener, defaults))
    default_name = name.result_file(definition.result_prefix, definition.result_suffix)
    return write_output(result.data, args.out, default_name)


def _check_aws() -> None:
    """Before the first AWS call: a stale local endpoint, a missing region or missing credentials, in one line."""
    aws.check_local_endpoint()
    aws.client("s3")  # refuses a missing region
    aws.check_credentials()


def main(
    definition: JobDefinition, process: Process, reduce: Reduce | None = None, argv: list[str] | None = None
) -> int:
    """The analysis's command line (`queue`, `run`, `reduce`); ends every error in one line and its exit code."""
    args = _parser(definition, list(sys.argv[1:] if argv is None else argv)).parse_args(argv)
    malloc.tune_for_jobs()  # before any reader thread exists
    level = os.environ.get("DC_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # botocore's INFO lines ("Found credentials ...") say nothing a researcher needs; DEBUG shows them.
    logging.getLogger("botocore").setLevel(level if level == "DEBUG" else logging.WARNING)
    try:
        defaults = definition.validate({p.name: getattr(args, f"param_{p.name}") for p in definition.parameters})
        if args.mode != "run" or args.s3:  # AWS is reached: say now when it cannot be (s3fs would say it deep down)
            _check_aws()
        if args.mode == "run":
            print(json.dumps({"result": _run_one(definition, process, args, defaults)}))  # noqa: T201
            return 0
        settings = Settings.from_env(need=["results_bucket"])
        handler = Handler(
            definition,
            process,
            reduce,
            s3=aws.client("s3"),
            results_bucket=settings.require("results_bucket"),
            reader=args.reader,
            defaults=defaults,
        )
        if args.mode == "reduce":
            keys = handler.handle_reduce(ReduceRequest(args.job_id, definition.name, defaults))
            print(json.dumps({"job_id": args.job_id, "written": keys}))  # noqa: T201
            return 0
        if args.object != NO_OBJECT:
            outcome = handler.handle_item(console_item(definition, args.object, defaults))
            done = "computed" if outcome.computed else "already there"
            print(json.dumps({"result": f"s3://{handler.results_bucket}/{outcome.key}", "outcome": done}))  # noqa: T201
            return 0
        report = serve(handler, max_messages=args.max_messages)
        print(json.dumps({"drained": f"{definition.name}'s work queue", **report.as_dict()}))  # noqa: T201
        return 0
    except (DataCarouselError, OSError, ClientError, BotoCoreError) as exc:
        log.debug("failed", exc_info=True)
        ended = errors.outcome(exc)  # the code and the line every command and worker uses
        print(ended.line, file=sys.stderr)  # noqa: T201
        return ended.code
    except Exception as exc:  # the analysis's own code failed: no retry fixes that, its authors can
        log.debug("analysis failure", exc_info=True)
        hint = "hint: DC_LOG_LEVEL=DEBUG shows the trace; report it to the analysis's authors"
        print(f"error: {definition.name} failed: {type(exc).__name__}: {exc} ({hint})", file=sys.stderr)  # noqa: T201
        return 2
