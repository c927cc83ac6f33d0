"""The archive catalogue as numpy columns, for the simulator and the benches.

Source: `workbench.synthetic.catalogue.archive_catalogue(seed)` (84,303 entries:
orbit, file_name, key, start, end, misr_path, year_month, size_bytes). If that
module is not importable, the same entries are built from `datacarousel.naming`
with seeded sizes (15-55 GB, mean about 30 GB) so the simulator still runs.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from carousel.query import JobQuery, match_mask, year_month_code
from datacarousel import naming

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class CatalogueArrays:
    names: tuple[str, ...]
    keys: tuple[str, ...]
    orbit: npt.NDArray[np.int64]
    size: npt.NDArray[np.int64]
    year_month: npt.NDArray[np.int64]  # year * 12 + month - 1
    misr_path: npt.NDArray[np.int64]
    start: npt.NDArray[np.float64]  # POSIX seconds

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_entries(cls, entries: Iterable[Any]) -> CatalogueArrays:
        rows = sorted(entries, key=lambda e: e.orbit)
        starts = [e.start.timestamp() if isinstance(e.start, datetime) else float(e.start) for e in rows]
        return cls(
            names=tuple(e.file_name for e in rows),
            keys=tuple(e.key for e in rows),
            orbit=np.array([e.orbit for e in rows], dtype=np.int64),
            size=np.array([e.size_bytes for e in rows], dtype=np.int64),
            year_month=np.array([year_month_code(e.year_month) for e in rows], dtype=np.int64),
            misr_path=np.array([e.misr_path for e in rows], dtype=np.int64),
            start=np.array(starts, dtype=np.float64),
        )

    def select(self, rows: Sequence[int] | npt.NDArray[np.int64]) -> CatalogueArrays:
        idx = np.asarray(rows, dtype=np.int64)
        return CatalogueArrays(
            names=tuple(self.names[i] for i in idx),
            keys=tuple(self.keys[i] for i in idx),
            orbit=self.orbit[idx],
            size=self.size[idx],
            year_month=self.year_month[idx],
            misr_path=self.misr_path[idx],
            start=self.start[idx],
        )

    def mask(self, query: JobQuery) -> npt.NDArray[np.bool_]:
        return match_mask(query, self.orbit, self.year_month, self.misr_path)


@dataclass(frozen=True)
class _Entry:
    orbit: int
    file_name: str
    key: str
    start: datetime
    misr_path: int
    year_month: str
    size_bytes: int


def fallback_entries(seed: int = 0, orbits: Sequence[int] | None = None) -> list[_Entry]:
    """Catalogue entries built from the naming rules (sizes drawn with a fixed seed)."""
    rng = np.random.default_rng(seed)
    orbit_list = list(orbits) if orbits is not None else list(range(naming.FIRST_ORBIT, naming.LAST_ORBIT + 1))
    sizes = np.clip(rng.normal(30e9, 7e9, len(orbit_list)), 15e9, 55e9).astype(np.int64)
    out = []
    for orbit, size in zip(orbit_list, sizes, strict=True):
        name = naming.BasicFusionName.for_orbit(orbit)
        out.append(
            _Entry(
                orbit, name.file_name, naming.archive_key(name), name.start, name.misr_path, name.year_month, int(size)
            )
        )
    return out


def load(seed: int = 0) -> CatalogueArrays:
    """The full archive catalogue (SYNTH's when available)."""
    try:
        module = importlib.import_module("workbench.synthetic.catalogue")
    except ImportError:
        log.warning("workbench.synthetic.catalogue not available; building the catalogue from naming rules")
        return CatalogueArrays.from_entries(fallback_entries(seed))
    return CatalogueArrays.from_entries(module.archive_catalogue(seed))
