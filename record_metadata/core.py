"""record_metadata's pure logic: from what a domain holds to one `FileMetadata`.

Facts from docs/basicfusion-layout.md: top-level groups name the instruments present;
MODIS granule groups are day granules when they carry reflective-solar-band
radiances (`*_RefSB` under `_1KM/Data_Fields`), night granules otherwise; CERES
has one group per hourly granule; MISR `AN/BlockCenterTime` holds 180 entries,
fill (`0000-00-00T...`) outside the daylit block range.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from datacarousel import naming
from datacarousel.files_table import FileMetadata, iso
from datacarousel.naming import BasicFusionName

INSTRUMENTS = ("ASTER", "CERES", "MISR", "MODIS", "MOPITT")
BCT_FILL_PREFIX = "0000-00-00"


def instruments_present(top_level_names: Iterable[str]) -> tuple[str, ...]:
    names = set(top_level_names)
    return tuple(i for i in INSTRUMENTS if i in names)


def is_day_granule(data_field_names: Iterable[str]) -> bool:
    """Day granules carry reflective solar band radiances; night granules only Emissive."""
    return any(n.endswith("_RefSB") for n in data_field_names)


def modis_granule_counts(granules: Mapping[str, bool]) -> tuple[int, int]:
    """(day, night) from {granule group name: is day}; only `granule_*` groups count."""
    day = sum(1 for name, is_day in granules.items() if name.startswith("granule_") and is_day)
    night = sum(1 for name, is_day in granules.items() if name.startswith("granule_") and not is_day)
    return day, night


def ceres_granule_count(names: Iterable[str]) -> int:
    return sum(1 for n in names if n.startswith("granule_"))


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").rstrip("\x00").strip()
    return str(value).rstrip("\x00").strip()


def daylit_block_range(block_center_times: Sequence[bytes | str]) -> tuple[int | None, int | None]:
    """1-based (first, last) MISR block whose BlockCenterTime is not fill; (None, None) when all are fill."""
    valid = [i + 1 for i, v in enumerate(block_center_times) if (t := _text(v)) and not t.startswith(BCT_FILL_PREFIX)]
    if not valid:
        return None, None
    return valid[0], valid[-1]


@dataclass(frozen=True)
class DomainSummary:
    """What record_metadata reads from one domain (plain values, no HSDS objects)."""

    top_level: tuple[str, ...]
    modis_granules: Mapping[str, bool]  # granule group -> is day
    ceres_granules: tuple[str, ...]
    misr_block_center_times: tuple[bytes | str, ...]
    size_bytes: int


def build_metadata(name: BasicFusionName, domain: str, summary: DomainSummary) -> FileMetadata:
    """The BasicFusionFiles metadata of one file: name-derived times and path, content-derived counts."""
    start = name.start
    day_granules, night_granules = modis_granule_counts(summary.modis_granules)
    first_block, last_block = daylit_block_range(summary.misr_block_center_times)
    return FileMetadata(
        file_name=name.file_name,
        orbit=name.orbit,
        start_time=iso(start),
        end_time=iso(naming.orbit_end(name.orbit)),
        year=start.year,
        month=start.month,
        day=start.day,
        year_month=name.year_month,
        misr_path=name.misr_path,
        instruments=instruments_present(summary.top_level),
        modis_day_granules=day_granules,
        modis_night_granules=night_granules,
        ceres_granules=ceres_granule_count(summary.ceres_granules),
        misr_first_daylit_block=first_block,
        misr_last_daylit_block=last_block,
        size_bytes=summary.size_bytes,
        domain=domain,
    )
