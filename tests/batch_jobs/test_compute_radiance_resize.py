"""`resize_bilinear` equals skimage's `resize` (order 1, mode 'reflect') on MISR angle grids, NaN included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from skimage.transform import resize

from batch_jobs.compute_radiance.resize import resize_bilinear


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")
@settings(max_examples=60, deadline=None)
@given(
    a=hnp.arrays(np.float64, (8, 32), elements=st.one_of(st.floats(-10, 120, allow_nan=False), st.just(np.nan))),
)
def test_resize_equals_skimage_resize_with_nan(a: np.ndarray) -> None:
    expected = resize(a, (128, 512))
    got = resize_bilinear(a, (128, 512))
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    ok = ~np.isnan(expected)
    assert np.allclose(got[ok], expected[ok], rtol=1e-12, atol=1e-10)


def test_resize_stack_equals_per_block() -> None:
    rng = np.random.default_rng(5)
    stack = rng.uniform(0, 90, (3, 8, 32))
    stack[1, 2, 3] = np.nan
    out = resize_bilinear(stack, (128, 512))
    for b in range(3):
        e = resize(stack[b], (128, 512))
        assert np.array_equal(np.isnan(out[b]), np.isnan(e))
        assert np.allclose(np.nan_to_num(out[b]), np.nan_to_num(e))


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")
@pytest.mark.parametrize(
    ("shape_in", "shape_out"), [((2, 8), (2, 8)), ((2, 8), (4, 16)), ((8, 32), (32, 128)), ((8, 32), (8, 32))]
)
def test_resize_other_shapes_equal_skimage(shape_in: tuple[int, int], shape_out: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape_in) + sum(shape_out))
    for _ in range(20):
        a = rng.uniform(0, 90, shape_in)
        a[rng.random(shape_in) < 0.2] = np.nan
        expected = resize(a, shape_out)
        got = resize_bilinear(a, shape_out)
        assert np.array_equal(np.isnan(got), np.isnan(expected))
        assert np.allclose(np.nan_to_num(got), np.nan_to_num(expected), rtol=1e-12)
