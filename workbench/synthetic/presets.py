"""Size presets of the synthetic BasicFusion generator.

"full" has the real shapes of docs/basicfusion-layout.md; the smaller presets keep the
whole tree and every dataset but shrink rows, columns, lines, samples and
footprints. The 180 MISR blocks, the 8 x 32 geometry grid (except in "tiny"),
the 10 rows per MODIS scan, the 1:2:4 MODIS 1 km/500 m/250 m ratio and the 4:1
MISR 275 m/1.1 km ratio are kept in every preset.
"""

from __future__ import annotations

from dataclasses import dataclass

# Real shapes (docs/basicfusion-layout.md sections 2-4).
REAL_MODIS_ROWS = 2030
REAL_MODIS_COLS = 1354
REAL_MISR_LINES = 128
REAL_MISR_SAMPLES = 512
REAL_MISR_GEOMETRY = (8, 32)
REAL_CERES_FOOTPRINTS = 165_000  # per instrument per orbit: about 1e5 per full hour
MISR_BLOCKS = 180
ROWS_PER_SCAN = 10


@dataclass(frozen=True)
class Preset:
    """Shapes of one preset. MISR 275 m arrays are (180, 4 * lines, 4 * samples)."""

    name: str
    modis_rows: int  # R, a multiple of 10 (rows per scan)
    modis_cols: int  # C (1354 in the real files)
    misr_lines: int  # 1.1 km lines per block (128 real)
    misr_samples: int  # 1.1 km samples per block (512 real)
    misr_geometry: tuple[int, int]  # (8, 32) real
    ceres_footprints: int  # per instrument (FM1, FM2) per orbit
    mopitt_tracks: int
    aster_granules: int
    aster_vnir: tuple[int, int]  # VNIR image shape; SWIR is half, TIR a sixth
    reuse_unread: bool  # compress unread families once per orbit and reuse the chunks (see docs)

    @property
    def misr_hr(self) -> tuple[int, int]:
        return 4 * self.misr_lines, 4 * self.misr_samples

    def shrink_factors(self) -> dict[str, float]:
        """How much smaller than the real file each dimension is (1.0 = real)."""
        return {
            "modis_rows": self.modis_rows / REAL_MODIS_ROWS,
            "modis_cols": self.modis_cols / REAL_MODIS_COLS,
            "misr_lines": self.misr_lines / REAL_MISR_LINES,
            "misr_samples": self.misr_samples / REAL_MISR_SAMPLES,
            "misr_geometry_lines": self.misr_geometry[0] / REAL_MISR_GEOMETRY[0],
            "misr_geometry_samples": self.misr_geometry[1] / REAL_MISR_GEOMETRY[1],
            "ceres_footprints": self.ceres_footprints / REAL_CERES_FOOTPRINTS,
        }


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("full", 2030, 1354, 128, 512, (8, 32), REAL_CERES_FOOTPRINTS, 1480, 2, (540, 594), True),
        Preset("medium", 200, 1354, 32, 128, (8, 32), 16_000, 300, 2, (180, 198), False),
        Preset("small", 40, 272, 8, 32, (8, 32), 2_000, 60, 1, (60, 66), False),
        Preset("tiny", 10, 68, 2, 8, (2, 8), 400, 20, 1, (30, 33), False),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
