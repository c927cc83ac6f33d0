"""Quick-look PNG maps of a composite (or an orbit result): one per instrument, matplotlib's Agg backend."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import numpy.typing as npt

mpl.use("Agg")
import matplotlib.pyplot as plt  # after choosing the Agg backend

# (instrument, sum, count, channel index or None, label)
PANELS = (
    ("modis", "modis_rad_sum", "modis_count", 0, "MODIS band 1 (0.65 µm) mean radiance"),
    ("misr", "misr_rad_sum", "misr_count", 2, "MISR AN Red mean radiance"),
    ("ceres", "ceres_sw_sum", "ceres_count", None, "CERES FM1 SW mean radiance"),
)
FIG_SIZE_IN = (10.0, 5.0)
DPI = 100  # 1000 x 500 pixels


def mean_map(
    arrays: Mapping[str, npt.NDArray[Any]], sum_name: str, count_name: str, channel: int | None
) -> npt.NDArray[Any]:
    total = np.asarray(arrays[sum_name], dtype=np.float64)
    count = np.asarray(arrays[count_name])
    if channel is not None:
        total, count = total[..., channel], count[..., channel]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def write_quicklooks(arrays: Mapping[str, npt.NDArray[Any]], out_dir: str | Path, stem: str) -> list[Path]:
    """`<stem>_<instrument>.png` per instrument, each FIG_SIZE_IN * DPI pixels."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title_extra = str(arrays["period"]) if "period" in arrays else str(arrays.get("source", ""))
    paths = []
    for instrument, sum_name, count_name, channel, label in PANELS:
        data = mean_map(arrays, sum_name, count_name, channel)
        fig, ax = plt.subplots(figsize=FIG_SIZE_IN, dpi=DPI)
        finite = data[np.isfinite(data)]
        vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
        image = ax.imshow(
            np.ma.masked_invalid(data), extent=(-180, 180, -90, 90), origin="upper", cmap="viridis", vmin=0,
            vmax=max(vmax, 1e-9), interpolation="nearest",
        )  # fmt: skip
        ax.set_xlabel("longitude (°E)")
        ax.set_ylabel("latitude (°N)")
        ax.set_title(f"{label} {title_extra}".strip(), fontsize=10)
        fig.colorbar(image, ax=ax, shrink=0.8, label="W m⁻² sr⁻¹ µm⁻¹" if instrument != "ceres" else "W m⁻² sr⁻¹")
        path = out / f"{stem}_{instrument}.png"
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
        paths.append(path)
    return paths
