"""record_metadata's HSDS side: walk the folders, summarise each complete domain, write its item."""

from __future__ import annotations

import logging
import posixpath
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import h5pyd

from datacarousel.errors import BadFileName
from datacarousel.files_table import FilesTable, metadata_is_current
from datacarousel.hsds_target import HsdsTarget, Marker
from datacarousel.naming import BasicFusionName
from record_metadata.core import DomainSummary, build_metadata, is_day_granule

log = logging.getLogger(__name__)


def walk_domains(target: HsdsTarget, folder: str) -> Iterator[str]:
    """Every domain under `folder`, recursively (sub-folders such as `YYYY.MM/` included), sorted."""
    with h5pyd.Folder(folder, **target.access.h5pyd_kwargs()) as listing:
        names = sorted(listing)
        entries = [(n, listing[n]) for n in names]
    for name, entry in entries:
        path = posixpath.join(folder, name)
        if entry is not None and entry.get("class") == "folder":
            yield from walk_domains(target, path + "/")
        else:
            yield path


def summarise(f: Any, size: int) -> DomainSummary:
    """Read what the metadata needs from an open h5py/h5pyd file (works with both)."""
    top = tuple(f.keys())
    granules: dict[str, bool] = {}
    if "MODIS" in top:
        modis = f["MODIS"]
        for g in modis:
            fields = modis[g].get("_1KM/Data_Fields")
            granules[g] = is_day_granule(fields.keys()) if fields is not None else False
    ceres = tuple(f["CERES"].keys()) if "CERES" in top else ()
    bct: tuple[bytes | str, ...] = ()
    if "MISR" in top and f["MISR"].get("AN/BlockCenterTime") is not None:
        bct = tuple(f["MISR/AN/BlockCenterTime"][()])
    return DomainSummary(top, granules, ceres, bct, size)


@dataclass
class RecordReport:
    domains: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"domains": self.domains, "outcomes": dict(sorted(self.outcomes.items())), "seconds": self.seconds}


def record_domain(files: FilesTable, target: HsdsTarget, domain: str, now: datetime) -> str:
    """Write one domain's item. Outcomes: written, unchanged, conflict, incomplete, not-basicfusion."""
    try:
        name = BasicFusionName.parse(posixpath.basename(domain))
    except BadFileName:
        log.warning("%s: not a BasicFusion file name, skipped", domain)
        return "not-basicfusion"
    with h5pyd.File(domain, "r", **target.access.h5pyd_kwargs()) as f:
        marker = Marker.of(f)
        if marker is None:
            log.warning("%s: no completion marker (being built or interrupted), skipped", domain)
            return "incomplete"
        summary = summarise(f, marker.size)
    outcome = files.record_metadata(build_metadata(name, domain, summary), now)
    log.info("%s: metadata %s", domain, outcome)
    return outcome


def run(files: FilesTable, target: HsdsTarget, now: datetime, *, reread: bool = False) -> RecordReport:
    """Record every domain under the target folder whose item does not already hold the metadata of
    its current index ("current": not opened, so a run costs one table lookup per indexed file plus
    one domain read per new one). `reread` opens and records every domain again."""
    report = RecordReport()
    started = time.monotonic()
    domains = list(walk_domains(target, target.folder))
    # Item keys are the domains' base names (a name that is no BasicFusion name matches no item).
    items = {} if reread else files.get_many(posixpath.basename(d) for d in domains)
    for domain in domains:
        report.domains += 1
        if metadata_is_current(items.get(posixpath.basename(domain)), domain):
            report.outcomes["current"] += 1
            continue
        try:
            report.outcomes[record_domain(files, target, domain, now)] += 1
        except Exception:  # one unreadable domain must not stop the walk
            log.exception("%s: cannot record metadata", domain)
            report.outcomes["error"] += 1
    report.seconds = round(time.monotonic() - started, 3)
    log.info("record_metadata: %d domains %s in %.1f s", report.domains, dict(report.outcomes), report.seconds)
    return report
