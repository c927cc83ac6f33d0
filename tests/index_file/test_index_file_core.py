"""index_file's pure checks: HDF5 signature and truncation, request parsing, the completion marker."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datacarousel.errors import BadFileName, BadInput, MalformedMessage
from datacarousel.messages import IndexRequest
from index_file.core import HEADER_BYTES, Marker, check_hdf5, domain_is_complete, parse_request, stored_end_of_file


@pytest.fixture(params=["earliest", "latest"])
def hdf5_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A small HDF5 file with superblock version 0 (earliest) or 3 (latest)."""
    path = tmp_path / f"{request.param}.h5"
    with h5py.File(path, "w", libver=request.param) as f:
        f["x"] = np.arange(5000, dtype="f4")
    return path


def test_a_whole_file_passes_and_a_truncated_one_fails(hdf5_file: Path) -> None:
    data = hdf5_file.read_bytes()
    assert stored_end_of_file(data[:HEADER_BYTES]) == (0, len(data))
    check_hdf5(data[:HEADER_BYTES], len(data))
    with pytest.raises(BadInput, match="truncated"):
        check_hdf5(data[:HEADER_BYTES], len(data) // 2)


def test_userblock_is_found(tmp_path: Path) -> None:
    path = tmp_path / "ub.h5"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["x"] = np.arange(10)
    data = path.read_bytes()
    base, eof = stored_end_of_file(data[:HEADER_BYTES])
    assert base == 512 and eof == len(data)
    check_hdf5(data[:HEADER_BYTES], len(data))
    with pytest.raises(BadInput, match="truncated"):
        check_hdf5(data[:HEADER_BYTES], len(data) - 1)


@given(st.binary(min_size=0, max_size=HEADER_BYTES))
def test_random_bytes_are_not_hdf5(data: bytes) -> None:
    with pytest.raises(BadInput):
        check_hdf5(data, max(len(data), 1))


def test_empty_object_is_refused() -> None:
    with pytest.raises(BadInput, match="empty"):
        check_hdf5(b"", 0)


def test_parse_request_refuses_malformed_and_bad_names() -> None:
    good = IndexRequest(bucket="b", key="P22/TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5", size=1, etag="e")
    request, name = parse_request(good.to_json())
    assert request == good and name.orbit == 85079
    with pytest.raises(MalformedMessage):
        parse_request("{not json")
    with pytest.raises(MalformedMessage):
        parse_request('{"kind": "index-request", "bucket": "b"}')
    with pytest.raises(BadFileName):
        parse_request(IndexRequest(bucket="b", key="P22/notes.txt").to_json())


def test_marker_round_trip_and_completeness() -> None:
    marker = Marker("s3://b/k", "etag1", 10, 551, "2026-01-01T00:00:00Z")
    assert Marker.parse(marker.to_json()) == marker
    assert Marker.parse(marker.to_json().encode()) == marker
    assert Marker.parse("{}") is None and Marker.parse(None) is None and Marker.parse("[1]") is None
    assert domain_is_complete(marker, source="s3://b/k", etag="etag1")
    assert not domain_is_complete(marker, source="s3://b/k", etag="etag2"), "a replaced object is rebuilt"
    assert not domain_is_complete(None, source="s3://b/k", etag="etag1"), "no marker: incomplete"
