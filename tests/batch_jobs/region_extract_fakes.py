"""Hand-made `OrbitSource`s for RegionExtract's rule tests: a few samples with exact values planted.

`FakeSource` serves arrays given in the test, with the reader's behaviour where the extraction
depends on it (MissingData for an absent dataset, MISR blocks in groups, bands concatenated in field
order). `Recorder` wraps any source and records which methods were called with which arguments.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datacarousel.orbit import MissingData

MISR_GROUP = 2  # blocks per yielded group: smaller than the ranges the tests read


@dataclass
class ModisGranule:
    lat: np.ndarray
    lon: np.ndarray
    sza: np.ndarray | None = None
    vza: np.ndarray | None = None
    fields: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (bands, radiance_scales)


@dataclass
class FakeSource:
    threads = 1  # (OrbitSource) read one thing at a time
    name: str = "fake.h5"
    modis: dict[str, ModisGranule] = field(default_factory=dict)
    misr_bct: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> (n,) S28
    misr_lat: np.ndarray | None = None  # (n, lines, samples)
    misr_lon: np.ndarray | None = None
    misr_rad: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (camera, band) -> (n, h, w)
    ceres: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)  # granule -> FM -> arrays

    def groups(self) -> set[str]:
        present = {"MODIS": bool(self.modis), "MISR": self.misr_lat is not None, "CERES": bool(self.ceres)}
        return {name for name, there in present.items() if there}

    def modis_granules(self) -> list[str]:
        return sorted(self.modis)

    def modis_latlon(self, granule: str) -> tuple[np.ndarray, np.ndarray]:
        g = self.modis[granule]
        return g.lat, g.lon

    def modis_angles(self, granule: str) -> tuple[np.ndarray, np.ndarray]:
        g = self.modis[granule]
        if g.sza is None or g.vza is None:
            raise MissingData(f"MODIS/{granule}/SolarZenith")
        return g.sza, g.vza

    def modis_bands(self, granule: str, fields: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = self.modis[granule]
        missing = [f for f in fields if f not in g.fields]
        if missing:
            raise MissingData(f"MODIS/{granule}/_1KM/Data_Fields/{missing[0]}")
        bands = np.concatenate([g.fields[f][0] for f in fields]).astype(np.float32)
        scales = np.concatenate([g.fields[f][1] for f in fields]).astype(np.float32)
        return bands, scales, scales / 100

    def misr_block_center_times(self, camera: str) -> np.ndarray:
        if camera not in self.misr_bct:
            raise MissingData(f"MISR/{camera}/BlockCenterTime")
        return self.misr_bct[camera]

    def misr_geolocation(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.misr_lat is not None and self.misr_lon is not None
        return self.misr_lat[first : last + 1], self.misr_lon[first : last + 1]

    def misr_geometry(self, camera: str, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        raise AssertionError("RegionExtract does not read MISR geometry")

    def misr_radiance(self, camera: str, band: str, first: int, last: int) -> Iterator[np.ndarray]:
        if (camera, band) not in self.misr_rad:
            raise MissingData(f"MISR/{camera}/Data_Fields/{band}_Radiance")
        data = self.misr_rad[(camera, band)]
        for start in range(first, last + 1, MISR_GROUP):
            yield data[start : min(start + MISR_GROUP, last + 1)]

    def misr_bands_at_once(self, camera: str) -> int:
        return 1

    def ceres_granules(self) -> list[str]:
        return sorted(self.ceres)

    def ceres_instrument(self, granule: str, instrument: str) -> dict[str, np.ndarray]:
        if instrument not in self.ceres[granule]:
            raise MissingData(f"CERES/{granule}/{instrument}")
        return self.ceres[granule][instrument]

    def close(self) -> None:
        pass


class Recorder:
    """Delegates to `source` and keeps (method, args) of every call."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.name = source.name

    def __getattr__(self, method: str) -> Any:
        target = getattr(self._source, method)

        def call(*args: Any) -> Any:
            self.calls.append((method, args))
            return target(*args)

        return call

    def called(self, method: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == method]
