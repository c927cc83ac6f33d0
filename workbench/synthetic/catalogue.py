"""The archive catalogue: one row per BasicFusion orbit file, orbits 1000..85302 (84,303 rows).

Names, times, MISR paths and keys come from `datacarousel.naming` (the single
source of truth); file sizes are drawn with a fixed seed from 15-50 GB so that the
archive totals about 2.5 PB (docs/basicfusion-layout.md section 7: "typically 15-40 GB",
real files up to 50.9 GiB, 2.5 PB in all).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from datacarousel import naming

MIN_SIZE_BYTES = 15_000_000_000
MAX_SIZE_BYTES = 50_000_000_000
# Beta(4.2, 5.8) on [15, 50] GB has mean 29.7 GB: 84,303 files * 29.7 GB = 2.50 PB.
_BETA = (4.2, 5.8)
FIELDS = ("orbit", "file_name", "key", "start", "end", "misr_path", "year_month", "size_bytes")


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    orbit: int
    file_name: str
    key: str
    start: datetime
    end: datetime
    misr_path: int
    year_month: str
    size_bytes: int

    def to_row(self) -> dict[str, object]:
        return {
            "orbit": self.orbit,
            "file_name": self.file_name,
            "key": self.key,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "misr_path": self.misr_path,
            "year_month": self.year_month,
            "size_bytes": self.size_bytes,
        }


def file_sizes(seed: int = 0, count: int = naming.ORBIT_COUNT) -> np.ndarray:
    """Sizes in bytes (int64), 15-50 GB, deterministic for a seed."""
    rng = np.random.default_rng([seed, 7])
    fraction = rng.beta(*_BETA, size=count)
    return (MIN_SIZE_BYTES + fraction * (MAX_SIZE_BYTES - MIN_SIZE_BYTES)).astype(np.int64)


def archive_catalogue(seed: int = 0, prefix: str = "") -> list[CatalogueEntry]:
    """Every orbit file of the archive, in orbit order; keys as `naming.archive_key` (with `prefix`)."""
    orbits = range(naming.FIRST_ORBIT, naming.LAST_ORBIT + 1)
    starts = [naming.orbit_start(o) for o in orbits]
    # orbit_end(o) is the next start less a second (exact at the anchors): the same rule, without 84k calls.
    ends = [s - _ONE_SECOND for s in starts[1:]]
    ends.append(naming.orbit_end(naming.LAST_ORBIT))
    for orbit, end in naming.ANCHOR_END_TIMES.items():
        ends[orbit - naming.FIRST_ORBIT] = end
    unix = np.array([s.timestamp() for s in starts], dtype="int64").astype("datetime64[s]")
    stamps = np.char.replace(np.char.replace(np.char.replace(np.datetime_as_string(unix), "-", ""), ":", ""), "T", "")
    months = np.datetime_as_string(unix, unit="M")
    sizes = file_sizes(seed).tolist()
    entries = []
    for i, orbit in enumerate(orbits):
        path = (16 * orbit + 176) % 233 + 1
        file_name = f"{naming.FILE_PREFIX}_O{orbit}_{stamps[i]}_F000_V001.h5"
        entries.append(
            CatalogueEntry(
                orbit=orbit,
                file_name=file_name,
                key=f"{prefix}P{path}/{file_name}",
                start=starts[i],
                end=ends[i],
                misr_path=path,
                year_month=months[i].replace("-", "."),
                size_bytes=sizes[i],
            )
        )
    return entries


def write_catalogue(entries: list[CatalogueEntry], out: Path) -> None:
    """CSV (header = field names) or JSON (a list of objects), chosen by the file suffix."""
    out = Path(out)
    rows = [e.to_row() for e in entries]
    if out.suffix == ".json":
        out.write_text("[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]\n")
    elif out.suffix == ".csv":
        with out.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)
    else:
        raise ValueError(f"catalogue file must end in .csv or .json: {out}")


def _iso(when: datetime) -> str:
    when = when.astimezone(UTC)
    return f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:{when.second:02d}Z"


_ONE_SECOND = datetime(2000, 1, 1, 0, 0, 1) - datetime(2000, 1, 1)
