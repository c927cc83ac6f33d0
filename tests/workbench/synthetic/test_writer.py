"""The HDF5 writer: gzip-1 chunks written directly, templates, contiguous and S28 datasets."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from workbench.synthetic.instruments.modis import descending_row_threshold, failing_rows, upsample
from workbench.synthetic.writer import ChunkedWriter


def test_directly_written_chunks_read_back_through_the_gzip_filter(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(3, 40, 50)).astype(np.float32)
    with h5py.File(tmp_path / "f.h5", "w", libver="earliest") as h5, ChunkedWriter(workers=2) as w:
        w.gzip(h5, "banded", data, chunks=(1, 40, 50), attrs={"units": "x", "scales": np.ones(3, np.float32)})
        w.gzip(h5, "whole", data[0])
        w.gzip(h5, "template", data, chunks=(1, 40, 50), reuse="k")
        w.gzip(h5, "reused", None, reuse="k")
        w.plain(h5, "plain", data[1])
        w.fixed_strings(h5, "times", [b"2015-12-16T16:40:20.900000Z", b"0000-00-00T00:00:00.000000Z"], 28)
    with h5py.File(tmp_path / "f.h5") as h5:
        assert np.array_equal(h5["banded"][...], data) and h5["banded"].chunks == (1, 40, 50)
        assert h5["banded"].compression == "gzip" and h5["banded"].compression_opts == 1 and not h5["banded"].shuffle
        assert h5["banded"].attrs["units"] == b"x"
        assert np.array_equal(h5["whole"][...], data[0]) and h5["whole"].chunks == (40, 50)
        assert np.array_equal(h5["reused"][...], data) and h5["reused"].chunks == (1, 40, 50)
        assert h5["plain"].chunks is None and np.array_equal(h5["plain"][...], data[1])
        assert h5["times"].dtype == np.dtype("S28") and h5["times"][0] == b"2015-12-16T16:40:20.900000Z"


def test_no_data_needs_a_template(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "f.h5", "w") as h5, ChunkedWriter() as w, pytest.raises(ValueError, match="template"):
        w.gzip(h5, "x", None, reuse="missing")


def test_chunks_must_tile_the_array(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "f.h5", "w") as h5, ChunkedWriter() as w, pytest.raises(ValueError, match="tile"):
        w.gzip(h5, "x", np.zeros((5, 5), np.float32), chunks=(2, 5))


def test_descending_rule() -> None:
    rows = np.linspace(10, 0, 30, dtype=np.float32)[:, None] + np.zeros((1, 4), np.float32)
    assert failing_rows(rows) == 0 and failing_rows(rows[::-1]) == 29
    rows[10, 0] = 50  # one bad pixel fails its row (the next row is lower again)
    assert failing_rows(rows) == 1
    assert descending_row_threshold(2030) == 1000 and descending_row_threshold(1950) == 1000
    assert descending_row_threshold(40) == 20


def test_upsample_is_bilinear_and_wraps_longitude() -> None:
    y, x = np.mgrid[0:6, 0:5].astype(np.float32)
    fine = upsample(2 * y + 3 * x, 2)
    fy, fx = np.mgrid[0:12, 0:10].astype(np.float32)
    assert np.allclose(fine, 2 * ((fy + 0.5) / 2 - 0.5) + 3 * ((fx + 0.5) / 2 - 0.5), atol=1e-5)
    lon = np.array([[178.0, -178.0], [178.0, -178.0]], dtype=np.float32)
    out = upsample(lon, 4, wrap=True)
    assert np.all((out >= -180) & (out < 180)) and np.all(np.abs(out) > 175)
