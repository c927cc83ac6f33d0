"""ComputeRadiance for one orbit: asks a reader for the datasets, runs the science, records what it skipped.

Order and memory: MODIS granule by granule (lat/lon of every granule for the
descending test; angles and bands only of descending ones, gridded at once; with more than one reader
thread, as many granules are read side by side and gridded in time order), then MISR on the daylit
block range only, band by band (with more than one reader thread, bands are read and inflated side by
side while the geometry test runs, and gridded in band order), then CERES group by group.
Every case where the original crashed (spec §7) becomes a `Skip` in the result.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import numpy as np

from batch_jobs.compute_radiance import result as r
from batch_jobs.compute_radiance import science as s
from batch_jobs.compute_radiance import window as w
from datacarousel.chunkread.readahead import map_ahead
from datacarousel.errors import BadInput
from datacarousel.orbit import MissingData, OrbitSource

log = logging.getLogger(__name__)

INSTRUMENT_GROUPS = ("MODIS", "MISR", "CERES")


def compute_orbit(source: OrbitSource, parameters: r.Parameters | None = None) -> r.OrbitResult:
    """The whole job on one orbit file. Raises BadInput only for a file that is not a BasicFusion orbit."""
    params = parameters or r.Parameters()
    started = time.monotonic()
    groups = source.groups()
    if not groups & set(INSTRUMENT_GROUPS):
        raise BadInput(f"{source.name}: not a BasicFusion file (none of the groups {', '.join(INSTRUMENT_GROUPS)})")
    out = r.OrbitResult.empty(source.name, params)
    out.synthetic = r.synthetic_marker(source)  # "synthetic data" on the maps of synthetic orbits

    descending = _modis(source, out)
    window = w.time_window(descending)
    if window is None:
        out.skip("MODIS", "*", r.NO_DESCENDING_GRANULE, "no descending (daylit) MODIS granule: empty result")
        log.info("orbit %s: no descending granule, empty result", source.name)
        return out
    out.t0, out.t1 = window
    t_modis = time.monotonic()
    _misr(source, out, "MISR" in groups)
    t_misr = time.monotonic()
    _ceres(source, out, "CERES" in groups)
    log.info(
        "orbit %s: %d descending granules, %d MISR blocks, %d CERES footprints, %d skipped; "
        "MODIS %.1f s, MISR %.1f s, CERES %.1f s",
        source.name,
        len(out.modis_granules_used),
        len(out.misr_blocks_used),
        int(out.ceres.count.sum()),
        len(out.skipped),
        t_modis - started,
        t_misr - t_modis,
        time.monotonic() - t_misr,
    )
    return out


@dataclass
class _Granule:
    """One MODIS granule as loaded: prepared for gridding when it is descending and complete, otherwise why not."""

    name: str
    descending: bool = False
    skip: tuple[str, str] | None = None  # (reason, detail)
    width: int = 0  # pixels to a swath line
    prepared: s.PreparedGranule | None = None


def _load_granule(source: OrbitSource, grid: s.Grid, vza_max: float, name: str) -> _Granule:
    """Read what a granule needs (spec §2.2 and §3.1): lat/lon always; angles and bands if descending, then
    prepared for gridding (`science.modis_prepare`: with the compiled kernels its pixels taken, sorted by cell,
    about a fifth of what was read), so that a granule read ahead holds that much memory, not all of it."""
    try:
        lat, lon = source.modis_latlon(name)
    except MissingData as exc:
        return _Granule(name, skip=(r.GRANULE_WITHOUT_GEOLOCATION, str(exc)))
    if lat.shape != lon.shape or lat.ndim != 2:
        return _Granule(name, skip=(r.GRANULE_WITHOUT_GEOLOCATION, f"latitude {lat.shape} / longitude {lon.shape}"))
    if not w.is_descending(lat):
        return _Granule(name)
    try:
        sza, vza = source.modis_angles(name)
    except MissingData as exc:
        return _Granule(name, descending=True, skip=(r.GRANULE_WITHOUT_ANGLES, str(exc)))
    try:
        bands, rad_scales, ref_scales = source.modis_bands(name, s.MODIS_VIS_FIELDS)
    except MissingData as exc:
        return _Granule(name, True, (r.DAY_GRANULE_WITHOUT_REFSB, f"descending granule without RefSB: {exc}"))
    if sza.shape != lat.shape or vza.shape != lat.shape or bands.shape[1:] != lat.shape:
        detail = f"shapes differ: lat {lat.shape}, sza {sza.shape}, vza {vza.shape}, bands {bands.shape}"
        return _Granule(name, True, (r.GRANULE_WITHOUT_ANGLES, detail))
    if bands.shape[0] != s.MODIS_VIS_CHANNELS:
        return _Granule(name, True, (r.DAY_GRANULE_WITHOUT_REFSB, f"{bands.shape[0]} VIS bands, expected 7"))
    prepared = s.modis_prepare(
        grid, lat=lat, lon=lon, sza=sza, vza=vza, bands=bands, radiance_scales=rad_scales,
        reflectance_scales=ref_scales, vza_max=vza_max,
    )  # fmt: skip
    return _Granule(name, True, None, int(lat.shape[1]), prepared)


def _modis(source: OrbitSource, out: r.OrbitResult) -> list[str]:
    """Descending test on every granule; grid the descending ones as they come. Returns their names.

    The next granules are read (and inflated) by background threads while this one is gridded, so that a
    granule's last chunks, its attributes and its descending test do not leave a core idle: half as many
    granules ahead as the reader has threads (each granule's chunks are inflated on all of them), but two
    on two cores. One ahead kept the cores ~1.6 busy of 2 on a full orbit: a granule loads in steps (its
    lat/lon, then its angles and bands: 2, 2 and 7 chunks on 2 threads) and takes longer than it grids, so
    the gridding thread waited; with two, ~1.9 busy: the job on 2 cores 3.87 -> 3.64 s, peak 0.64 -> 0.71 GB
    (6 interleaved rounds with restart points, 2026-12-04; each granule is ~121 MB as read). Each granule is
    prepared in its reading thread (`_load_granule`), which keeps of it only what the sums need (its pixels
    taken, sorted by cell: ~26 MB with the compiled kernels), and added here in granule order.
    """
    params = out.parameters
    timed: list[tuple[datetime, str]] = []
    for name in source.modis_granules():
        try:
            timed.append((w.parse_granule_time(name), name))
        except ValueError as exc:
            out.skip("MODIS", name, r.BAD_GRANULE_NAME, str(exc))
    if not timed:
        out.skip("MODIS", "*", r.NO_MODIS_GRANULE, "the file has no MODIS granule group")
        return []
    descending: list[str] = []
    odd_width: list[str] = []
    minus_90 = 0
    names = [name for _, name in sorted(timed)]
    ahead = max(min(2, source.threads), source.threads // 2)
    load = partial(_load_granule, source, out.modis.grid, params.vza_max)
    for g in map_ahead(load, names, ahead, name="modis-granule"):
        if g.descending:
            descending.append(g.name)
        if g.skip is not None:
            out.skip("MODIS", g.name, *g.skip)
        if not g.descending or g.skip is not None:
            continue
        if g.width != s.MODIS_COLUMNS:
            odd_width.append(f"{g.name} ({g.width})")
        assert g.prepared is not None
        minus_90 += s.modis_add(out.modis, g.prepared)  # in granule order: the same sums whatever thread prepared it
        out.modis_granules_used.append(g.name)
    if odd_width:
        out.skip("MODIS", "*", r.MODIS_WIDTH_NOT_1354,
                 f"granules not 1354 columns wide, processed anyway: {', '.join(odd_width)}")  # fmt: skip
    if minus_90:
        out.skip("MODIS", "*", r.LATITUDE_MINUS_90, f"{minus_90} pixels at latitude -90 dropped (outside the grid)")
    return descending


def _misr(source: OrbitSource, out: r.OrbitResult, present: bool) -> None:
    params = out.parameters
    camera = params.misr_camera
    if not present:
        out.skip("MISR", "*", r.MISR_MISSING, "the file has no MISR group")
        return
    try:
        bct = source.misr_block_center_times(camera)
    except MissingData as exc:
        out.skip("MISR", camera, r.MISR_MISSING, str(exc))
        return
    block_jd = w.parse_block_center_times(bct)
    blocks = w.blocks_in_window(block_jd, out.t0, out.t1)
    if len(blocks) == 0:
        out.skip("MISR", camera, r.MISR_NO_BLOCK_IN_WINDOW, "no MISR block centre time inside the window")
        return
    if blocks[0] == 0:
        out.skip("MISR", "block 0", r.MISR_FIRST_BLOCK_IN_WINDOW,
                 "the first MISR block is inside the window (the original aborted MISR here); processed")  # fmt: skip
    first, last = int(blocks[0]), int(blocks[-1])
    try:
        sza, vza = source.misr_geometry(camera, first, last)
        lat, lon = source.misr_geolocation(first, last)
    except MissingData as exc:
        out.skip("MISR", camera, r.MISR_MISSING, str(exc))
        return
    nb = last - first + 1
    if sza.shape[0] != nb or vza.shape != sza.shape or lat.ndim != 3 or lat.shape[0] != nb or lat.shape != lon.shape:
        out.skip(
            "MISR", camera, r.MISR_MISSING, f"unexpected shapes: sza {sza.shape}, vza {vza.shape}, lat {lat.shape}"
        )
        return
    block_shape = (int(lat.shape[1]), int(lat.shape[2]))  # 128 x 512 in real files
    # The columns the geometry test takes any pixel of: the bands aggregate only these (the swath covers about two
    # thirds of a block's width; nothing reads the rest). Known once the test has run, after the bands started.
    columns: Future[slice] = Future()

    def band_radiance(band: str) -> np.ndarray | str:
        """The band's 1.1 km radiance of the block range (NaN outside `columns`), or why it is skipped."""
        rad = np.empty((nb, *block_shape), np.float32)  # each group of blocks aggregated straight into it
        done = 0
        try:
            for group in source.misr_radiance(camera, band, first, last):  # (read ahead while this waits)
                if done + len(group) > nb:
                    return f"radiance blocks: more than the {nb} blocks asked for"
                s.misr_aggregate(group, block_shape, out=rad[done : done + len(group)], columns=columns.result())
                done += len(group)
        except (MissingData, ValueError) as exc:
            return str(exc)
        return rad if done == nb else f"radiance blocks: {done}, expected {nb}"

    # Each band is a whole-array chunk. Inflated front to back by one thread, bands are read side by side (as many
    # as the reader has threads); with restart points, one band at a time uses every thread (less memory). Either
    # way they start before the geometry test below (which needs none of them) so that no core waits for it, and
    # are gridded one after the other in band order (each into its own channel, with the cells' shared buffers):
    # the result is the same bytes however they are read.
    at_once = max(1, min(source.misr_bands_at_once(camera), len(s.MISR_BANDS)))
    with ThreadPoolExecutor(at_once, thread_name_prefix="misr-band") as pool:
        radiances = pool.map(band_radiance, s.MISR_BANDS) if source.threads > 1 else map(band_radiance, s.MISR_BANDS)
        try:
            mask = s.misr_geometry_mask(sza, vza, params.vza_max, block_shape)
            selected = np.zeros(nb, dtype=bool)
            selected[blocks - first] = True  # blocks in the range but outside the window (never, in practice) left out
            mask &= selected[:, None, None]
            columns.set_result(s.taken_columns(mask))
        except BaseException as exc:
            columns.set_exception(exc)  # the bands' threads wait for it: they end too
            raise
        cells = s.misr_cells(mask, lat, lon, out.misr.grid)
        del lat, lon, mask
        for channel, (band, rad) in enumerate(zip(s.MISR_BANDS, radiances, strict=True)):
            if isinstance(rad, str):
                out.skip("MISR", band, r.MISR_BAND_MISSING, rad)
                continue
            s.misr_band(out.misr, channel, cells, rad)
    out.misr_blocks_used = [int(b) for b in blocks]


def _ceres(source: OrbitSource, out: r.OrbitResult, present: bool) -> None:
    params = out.parameters
    if not present:
        out.skip("CERES", "*", r.CERES_MISSING, "the file has no CERES group")
        return
    minus_90 = 0
    for name in source.ceres_granules():
        try:
            d = source.ceres_instrument(name, params.ceres_instrument)
        except MissingData as exc:
            out.skip("CERES", name, r.CERES_WITHOUT_FM1, f"no {params.ceres_instrument} group: {exc}")
            continue
        sizes = {k: v.shape for k, v in d.items()}
        if len({v.shape for v in d.values()}) != 1 or d["time"].ndim != 1:
            out.skip("CERES", name, r.CERES_LENGTHS_DIFFER, f"arrays of different shapes: {sizes}")
            continue
        minus_90 += s.ceres_granule(out.ceres, d, t0=out.t0, t1=out.t1, vza_max=params.vza_max, mode=params.ceres_mode)
    if minus_90:
        out.skip("CERES", "*", r.LATITUDE_MINUS_90, f"{minus_90} footprints at latitude -90 dropped (outside the grid)")
