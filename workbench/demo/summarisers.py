"""What a definition's jobs produced: one summariser per definition, the generic one otherwise.

`collect(demo, s3, outputs)` fetches what the jobs produced; `show(demo, summary)` prints it after
the generic summary. ComputeRadiance gets its monthly composite and quick-looks, RegionExtract its
samples per instrument; any other definition its result objects and the reducer's outputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.demo.plan import RADIANCE
from workbench.demo.summary import JobOutput

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from workbench.demo.run import Demo

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xarray as xr
from rich.table import Table

from batch_jobs.compute_radiance import composite as comp
from batch_jobs.compute_radiance import quicklook
from batch_jobs.compute_radiance.result import load_npz, npz_bytes
from datacarousel import naming

INSTRUMENTS = ("modis", "misr", "ceres")


@dataclass(frozen=True)
class Summariser:
    """`collect(demo, s3, outputs)` fetches what the jobs produced (adds to each job's facts, returns
    summary-wide facts); `show(demo, summary)` prints it after the generic summary."""

    collect: Callable[[Demo, Any, list[JobOutput]], dict[str, Any]]
    show: Callable[[Demo, Mapping[str, Any]], None]


def _download(demo: Demo, s3: S3Client, output: JobOutput, key: str) -> str | None:
    """A copy of `key` under the job's local folder, at its path below `results/<job>/` (None: not below it)."""
    relative = key.removeprefix(f"{naming.RESULTS_PREFIX}/{output.info.job_id}/")
    if relative == key or not relative or ".." in relative.split("/"):
        return None
    target = output.local_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(demo.results_bucket, key, str(target))
    return str(target)


def collect_generic(demo: Demo, s3: S3Client, outputs: list[JobOutput]) -> dict[str, Any]:
    """Any definition: local copies of what its reducer wrote; the result objects are counted already."""
    for output in outputs:
        copies = (_download(demo, s3, output, key) for key in output.reduced)
        output.facts["local_copies"] = [path for path in copies if path]
    return {}


def _relative(job: Mapping[str, Any], url: str) -> str:
    """An S3 location below the job's results prefix, as its path there (`timeseries/MODIS.nc`)."""
    return url.removeprefix(str(job["results"]))


def show_generic(demo: Demo, summary: Mapping[str, Any]) -> None:
    title = f"{summary['definition']} results (under each job's results; reduced: the job item's composite_key)"
    table = Table(title=title)
    table.add_column("researcher")
    table.add_column("result objects", justify="right")
    table.add_column("MiB", justify="right")
    table.add_column("reduced outputs", overflow="fold")
    for job in summary["jobs"]:
        reduced = ", ".join(_relative(job, url) for url in job["reduced"]) or "-"
        table.add_row(job["owner"], str(job["result_objects"]), f"{job['result_bytes'] / 2**20:.2f}", reduced)
    demo.console.print(table)
    for job in summary["jobs"]:
        if job["local_copies"]:
            local = Path(summary["out_dir"]) / "jobs" / f"{job['owner']}-{job['job_id']}"
            demo.say(f"   {job['owner']}'s reduced outputs, copied under {local}")


def collect_radiance(demo: Demo, s3: S3Client, outputs: list[JobOutput]) -> dict[str, Any]:
    """ComputeRadiance: each job's composite and maps copied; everyone's month composite and quick-looks."""

    out, month, bucket = demo.options.out_dir, demo.options.month, demo.results_bucket
    all_results: list[tuple[str, dict[str, Any]]] = []
    for output in outputs:
        job_id, keys, downloaded = output.info.job_id, output.objects, []
        for instrument in INSTRUMENTS:
            key = naming.composite_key(job_id, month, f"_{instrument}.png")
            if key in keys:
                target = output.local_dir / f"{month}_{instrument}.png"
                s3.download_file(bucket, key, str(target))
                downloaded.append(str(target))
        if naming.composite_key(job_id, month) in keys:
            target = output.local_dir / f"{month}.npz"
            s3.download_file(bucket, naming.composite_key(job_id, month), str(target))
            downloaded.append(str(target))
        for key in output.result_keys:
            all_results.append((key, load_npz(s3.get_object(Bucket=bucket, Key=key)["Body"].read())))
        output.facts["composites"] = [f"s3://{bucket}/{k}" for k in sorted(keys) if f"/{naming.COMPOSITES_DIR}/" in k]
        output.facts["local_copies"] = downloaded
    # Everyone's month: one composite over both jobs' results (a shared orbit counts once).
    quicklooks: list[str] = []
    composite_path = None
    n_orbits = 0
    if all_results:
        arrays = comp.build(all_results, month).to_arrays()
        n_orbits = int(arrays["n_orbits"])
        composite_path = out / f"{month}.npz"
        composite_path.write_bytes(npz_bytes(arrays))
        everyone = quicklook.MapContext(RADIANCE, tuple((o.info.job_id, o.info.owner) for o in outputs))
        quicklooks = [str(p) for p in quicklook.write_quicklooks(arrays, out, month, everyone)]
    return {
        "month_composite": {"npz": str(composite_path) if composite_path else None, "orbits": n_orbits},
        "quicklooks": quicklooks,
    }


def show_radiance(demo: Demo, summary: Mapping[str, Any]) -> None:
    mc = summary["month_composite"]
    demo.say(
        f"[bold]Monthly composite[/bold] of {mc['orbits']} orbits: {mc['npz']}; quick-looks: "
        + ", ".join(summary["quicklooks"])
    )


# RegionExtract's reducer writes results/<job>/timeseries/<INSTRUMENT>.nc (batch_jobs/region_extract/__main__.py).
REGION_TIMESERIES_DIR = "timeseries"


def collect_region(demo: Demo, s3: S3Client, outputs: list[JobOutput]) -> dict[str, Any]:
    """RegionExtract: the generic facts, plus the samples per instrument of each time series file."""

    collect_generic(demo, s3, outputs)
    for output in outputs:
        series: dict[str, dict[str, Any]] = {}
        for key in output.reduced:
            parts = key.split("/")
            if len(parts) != 4 or parts[2] != REGION_TIMESERIES_DIR or not key.endswith(".nc"):
                continue
            data = s3.get_object(Bucket=demo.results_bucket, Key=key)["Body"].read()
            with xr.open_dataset(io.BytesIO(data), engine="h5netcdf") as ds:
                series[parts[3].removesuffix(".nc")] = {
                    "key": f"s3://{demo.results_bucket}/{key}",
                    "samples": int(ds.sizes.get("obs", 0)),
                    "orbits": int(ds.sizes.get("orbit_files", 0)),
                }
        output.facts["timeseries"] = series
    return {}


def show_region(demo: Demo, summary: Mapping[str, Any]) -> None:
    show_generic(demo, summary)
    table = Table(title="RegionExtract time series: samples per instrument")
    table.add_column("researcher")
    table.add_column("file")
    table.add_column("samples", justify="right")
    table.add_column("orbits", justify="right")
    for job in summary["jobs"]:
        for found in job.get("timeseries", {}).values():
            table.add_row(job["owner"], _relative(job, found["key"]), str(found["samples"]), str(found["orbits"]))
    demo.console.print(table)


SUMMARISERS: dict[str, Summariser] = {
    RADIANCE: Summariser(collect_radiance, show_radiance),
    "RegionExtract": Summariser(collect_region, show_region),
}
GENERIC = Summariser(collect_generic, show_generic)


def summariser(definition: str) -> Summariser:
    """What to say about a definition's jobs: its own summariser, or the generic one."""
    return SUMMARISERS.get(definition, GENERIC)
