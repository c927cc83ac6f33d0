"""One orbit's result (spec §6) and the deterministic `.npz` file that holds it.

The file is the `numpy.savez_compressed` format (a zip of `.npy` members, deflated),
written with fixed member timestamps so that a rerun produces identical bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from batch_jobs.compute_radiance.composite import SYNTHETIC_MARKER
from batch_jobs.compute_radiance.science import (
    CERES_INSTRUMENT,
    CERES_MODE,
    MISR_BANDS,
    MISR_CAMERA,
    MODIS_CATEGORY,
    MODIS_VIS_CHANNELS,
    SPATIAL_RESOLUTION,
    VZA_MAX,
    Accumulator,
    Grid,
)

RESULT_FORMAT_VERSION = 1
# The root attribute the synthetic generator writes into every file it makes (docs/synthetic-data.md);
# real BasicFusion files have no such attribute.
SYNTHETIC_FILE_ATTRIBUTE = "synthetic_generator"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

# Reason codes recorded in `skipped` (spec §7); the generator's defect names where they match.
NO_MODIS_GRANULE = "no_modis_granule"
NO_DESCENDING_GRANULE = "no_descending_granule"
BAD_GRANULE_NAME = "bad_granule_name"
GRANULE_WITHOUT_GEOLOCATION = "granule_without_geolocation"
GRANULE_WITHOUT_ANGLES = "granule_without_angles"
DAY_GRANULE_WITHOUT_REFSB = "day_granule_without_refsb"
MODIS_WIDTH_NOT_1354 = "modis_width_not_1354"
MISR_MISSING = "misr_missing"
MISR_FIRST_BLOCK_IN_WINDOW = "misr_first_block_in_window"
MISR_NO_BLOCK_IN_WINDOW = "misr_no_block_in_window"
MISR_BAND_MISSING = "misr_band_missing"
CERES_MISSING = "ceres_missing"
CERES_WITHOUT_FM1 = "ceres_without_fm1"
CERES_LENGTHS_DIFFER = "ceres_lengths_differ"  # the FM1 arrays of a group are not all 1-D of one length
LATITUDE_MINUS_90 = "latitude_minus_90"


@dataclass(frozen=True)
class Parameters:
    """The job's parameters (defaults of the original)."""

    resolution: float = SPATIAL_RESOLUTION
    vza_max: float = VZA_MAX
    modis_category: str = MODIS_CATEGORY
    misr_camera: str = MISR_CAMERA
    ceres_mode: str = CERES_MODE
    ceres_instrument: str = CERES_INSTRUMENT

    def __post_init__(self) -> None:
        Grid(self.resolution)  # validates
        if not 0 < self.vza_max <= 90:
            raise ValueError(f"vza_max must be in (0, 90], got {self.vza_max}")
        if self.modis_category != MODIS_CATEGORY:
            raise ValueError(f"only MODIS category {MODIS_CATEGORY!r} is implemented, got {self.modis_category!r}")
        if self.misr_camera != MISR_CAMERA:
            raise ValueError(f"only MISR camera {MISR_CAMERA!r} is implemented, got {self.misr_camera!r}")
        if self.ceres_mode not in ("ct", "all"):
            raise ValueError(f"CERES mode must be 'ct' or 'all', got {self.ceres_mode!r}")

    @property
    def grid(self) -> Grid:
        return Grid(self.resolution)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        return hashlib.sha256(f"v{RESULT_FORMAT_VERSION}:{self.to_json()}".encode()).hexdigest()

    def with_overrides(self, overrides: Mapping[str, str]) -> Parameters:
        """Parameters updated from a work item's string map (`resolution`, `vza_max`, ...)."""
        fields = asdict(self)
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}")
        for key, text in overrides.items():
            fields[key] = float(text) if isinstance(fields[key], float) else str(text)
        return Parameters(**fields)


