"""What every instrument writer of one synthetic orbit file shares.

`OrbitFile` is the state of the file being written: the open HDF5 file, the
chunked writer, the preset, the orbit geometry and scene, the descending (daylit)
window that MISR, CERES and ASTER place themselves in, the seeded random streams
and the InputGranules list each instrument appends its source file names to. The
fill value and radiance units are the ones MODIS, MISR and ASTER share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h5py
import numpy as np
from numpy.typing import NDArray

from workbench.synthetic.fields import Scene
from workbench.synthetic.geometry import OrbitGeometry, sun_earth_distance_au
from workbench.synthetic.presets import PRESETS, Preset
from workbench.synthetic.writer import ChunkedWriter

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

FILL = np.float32(-999.0)
RADIANCE_UNITS = "Watts/m^2/micrometer/steradian"
MAX_DN = 32767


@dataclass
class OrbitFile:
    """One orbit file being written, shared by the instrument writers."""

    h5: h5py.File
    writer: ChunkedWriter
    preset: Preset
    orbit: int
    seed: int
    defects: tuple[str, ...]
    geom: OrbitGeometry
    window: tuple[float, float]  # descending MODIS window (s since orbit start): first start, last end
    scene: Scene = field(init=False)
    d2: float = field(init=False)  # squared Sun-Earth distance (AU^2) at the orbit start
    inputs: list[str] = field(init=False, default_factory=list)  # InputGranules, in writing order
    preset_index: int = field(init=False)  # position in PRESETS, part of every random seed

    def __post_init__(self) -> None:
        self.scene = Scene(self.seed, self.orbit)
        self.d2 = sun_earth_distance_au(self.geom.start) ** 2
        self.preset_index = list(PRESETS).index(self.preset.name)

    def rng(self, *parts: int) -> np.random.Generator:
        """A random stream of its own for each instrument and granule (`parts`), fixed by seed, orbit and preset."""
        return np.random.default_rng([self.seed, self.orbit, self.preset_index, *parts])

    def reuses_template(self, key: str) -> bool:
        """In presets with `reuse_unread`, True when a family is already deflated for this orbit."""
        return self.preset.reuse_unread and self.writer.has_template(key)
