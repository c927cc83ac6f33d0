"""MISR samples in the box (rules: the docstring of `batch_jobs.region_extract.instruments`).

Reads the camera's BlockCenterTime, the 1.1 km geolocation of the blocks with a valid time, and then
each selected band only over the blocks that hold a sample in the box (the reader streams the
whole-array chunk and stops after the last of them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from batch_jobs.region_extract.instruments import EPOCH, F32, IntArray, Samples, Skip, empty_samples
from batch_jobs.region_extract.layout import (
    MISR,
    MISR_GEO_VARIABLES,
    MISR_HR_FACTOR,
    MISR_VALID_MAX,
    MISR_VALID_MIN,
    misr_band_variable,
)
from datacarousel.orbit import MissingData

if TYPE_CHECKING:
    from batch_jobs.region_extract.science import Box
    from datacarousel.orbit import OrbitSource

_BCT_RE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{1,6})Z$")


def block_times(values: Sequence[Any] | npt.NDArray[Any]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """BlockCenterTime strings -> (microseconds since 1970, valid); the fill (year 0000) is not valid."""
    micros = np.zeros(len(values), dtype=np.int64)
    valid = np.zeros(len(values), dtype=bool)
    for i, raw in enumerate(values):  # 180 strings per orbit, not a loop over samples
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes | np.bytes_) else str(raw)
        match = _BCT_RE.match(text.rstrip("\x00").strip())
        if match is None:
            continue
        year, month, day, hour, minute, second, fraction = match.groups()
        try:
            when = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                            int(fraction.ljust(6, "0")), tzinfo=UTC)  # fmt: skip
        except ValueError:  # year 0000 (the fill) and impossible dates
            continue
        micros[i] = (when - EPOCH) // timedelta(microseconds=1)
        valid[i] = True
    return micros, valid


def misr_samples(source: OrbitSource, box: Box, camera: str, bands: Sequence[str], skipped: list[Skip]) -> Samples:
    names = (*MISR_GEO_VARIABLES, *map(misr_band_variable, bands))
    try:
        micros, valid = block_times(source.misr_block_center_times(camera))
    except MissingData as exc:
        skipped.append(Skip(MISR, camera, "misr_without_block_times", str(exc)))
        return empty_samples(names)
    timed = np.flatnonzero(valid)
    if timed.size == 0:
        skipped.append(Skip(MISR, camera, "misr_no_valid_block", "every BlockCenterTime is the fill"))
        return empty_samples(names)
    first, last = int(timed[0]), int(timed[-1])
    try:
        lat, lon = source.misr_geolocation(first, last)
    except MissingData as exc:
        skipped.append(Skip(MISR, "Geolocation", "misr_without_geolocation", str(exc)))
        return empty_samples(names)
    if lat.ndim != 3 or lat.shape != lon.shape:
        skipped.append(
            Skip(MISR, "Geolocation", "misr_shape_mismatch", f"GeoLatitude {lat.shape}, GeoLongitude {lon.shape}")
        )
        return empty_samples(names)
    inside = box.contains(lat, lon) & valid[first : last + 1, None, None]
    pixel = np.flatnonzero(inside)
    if pixel.size == 0:
        return empty_samples(names)
    local, line, sample = np.unravel_index(pixel, lat.shape)
    block = first + local  # 0-based; sorted, since the pixels are
    out: Samples = {}
    any_valid = np.zeros(pixel.size, dtype=bool)
    for band in bands:
        values = _misr_band(
            source, camera, band, pixels=(block, line, sample), block_shape=lat.shape[1:], skipped=skipped
        )
        out[misr_band_variable(band)] = values
        any_valid |= ~np.isnan(values)
    out["time"] = micros[block] / 1e6
    out["lat"] = np.asarray(lat, dtype=np.float32).ravel()[pixel]
    out["lon"] = np.asarray(lon, dtype=np.float32).ravel()[pixel]
    out["block"] = (block + 1).astype(np.int16)
    out["line"] = line.astype(np.int16)
    out["sample"] = sample.astype(np.int16)
    return {name: out[name][any_valid] for name in names}


def _misr_band(
    source: OrbitSource, camera: str, band: str, *, pixels: tuple[IntArray, IntArray, IntArray],
    block_shape: tuple[int, ...], skipped: list[Skip],
) -> F32:  # fmt: skip
    """One band at the pixels (block, line, sample; block sorted), reading only blocks block[0]..block[-1]."""
    block, line, sample = pixels
    out = np.full(block.size, np.nan, dtype=np.float32)
    first, last = int(block[0]), int(block[-1])
    offset = first
    try:
        for group in source.misr_radiance(camera, band, first, last):
            lo, hi = np.searchsorted(block, [offset, offset + group.shape[0]])
            if hi > lo:
                values = _misr_values(group, block[lo:hi] - offset, line[lo:hi], sample[lo:hi], block_shape)
                if values is None:
                    skipped.append(Skip(MISR, f"{camera}/{band}", "misr_band_shape", f"blocks of {group.shape[1:]}"))
                    return np.full(block.size, np.nan, dtype=np.float32)
                out[lo:hi] = values
            offset += group.shape[0]
    except MissingData as exc:
        skipped.append(Skip(MISR, f"{camera}/{band}", "misr_band_missing", str(exc)))
        return np.full(block.size, np.nan, dtype=np.float32)
    return out


def _misr_values(
    group: npt.NDArray[Any], block: IntArray, line: IntArray, sample: IntArray, block_shape: tuple[int, ...]
) -> F32 | None:
    """Values at (block, line, sample) of 1.1 km or 275 m blocks (4 x 4 mean of valid sub-pixels); None: other shape."""
    lines, samples = block_shape
    if group.shape[1:] == (lines, samples):
        values = np.asarray(group[block, line, sample], dtype=np.float32)
        return np.where((values >= MISR_VALID_MIN) & (values <= MISR_VALID_MAX), values, np.float32(np.nan))
    f = MISR_HR_FACTOR
    if group.shape[1:] != (f * lines, f * samples):
        return None
    total = np.zeros(block.size, dtype=np.float64)
    count = np.zeros(block.size, dtype=np.int64)
    for i in range(f):  # 16 sub-pixel positions, each vectorised over the pixels; this order fixes the sum
        for j in range(f):
            values = np.asarray(group[block, f * line + i, f * sample + j], dtype=np.float32)
            ok = (values >= MISR_VALID_MIN) & (values <= MISR_VALID_MAX)
            total += np.where(ok, values, np.float32(0))
            count += ok
    with np.errstate(invalid="ignore"):  # 0 / 0: no valid sub-pixel -> NaN
        return (total / count).astype(np.float32)
