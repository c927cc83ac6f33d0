"""Reading a domain's restart points: none, or unreadable ones, mean a plain read (never a failure).

The round trip through a real HSDS domain is tests/index_file/test_index_file_restart_points.py.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

import numpy as np
import pytest

from datacarousel import hsds_restart_points
from datacarousel.chunkread import restart
from datacarousel.contract import HSDS_RESTART_POINTS


class FakeDomain:
    """What `load` uses of an h5pyd File: `attrs` and objects by id."""

    def __init__(self, attrs: dict[str, Any], objects: dict[str, Any]) -> None:
        self.attrs, self._objects, self.filename = attrs, objects, "/home/test/orbit.h5"

    def __getitem__(self, name: str) -> Any:
        return self._objects[name]


def _points_bytes() -> tuple[bytes, int, int]:
    stream = zlib.compress(np.random.default_rng(0).integers(0, 4, 400_000, dtype=np.uint8).tobytes(), 1)
    return (
        restart.dumps_file({"MISR/AN/Data_Fields/Red_Radiance": (4096, restart.build(stream, restart.WINDOW))}),
        4096,
        len(stream),
    )


def test_no_attribute_no_points() -> None:
    assert hsds_restart_points.load(FakeDomain({}, {})) is None


def test_points_found_by_the_attribute() -> None:
    data, offset, size = _points_bytes()
    domain = FakeDomain({HSDS_RESTART_POINTS: "d-1"}, {"d-1": np.frombuffer(data, np.uint8)})
    lookup = hsds_restart_points.load(domain)
    assert lookup is not None and lookup("/MISR/AN/Data_Fields/Red_Radiance", offset, size) is not None


@pytest.mark.parametrize(
    "objects",
    [{}, {"d-1": np.frombuffer(b"not restart points at all", np.uint8)}],
    ids=["dataset-gone", "not-points"],
)
def test_unreadable_points_are_logged_and_not_used(objects: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert hsds_restart_points.load(FakeDomain({HSDS_RESTART_POINTS: "d-1"}, objects)) is None
    assert "inflating front to back" in caplog.text
