"""Bugs the reliability suite found in other parts, kept as regression tests once fixed.

A file indexed again (restore expired, restored, re-indexed) used to keep
metadata_recorded_at < indexed_at, so the carousel relaunched record_metadata forever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from carousel.runtime import TABLE_SETTINGS, Context
from datacarousel import naming
from datacarousel.contract import Env, FileAttr, FileState
from record_metadata.core import DomainSummary, build_metadata

pytestmark = [pytest.mark.integration]


def test_a_reindexed_file_stops_needing_metadata_once_record_metadata_ran(local_env: Any) -> None:
    ctx = Context.from_env(need=TABLE_SETTINGS)
    files = ctx.tables.files
    name = naming.BasicFusionName.for_orbit(30990)
    domain = naming.hsds_domain(local_env.env[Env.HSDS_FOLDER], name)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    summary = DomainSummary(("MODIS", "MISR", "CERES"), {"granule_2005288_0215": True}, ("granule_2005101502",), (), 1)
    meta = build_metadata(name, domain, summary)

    assert files.mark_indexed(
        name, bucket="b", key="k", etag="e1", size=1, domain=domain, now=t0, expected_version=None
    )
    assert files.record_metadata(meta, t0 + timedelta(minutes=1)) == "written"
    item = files.get(name.file_name)
    assert item is not None
    # The copy expires (the carousel invalidates it), is restored and indexed again an hour later.
    version = int(item[FileAttr.STATE_VERSION])
    assert ctx.tables.carousel_files.invalidate(name.file_name, version, t0.timestamp() + 3600)
    item = files.get(name.file_name)
    assert item is not None and item[FileAttr.STATE] == FileState.ARCHIVED.value
    assert files.mark_indexed(
        name,
        bucket="b",
        key="k",
        etag="e1",
        size=1,
        domain=domain,
        now=t0 + timedelta(hours=2),
        expected_version=int(item[FileAttr.STATE_VERSION]),
    )
    # record_metadata runs after the new index: the metadata it reads is the same.
    files.record_metadata(meta, t0 + timedelta(hours=3))
    item = files.get(name.file_name)
    assert item is not None
    # The step's test for "indexed files lacking metadata" (carousel/launching.py, launch_workers):
    needs_metadata = (item.get(FileAttr.METADATA_AT) or "") < (item.get(FileAttr.INDEXED_AT) or "~")
    assert not needs_metadata, (item.get(FileAttr.METADATA_AT), item.get(FileAttr.INDEXED_AT))
