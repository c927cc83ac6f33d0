"""`python -m batch_jobs.compute_radiance {run,queue,array,composite,export,quicklook}`.

The Batch job definition runs `python -m batch_jobs.compute_radiance <mode> --resolution R --vza-max V`
(mode queue by default). Exit codes: 0 done, 1 retry later (transient), 2 bad input or configuration.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from botocore.exceptions import ClientError

from batch_jobs.compute_radiance import composite as comp
from batch_jobs.compute_radiance import export, native, quicklook, worker
from batch_jobs.compute_radiance.description import DEFINITION
from batch_jobs.compute_radiance.result import Parameters, load_npz, npz_bytes
from datacarousel import aws, errors, job, malloc
from datacarousel import orbit as readers
from datacarousel.aws import client
from datacarousel.config import Settings
from datacarousel.definitions import NO_OBJECT, OBJECT_PARAMETER, option_name
from datacarousel.errors import BadInput, ConfigError, DataCarouselError
from datacarousel.messages import WorkItem
from datacarousel.naming import RESULTS_PREFIX, BasicFusionName, composite_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("batch_jobs.compute_radiance")

app = typer.Typer(
    name="compute_radiance",
    help="ComputeRadiance (Climate Marble): grid Terra MODIS, MISR and CERES radiances of BasicFusion orbits.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _option(name: str) -> Any:
    """A parameter's option, its default and help taken from the job's description (definition.toml)."""
    spec = DEFINITION.parameter(name)
    return typer.Option(spec.value(spec.default), option_name(name), help=spec.help)


ResolutionOpt = _option("resolution")
VzaOpt = _option("vza_max")
CategoryOpt = _option("modis_category")
CameraOpt = _option("misr_camera")
CeresModeOpt = _option("ceres_mode")
ReaderOpt = typer.Option(
    "s3",
    "--reader",
    help="Work items: read the S3 object (s3), the HSDS domain (hsds), or the domain when given (auto).",
)


def _params(resolution: float, vza_max: float, category: str, camera: str, ceres_mode: str) -> Parameters:
    try:
        return Parameters(resolution, vza_max, category, camera, ceres_mode)
    except ValueError as exc:
        raise BadInput(f"bad parameters: {exc}") from exc


def _fail(exc: Exception) -> typer.Exit:
    """One line on stderr and the exit code every command and worker uses (`datacarousel.errors.outcome`):
    2 when no retry fixes it, 1 with "retry later" only when one may."""
    log.debug("failed", exc_info=True)
    ended = errors.outcome(exc)
    typer.echo(ended.line, err=True)
    return typer.Exit(code=ended.code)


def _check_aws() -> None:
    """Before the first AWS call: a stale local endpoint, a missing region or missing credentials, in one line
    (s3fs would otherwise find out deep in a read, with a traceback of its own)."""
    aws.check_local_endpoint()
    client("s3")  # refuses a missing region
    aws.check_credentials()


@app.callback()
def main(log_level: str = typer.Option("INFO", "--log-level", envvar="DC_LOG_LEVEL")) -> None:
    malloc.tune_for_jobs()  # before any reader thread exists
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if native.KERNELS is None:  # a set-up without a C compiler: the same results, slower
        log.warning("gridding kernels not built (%s): the numpy paths run instead", native.library_path().name)


@app.command()
def run(
    *,
    file: str = typer.Option(None, "--file", help="Local BasicFusion file."),
    s3: str = typer.Option(None, "--s3", help="s3://bucket/key of a readable BasicFusion object."),
    domain: str = typer.Option(None, "--domain", help="HSDS domain (HS_ENDPOINT, HS_USERNAME, HS_PASSWORD)."),
    out: str = typer.Option(
        ..., "--out", help="Result path, directory, or s3://bucket/key (a trailing '/' is a prefix)."
    ),
    resolution: float = ResolutionOpt,
    vza_max: float = VzaOpt,
    modis_category: str = CategoryOpt,
    misr_camera: str = CameraOpt,
    ceres_mode: str = CeresModeOpt,
) -> None:
    """Grid one orbit and write its result."""
    try:
        params = _params(resolution, vza_max, modis_category, misr_camera, ceres_mode)
        if s3 or out.startswith("s3://"):
            _check_aws()
        worker.check_output(out)
        source = worker.open_source(file=file, s3_url=s3, domain=domain)
        name = BasicFusionName.parse(source.name)
        result = worker.run_source(source, params)
        where = worker.write_output(npz_bytes(result.arrays()), out, name)
    except (DataCarouselError, OSError) as exc:
        raise _fail(exc) from exc
    summary = {"result": where, "skipped": sorted(result.reasons()), "t0": result.t0, "t1": result.t1}
    print(json.dumps(summary))  # noqa: T201


@app.command()
def queue(
    *,
    max_messages: int = typer.Option(None, "--max-messages", help="Stop after this many messages."),
    visibility_timeout: int = typer.Option(
        900, "--visibility-timeout", help="Seconds a message stays hidden (renewed while working)."
    ),
    reader: str = ReaderOpt,
    archive_object: str = typer.Option(
        NO_OBJECT,
        option_name(OBJECT_PARAMETER),
        help="s3://bucket/key of one readable archive object: grid it (result under results/console/) instead "
        f"of draining the queue; {NO_OBJECT!r} (the default): drain the queue.",
    ),
    resolution: float = ResolutionOpt,
    vza_max: float = VzaOpt,
    modis_category: str = CategoryOpt,
    misr_camera: str = CameraOpt,
    ceres_mode: str = CeresModeOpt,
) -> None:
    """Drain ComputeRadiance's work queue (`<stack>-ComputeRadiance-work`): WorkItems and its ReduceRequests.

    Poison goes to its dead-letter queue with the reason. With `--object`, one orbit instead (the
    console's single-orbit run).
    """
    try:
        params = _params(resolution, vza_max, modis_category, misr_camera, ceres_mode)
        settings = Settings.from_env(need=["results_bucket"])
        _check_aws()
        handler = worker.WorkItemHandler(client("s3"), settings.require("results_bucket"), params, reader=reader)
        if archive_object != NO_OBJECT:
            outcome = handler.handle_item(job.console_item(DEFINITION, archive_object, handler.defaults))
            done = "computed" if outcome.computed else "already there"
            print(json.dumps({"result": f"s3://{handler.results_bucket}/{outcome.key}", "outcome": done}))  # noqa: T201
            return
        report = job.serve(handler, max_messages=max_messages, visibility_timeout=visibility_timeout)
    except (DataCarouselError, ValueError) as exc:
        raise _fail(BadInput(str(exc)) if isinstance(exc, ValueError) else exc) from exc
    print(json.dumps({"drained": "ComputeRadiance's work queue", **report.as_dict()}))  # noqa: T201


@app.command()
def array(
    *,
    manifest: str = typer.Option(..., "--manifest", help="s3://bucket/key or path of a JSON list of work items."),
    index: int = typer.Option(
        None, "--index", envvar="AWS_BATCH_JOB_ARRAY_INDEX", help="Item to run (default: AWS_BATCH_JOB_ARRAY_INDEX)."
    ),
    reader: str = ReaderOpt,
    resolution: float = ResolutionOpt,
    vza_max: float = VzaOpt,
    modis_category: str = CategoryOpt,
    misr_camera: str = CameraOpt,
    ceres_mode: str = CeresModeOpt,
) -> None:
    """Run the manifest item picked by the Batch array index."""
    try:
        if index is None:
            raise ConfigError("AWS_BATCH_JOB_ARRAY_INDEX is not set (or give --index)")
        params = _params(resolution, vza_max, modis_category, misr_camera, ceres_mode)
        settings = Settings.from_env(need=["results_bucket"])
        s3 = client("s3")
        items = worker.load_manifest(manifest, s3)
        if not 0 <= index < len(items):
            raise BadInput(f"array index {index} outside the manifest ({len(items)} items)")
        item = WorkItem.from_dict(items[index])
        handler = worker.WorkItemHandler(s3, settings.require("results_bucket"), params, reader=reader)
        outcome = handler.handle_item(item)
    except (DataCarouselError, OSError) as exc:
        raise _fail(exc) from exc
    print(json.dumps({"result": outcome.key, "computed": outcome.computed, "skipped": list(outcome.skipped)}))  # noqa: T201


def _iter_inputs(inputs: list[str], s3: S3Client | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, arrays) of every result given: local files, directories, s3:// objects or s3:// prefixes
    (`s3`: None when every input is local)."""
    for item in inputs:
        if item.startswith("s3://"):
            assert s3 is not None, "an s3:// input needs an S3 client"
            bucket, key = readers.split_s3_url(item if not item.endswith("/") else item + "x")
            prefix = key[:-1] if item.endswith("/") else key
            if item.endswith("/"):
                paginator = s3.get_paginator("list_objects_v2")
                for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                    for obj in page.get("Contents", []):
                        if obj["Key"].endswith(".npz") and "/composites/" not in obj["Key"]:
                            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                            yield f"s3://{bucket}/{obj['Key']}", load_npz(body)
            else:
                yield item, load_npz(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        else:
            path = Path(item)
            files = sorted(path.rglob("*.npz")) if path.is_dir() else [path]
            for f in files:
                yield str(f), load_npz(str(f))


@app.command()
def composite(
    *,
    inputs: Annotated[
        list[str] | None,
        typer.Argument(help="Result files, directories, s3:// objects or s3:// prefixes ending in '/'."),
    ] = None,
    period: str = typer.Option("", "--period", help="YYYY.MM (monthly) or YYYY.MM.DD (daily); empty: every input."),
    job_id: str = typer.Option(
        "", "--job-id", help="Read results/<job>/<YYYY.MM>/ of DC_RESULTS_BUCKET and write its composite key."
    ),
    out: str = typer.Option(
        "", "--out", help="Composite path or s3://bucket/key (default with --job-id: the job's composite key)."
    ),
    netcdf: str = typer.Option("", "--netcdf", help="Also write a CF NetCDF file here."),
    quicklook_dir: str = typer.Option("", "--quicklook-dir", help="Also write quick-look PNGs here."),
) -> None:
    """Add orbit results into a daily or monthly composite (mean = sum / count)."""
    try:
        s3 = (
            client("s3")
            if job_id or any(i.startswith("s3://") for i in inputs or []) or out.startswith("s3://")
            else None
        )
        sources = list(inputs or [])
        if job_id:
            if not period:
                raise BadInput("--job-id needs --period")
            bucket = Settings.from_env(need=["results_bucket"]).require("results_bucket")
            month = ".".join(period.split(".")[:2])
            sources.append(f"s3://{bucket}/{comp.composite_key_prefix(job_id, month)}")
            if not out:
                out = f"s3://{bucket}/{composite_key(job_id, period)}"
        if not sources or not out:
            raise BadInput("give result inputs (or --job-id) and --out")
        built = comp.build(_iter_inputs(sources, s3), period)
        arrays = built.to_arrays()
    except (DataCarouselError, ValueError, OSError) as exc:
        raise _fail(exc if isinstance(exc, DataCarouselError) else BadInput(str(exc))) from exc
    data = npz_bytes(arrays)
    if out.startswith("s3://"):
        bucket, key = readers.split_s3_url(out)
        assert s3 is not None
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_bytes(data)
    if netcdf:
        export.write_netcdf(arrays, netcdf)
    if quicklook_dir:
        context = quicklook.MapContext.of_job(DEFINITION.name, job_id)
        quicklook.write_quicklooks(arrays, quicklook_dir, f"composite_{period or 'all'}", context)
    print(json.dumps({"composite": out, "orbits": len(built.sources), "period": period}))  # noqa: T201


def _load_one(location: str) -> dict[str, Any]:
    if location.startswith("s3://"):
        bucket, key = readers.split_s3_url(location)
        return load_npz(client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    return load_npz(location)


@app.command(name="export")
def export_cmd(
    source: str = typer.Argument(..., help="Result or composite .npz (path or s3://)."),
    out: str = typer.Option(..., "--out", help="NetCDF file to write."),
) -> None:
    """Write a result or composite as CF NetCDF (h5netcdf)."""
    path = export.write_netcdf(_load_one(source), out)
    print(json.dumps({"netcdf": str(path)}))  # noqa: T201


def _job_of(location: str) -> str:
    """The job of a key below `results/<job>/` (a composite or result in S3 or fetched with its layout)."""
    parts = location.removeprefix("s3://").split("/")
    if RESULTS_PREFIX in parts[:-2]:
        return parts[parts.index(RESULTS_PREFIX) + 1]
    return ""


@app.command(name="quicklook")
def quicklook_cmd(
    source: str = typer.Argument(..., help="Composite or result .npz (path or s3://)."),
    out_dir: str = typer.Option(..., "--out-dir", help="Directory for the PNG files."),
    job_id: str = typer.Option(
        "", "--job-id", help="The job named in the titles (default: from a results/<job>/... location)."
    ),
    owner: str = typer.Option("", "--owner", help="The job's owner, named in the titles."),
) -> None:
    """Quick-look PNG maps, one per instrument (coastlines; title with period, orbits, job, owner)."""
    stem = Path(source).name.removesuffix(".npz")
    try:
        arrays = _load_one(source)
    except (OSError, ValueError, ClientError) as exc:
        hint = "give the path or s3:// URL of a result or composite .npz"
        raise _fail(BadInput(f"{source}: cannot read it ({exc}); {hint}")) from exc
    except DataCarouselError as exc:
        raise _fail(exc) from exc
    context = quicklook.MapContext.of_job(DEFINITION.name, job_id or _job_of(source), owner)
    paths = quicklook.write_quicklooks(arrays, out_dir, stem, context)
    print(json.dumps({"png": [str(p) for p in paths]}))  # noqa: T201


def entry() -> None:
    os.environ.setdefault("MPLCONFIGDIR", tempfile.gettempdir())
    # Every failure ends in one line on stderr and its exit code (2: no retry fixes it), never a traceback.
    sys.exit(errors.run_one_line(lambda: typer.main.get_command(app).main(standalone_mode=False)))


if __name__ == "__main__":
    entry()
