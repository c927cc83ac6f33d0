"""loader -> index_file -> record_metadata on the embedded environment, twice.

Synthetic orbits go to the stack's archive bucket: one STANDARD, one Deep Archive
restored (its storage class stays DEEP_ARCHIVE), one Deep Archive never restored.
The pipeline must yield exactly one complete domain and one correct item per
readable file, never queue the archived one, change nothing when run again, and
answer the researcher queries through indexes only (any Scan fails the test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import pytest
from typer.testing import CliRunner

from datacarousel import aws, hsds
from datacarousel.contract import FileAttr, FileState
from datacarousel.files_table import FilesTable
from datacarousel.naming import BasicFusionName, archive_key, hsds_domain
from datacarousel.queue_worker import drain
from datacarousel.times import utcnow
from index_file.adapters import HsdsTarget, IndexFileHandler, read_domain_root
from loader.adapters import run as run_loader
from loader.ledger import IndexRequestLedger
from record_metadata.adapters import run as run_record_metadata
from record_metadata.adapters import walk_domains
from workbench.cli import app
from workbench.synthetic.generator import generate_orbit

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STANDARD, RESTORED, ARCHIVED = 63001, 63002, 63003
READABLE = (STANDARD, RESTORED)
PREFIX = "pipeline-test/"


@pytest.fixture(scope="module")
def world(local_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    env = local_env.env
    s3, sqs = aws.client("s3"), aws.client("sqs")
    files = FilesTable(aws.client("dynamodb"), env["DC_FILES_TABLE"])
    ledger = IndexRequestLedger(aws.client("dynamodb"), env["DC_INDEX_REQUESTS_TABLE"])
    target = HsdsTarget(hsds.HsdsAccess.resolve(environ=env), env["DC_HSDS_FOLDER"])
    bucket = env["DC_ARCHIVE_BUCKET"]
    out = tmp_path_factory.mktemp("pipeline")
    paths: dict[int, Path] = {}
    keys: dict[int, str] = {}
    for orbit, storage in ((STANDARD, "STANDARD"), (RESTORED, "DEEP_ARCHIVE"), (ARCHIVED, "DEEP_ARCHIVE")):
        paths[orbit] = generate_orbit(orbit, out, preset="tiny", seed=orbit)
        keys[orbit] = archive_key(BasicFusionName.parse(paths[orbit].name), PREFIX)
        s3.upload_file(str(paths[orbit]), bucket, keys[orbit], ExtraArgs={"StorageClass": storage})
    s3.restore_object(
        Bucket=bucket, Key=keys[RESTORED], RestoreRequest={"Days": 2, "GlacierJobParameters": {"Tier": "Bulk"}}
    )
    world = {
        "s3": s3, "sqs": sqs, "files": files, "ledger": ledger, "target": target, "bucket": bucket,
        "paths": paths, "keys": keys, "queue": env["DC_INDEX_QUEUE_URL"], "dlq": env["DC_INDEX_DLQ_URL"],
    }  # fmt: skip
    yield world
    for orbit in (STANDARD, RESTORED, ARCHIVED):
        name = BasicFusionName.for_orbit(orbit)
        for table in (files, ledger):
            table.ddb.delete_item(TableName=table.table, Key={FileAttr.FILE_NAME: {"S": name.file_name}})
        hsds.delete_domain(hsds_domain(target.folder, name), target.access)


def _pipeline(world: dict[str, Any]) -> dict[str, Any]:
    """One pass of the three steps; returns their reports."""
    loader = run_loader(
        world["s3"], world["sqs"], world["files"], world["ledger"], bucket=world["bucket"], queue_url=world["queue"],
        prefix=PREFIX, now=utcnow(),
    )  # fmt: skip
    handler = IndexFileHandler(world["s3"], world["files"], world["target"], archive_bucket=world["bucket"])
    drained = drain(world["sqs"], world["queue"], world["dlq"], handler, wait_seconds=1, visibility_timeout=60)
    recorded = run_record_metadata(world["files"], world["target"], utcnow())
    return {"loader": loader, "drain": drained, "handler": handler, "record": recorded}


def _mine(world: dict[str, Any]) -> dict[int, dict[str, Any] | None]:
    names = {o: BasicFusionName.for_orbit(o).file_name for o in (STANDARD, RESTORED, ARCHIVED)}
    found = world["files"].get_many(names.values())
    return {o: found.get(n) for o, n in names.items()}


def test_pipeline_indexes_each_readable_file_once_and_is_idempotent(world: dict[str, Any], no_scan: list[str]) -> None:
    first = _pipeline(world)
    assert sorted(first["loader"].queued_keys) == sorted(world["keys"][o] for o in READABLE)
    assert first["loader"].skipped["archived"] == 1
    assert (first["drain"].processed, first["drain"].dead_lettered, first["drain"].left) == (2, 0, 0)

    target = world["target"]
    domains = [d for d in walk_domains(target, target.folder) if "_O6300" in d]
    assert sorted(domains) == sorted(hsds_domain(target.folder, BasicFusionName.for_orbit(o)) for o in READABLE)
    items = _mine(world)
    assert items[ARCHIVED] is None, "an archived file is never queued, indexed or recorded"
    for orbit in READABLE:
        item = items[orbit]
        assert item is not None
        head = world["s3"].head_object(Bucket=world["bucket"], Key=world["keys"][orbit])
        marker = read_domain_root(target, item[FileAttr.DOMAIN]).marker
        assert marker is not None and marker.etag == head["ETag"].strip('"')
        name = BasicFusionName.for_orbit(orbit)
        with h5py.File(world["paths"][orbit], "r") as f:
            granules = list(f["MODIS"])
            day = sum("EV_250_Aggr1km_RefSB" in f[f"MODIS/{g}/_1KM/Data_Fields"] for g in granules)
            daylit = [i + 1 for i, v in enumerate(f["MISR/AN/BlockCenterTime"][()]) if not v.startswith(b"0000")]
            ceres = len(f["CERES"])
            instruments = sorted(k for k in f if k in {"ASTER", "CERES", "MISR", "MODIS", "MOPITT"})
        assert item[FileAttr.STATE] == FileState.INDEXED.value and item[FileAttr.STATE_VERSION] == 1
        assert item[FileAttr.DOMAIN] == hsds_domain(target.folder, name)
        assert item[FileAttr.ORBIT] == orbit and item[FileAttr.MISR_PATH] == name.misr_path
        assert item[FileAttr.YEAR_MONTH] == name.year_month
        assert (item[FileAttr.YEAR], item[FileAttr.MONTH], item[FileAttr.DAY]) == (
            name.start.year, name.start.month, name.start.day,
        )  # fmt: skip
        assert item[FileAttr.SIZE] == head["ContentLength"] == world["paths"][orbit].stat().st_size
        assert item[FileAttr.INSTRUMENTS] == instruments
        assert (item[FileAttr.MODIS_DAY_GRANULES], item[FileAttr.MODIS_NIGHT_GRANULES]) == (day, len(granules) - day)
        assert item[FileAttr.CERES_GRANULES] == ceres
        assert (item[FileAttr.MISR_FIRST_BLOCK], item[FileAttr.MISR_LAST_BLOCK]) == (daylit[0], daylit[-1])

    # Every step again: nothing changes (no message, no new domain build, no item write).
    markers = {o: read_domain_root(target, items[o][FileAttr.DOMAIN]).marker for o in READABLE}  # type: ignore[index]
    second = _pipeline(world)
    assert second["loader"].queued == 0 and second["loader"].skipped["already-indexed"] == 2
    assert second["drain"].received == 0
    # record_metadata walks every domain (other tests' too): ours hold current metadata, so they are
    # not even opened; and the items are byte-for-byte unchanged.
    assert second["record"].outcomes["current"] >= len(READABLE)
    assert _mine(world) == items
    assert {o: read_domain_root(target, items[o][FileAttr.DOMAIN]).marker for o in READABLE} == markers  # type: ignore[index]
    assert no_scan == []

    # The job definition's entry point does the same; with --reread it opens every domain again and
    # finds nothing to change either.
    for args, outcome in (([], "current"), (["--reread"], "unchanged")):
        out = subprocess.run(
            [sys.executable, "-m", "record_metadata", *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ),
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert json.loads(out.stdout)["outcomes"].get(outcome, 0) >= len(READABLE), (args, out.stdout)
    assert _mine(world) == items


def test_researcher_queries_use_indexes_only(world: dict[str, Any], no_scan: list[str]) -> None:
    items = _mine(world)
    if items[STANDARD] is None:
        _pipeline(world)
    files = world["files"]
    name = BasicFusionName.for_orbit(STANDARD)
    mine = {BasicFusionName.for_orbit(o).file_name for o in READABLE}

    def orbits(found: Any) -> list[int]:
        return [i[FileAttr.ORBIT] for i in found if i[FileAttr.FILE_NAME] in mine]

    assert STANDARD in orbits(files.by_year_month(name.year_month))
    assert orbits(files.by_misr_path(name.misr_path)) == [STANDARD]
    assert orbits(files.by_orbits(63000, 63005)) == [STANDARD, RESTORED]
    assert orbits(files.by_state(FileState.INDEXED, orbits=(63000, 63005))) == [STANDARD, RESTORED]

    runner = CliRunner()
    result = runner.invoke(app, ["files", "--orbits", "63000-63005"])
    assert result.exit_code == 0, result.output
    assert [i[FileAttr.ORBIT] for i in json.loads(result.stdout) if i[FileAttr.FILE_NAME] in mine] == [63001, 63002]
    result = runner.invoke(app, ["files", "--state", "indexed", "--orbits", "63001-63001", "--format", "table"])
    assert result.exit_code == 0 and "63001" in result.stdout and "63002" not in result.stdout
    result = runner.invoke(app, ["files", "--path", str(name.misr_path)])
    assert result.exit_code == 0 and 63001 in [i[FileAttr.ORBIT] for i in json.loads(result.stdout)]
    result = runner.invoke(app, ["files", "--year-month", "2015-12"])
    assert result.exit_code != 0 and "YYYY.MM" in result.output
    assert no_scan == []