@dataclass(frozen=True)
class Skip:
    """Something not used, and why (a reason code plus detail)."""

    instrument: str
    item: str
    reason: str
    detail: str = ""


@dataclass
class OrbitResult:
    source: str
    parameters: Parameters
    modis: Accumulator
    misr: Accumulator
    ceres: Accumulator
    t0: float = float("nan")
    t1: float = float("nan")
    skipped: list[Skip] = field(default_factory=list)
    modis_granules_used: list[str] = field(default_factory=list)
    misr_blocks_used: list[int] = field(default_factory=list)
    synthetic: str = ""  # the generator of a synthetic orbit file; "" for real data

    @classmethod
    def empty(cls, source: str, parameters: Parameters) -> OrbitResult:
        grid = parameters.grid
        return cls(
            source=source,
            parameters=parameters,
            modis=Accumulator(grid, MODIS_VIS_CHANNELS),
            misr=Accumulator(grid, len(MISR_BANDS)),
            ceres=Accumulator(grid, 1),
        )

    def skip(self, instrument: str, item: str, reason: str, detail: str = "") -> None:
        self.skipped.append(Skip(instrument, item, reason, detail))

    def reasons(self) -> set[str]:
        return {s.reason for s in self.skipped}

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Every array of the result file, by name (spec §3-6)."""
        grid = self.parameters.grid
        return {
            "modis_rad_sum": self.modis.grid_array("rad"),
            "modis_sol_sum": self.modis.grid_array("sol"),
            "modis_count": self.modis.grid_array(),
            "misr_rad_sum": self.misr.grid_array("rad"),
            "misr_count": self.misr.grid_array(),
            "ceres_sw_sum": self.ceres.grid_array("sw")[..., 0],
            "ceres_lw_sum": self.ceres.grid_array("lw")[..., 0],
            "ceres_count": self.ceres.grid_array()[..., 0],
            "latitude": grid.cell_center_lats(),
            "longitude": grid.cell_center_lons(),
            "t0": np.array(self.t0, dtype=np.float64),
            "t1": np.array(self.t1, dtype=np.float64),
            "parameters": np.array(self.parameters.to_json()),
            "parameters_digest": np.array(self.parameters.digest()),
            "skipped": np.array(json.dumps([asdict(s) for s in self.skipped], sort_keys=True)),
            "source": np.array(self.source),
            "modis_granules_used": np.array(self.modis_granules_used, dtype=str),
            "misr_blocks_used": np.array(self.misr_blocks_used, dtype=np.int64),
            "format_version": np.array(RESULT_FORMAT_VERSION, dtype=np.int64),
            # only when synthetic: a result of real data keeps the bytes it always had
            **({SYNTHETIC_MARKER: np.array(self.synthetic)} if self.synthetic else {}),
        }


def synthetic_marker(source: Any) -> str:
    """The generator named by an orbit file's `synthetic_generator` root attribute; "" for real data.

    Asks the source's `root_attribute(name)` (an `OrbitReader`); a source without one counts as real."""
    root_attribute = getattr(source, "root_attribute", None)
    if root_attribute is None:
        return ""
    value = root_attribute(SYNTHETIC_FILE_ATTRIBUTE)
    if isinstance(value, bytes | np.bytes_):
        value = value.decode("ascii", "replace")
    return str(value) if value is not None else ""


def npz_bytes(arrays: Mapping[str, npt.ArrayLike]) -> bytes:
    """The `savez_compressed` format with fixed timestamps: same arrays, same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    return buffer.getvalue()


def load_npz(data: bytes | str) -> dict[str, npt.NDArray[Any]]:
    """Every array of a result or composite file (bytes or a local path), pickles refused."""
    source: Any = io.BytesIO(data) if isinstance(data, bytes) else data
    with np.load(source, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def skipped_of(arrays: Mapping[str, npt.NDArray[Any]]) -> list[dict[str, str]]:
    return list(json.loads(str(arrays["skipped"])))
