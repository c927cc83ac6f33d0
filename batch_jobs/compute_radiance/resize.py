"""Bilinear enlarging as skimage does it (`skimage.transform.resize`, order 1, mode 'reflect'), without skimage.

The MISR geometry test (spec §4.3) enlarges 8 x 32 angle grids to the 128 x 512 pixels of a block; the
original called skimage for it. Same taps, same float64 arithmetic, same clipping.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from batch_jobs.compute_radiance.gridding import FloatArray, IntArray


@cache
def taps(n_in: int, n_out: int) -> tuple[IntArray, IntArray, FloatArray]:
    """Two-tap bilinear interpolation (lo, hi, weight of hi) with pixel-centre alignment and mirrored edges."""
    x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    lo = np.floor(x).astype(np.int64)
    t = x - lo

    def mirror(i: IntArray) -> IntArray:  # skimage 'reflect' = ndimage 'mirror': a[-1] = a[1]
        if n_in == 1:
            return np.zeros_like(i)
        period = 2 * (n_in - 1)
        i = np.abs(i) % period
        return np.where(i >= n_in, period - i, i)

    lo_m, hi_m = mirror(lo), mirror(lo + 1)
    for a in (lo_m, hi_m, t):
        a.setflags(write=False)
    return lo_m, hi_m, t


def resize_bilinear(a: npt.ArrayLike, shape: tuple[int, int]) -> FloatArray:
    """`skimage.transform.resize(a, shape)` with its defaults, for enlarging: order 1, mode 'reflect', no anti-aliasing.

    Works on (..., h, w) stacks (each block clipped to its own range, as skimage does per image).
    NaN spreads to every output pixel that interpolates from a NaN.
    """
    arr = np.asarray(a, dtype=np.float64)
    h, w = arr.shape[-2:]
    if shape[0] < h or shape[1] < w:
        raise ValueError("resize_bilinear only enlarges (skimage would anti-alias when shrinking)")
    r_lo, r_hi, r_t = taps(h, shape[0])
    c_lo, c_hi, c_t = taps(w, shape[1])
    # a tap of weight zero contributes nothing, not even its NaN (as in scipy.ndimage.zoom)
    lo_rows = arr[..., r_lo, :]
    with np.errstate(invalid="ignore"):
        rows = np.where((r_t == 0)[:, None], lo_rows, lo_rows * (1 - r_t)[:, None] + arr[..., r_hi, :] * r_t[:, None])
        lo_cols = rows[..., c_lo]
        out = np.where(c_t == 0, lo_cols, lo_cols * (1 - c_t) + rows[..., c_hi] * c_t)
    # skimage clips to the input's range (nanmin/nanmax per image): a no-op for bilinear up to rounding
    flat = arr.reshape(*arr.shape[:-2], -1)
    finite = np.isfinite(flat).any(axis=-1)
    if finite.any():
        with np.errstate(invalid="ignore"):
            lo = np.where(finite, np.nanmin(np.where(np.isnan(flat), np.inf, flat), axis=-1), -np.inf)
            hi = np.where(finite, np.nanmax(np.where(np.isnan(flat), -np.inf, flat), axis=-1), np.inf)
        np.clip(out, lo[..., None, None], hi[..., None, None], out=out)
    return out
