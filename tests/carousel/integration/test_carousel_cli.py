"""Inventory, submission, status and cancellation through the `datacarousel` command line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from carousel import inventory
from datacarousel import naming, registry
from datacarousel.contract import FileAttr, JobAttr, JobFileAttr
from tests.carousel.integration.carousel_world import JUNE_2014, World
from workbench.cli import app

pytestmark = [pytest.mark.integration]

ORBITS = (JUNE_2014 + 40, JUNE_2014 + 41, JUNE_2014 + 42)


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_inventory_submit_status_cancel(world: World, no_scan: list[str]) -> None:
    prefix = "carousel-it/cli/"
    names = world.stage(ORBITS[:2], prefix)
    names += world.stage(ORBITS[2:], prefix, storage_class="STANDARD")  # readable as is
    world.s3.put_object(Bucket=world.archive, Key=f"{prefix}README.txt", Body=b"not an orbit")
    ctx = world.context()
    report = inventory.run(ctx.s3, ctx.tables.files, bucket=world.archive, prefix=prefix, now=0.0, page_size=2)
    assert (report.listed, report.created, report.skipped) == (4, 3, 1)  # every page, the stray key skipped
    again = cli("inventory", "--prefix", prefix)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["existing"] == 3 and json.loads(again.output)["created"] == 0
    first = world.file_item(ctx, names[0])
    name = naming.BasicFusionName.parse(names[0])
    assert first[FileAttr.STATE] == "ARCHIVED" and first[FileAttr.ORBIT] == ORBITS[0]
    assert first[FileAttr.YEAR_MONTH] == "2014.06" and first[FileAttr.MISR_PATH] == name.misr_path
    assert first[FileAttr.KEY] == naming.archive_key(name, prefix) and first[FileAttr.BUCKET] == world.archive
    assert first[FileAttr.SIZE] == world.orbit_files(ORBITS[0]).stat().st_size
    assert (first[FileAttr.YEAR], first[FileAttr.MONTH]) == (2014, 6)
    assert world.file_item(ctx, names[2])[FileAttr.STATE] == "RESTORED"

    paths = [str(naming.misr_path(o)) for o in ORBITS[:2]]
    out = cli(
        "submit", "--owner", "carol", "--years", "2014", "--months", "6",
        "--paths", f"{paths[0]},{paths[1]}", "--param", "resolution=5", "--json",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    answer = json.loads(out.output)
    job_id = answer["job_id"]
    mine = {r[JobFileAttr.FILE_NAME] for r in ctx.tables.job_files.of_job(job_id)}
    assert names[0] in mine and names[1] in mine and names[2] not in mine
    assert answer["file_count"] == len(mine) and answer["parameters"] == {
        **registry.get("ComputeRadiance").defaults(),
        "resolution": "5.0",
    }
    assert answer["estimated_cost"]["total"] > 0 and answer["estimated_start"]

    shown = cli("status", job_id, "--json")
    assert shown.exit_code == 0, shown.output
    (job,) = json.loads(shown.output)["jobs"]
    assert job["state"] == "OPEN" and job["files"]["waiting"] == len(mine) and job["eta"]

    table = cli("status", job_id)
    assert table.exit_code == 0 and job_id[:12] in table.output

    cancelled = cli("cancel", job_id)
    assert cancelled.exit_code == 0, cancelled.output
    assert set(json.loads(cancelled.output)["released_files"]) >= {names[0], names[1]}
    assert (ctx.tables.jobs.get(job_id) or {}).get(JobAttr.STATE) == "CANCELLED"
    twice = cli("cancel", job_id)
    assert twice.exit_code == 2 and "not open" in twice.output

    # A cancelled job's files are no longer restored: a step leaves them archived.
    stepped = cli("step", "--no-launch")
    assert stepped.exit_code == 0, stepped.output
    report = json.loads([line for line in stepped.stdout.splitlines() if line.startswith("{")][-1])
    assert "window_files" in report and job_id not in report["completed_jobs"]
    assert {world.file_item(ctx, n)[FileAttr.STATE] for n in names[:2]} == {"ARCHIVED"}
    assert not no_scan


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--owner", "Bad Owner", "--years", "2014"), "owner must match"),
        (("--owner", "dave", "--years", "1999"), "years must lie in 2000..2015"),
        (("--owner", "dave"), "the query selects the whole archive"),
        (("--owner", "dave", "--years", "2014", "--param", "colour=red"), "unknown parameter 'colour'"),
        (("--owner", "dave", "--paths", "22,x"), "--paths takes integers"),
        (("--owner", "dave", "--years", "2014", "--definition", "DropTables"), "unknown job definition"),
        (("--owner", "dave", "--years", "2001", "--months", "2", "--paths", "7"), "matches no inventoried file"),
    ],
)
def test_bad_submissions_are_refused_with_the_reason(world: World, args: tuple[str, ...], message: str) -> None:
    out = cli("submit", *args)
    assert out.exit_code == 2 and message in out.output, out.output
