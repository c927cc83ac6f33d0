"""The orbit/sun geometry model of docs/basicfusion-layout.md section 7 (pure numpy)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from datacarousel import naming
from workbench.synthetic.geometry import (
    OrbitGeometry,
    descending_node_longitude,
    scan_to_view,
    slant_factor,
    solar_position,
    wrap_lon,
)

orbits = st.integers(naming.FIRST_ORBIT, naming.LAST_ORBIT)


@settings(max_examples=40, deadline=None)
@given(orbits)
def test_orbit_starts_at_the_ascending_node_and_crosses_south_at_1030(orbit: int) -> None:
    g = OrbitGeometry.for_orbit(orbit)
    p = g.period_s
    lat, lon = g.latlon(np.array([0.0, p / 4, p / 2, 3 * p / 4]), np.zeros(4))
    assert np.allclose(lat, [0.0, 81.8, 0.0, -81.8], atol=1e-6)
    assert abs(wrap_lon(lon[2] - descending_node_longitude(g.path))) < 1e-6
    when = g.t0_unix + p / 2
    lst = ((when % 86400) / 3600 + lon[2] / 15) % 24
    assert 10.2 < lst < 10.9  # mean solar time; drift and the equation of time move it by minutes
    # The descending pass is sunlit at the equator, the ascending one dark.
    sza, _ = g.solar_angles(np.array([p / 2, 0.0]), np.array([lat[2], lat[0]]), np.array([lon[2], lon[0]]))
    assert sza[0] < 60 and sza[1] > 110


@settings(max_examples=40, deadline=None)
@given(orbits, st.floats(0.3, 0.7))
def test_latitude_decreases_on_the_daylit_half(orbit: int, fraction: float) -> None:
    g = OrbitGeometry.for_orbit(orbit)
    t = g.period_s * fraction + np.array([0.0, 1.0])
    lat, _ = g.latlon(t, np.zeros(2))
    assert lat[1] < lat[0]


def test_solar_position_at_known_instants() -> None:
    # December solstice noon at Greenwich: the sun stands over 23.4 S, near 0 E (equation of time +1.6 min).
    when = datetime(2015, 12, 22, 12, 0, tzinfo=UTC).timestamp()
    decl, lon = solar_position(np.array([when]))
    assert abs(decl[0] + 23.44) < 0.1 and abs(lon[0]) < 1.0
    # March equinox 2015 (Mar 20, 22:45 UTC): declination 0.
    decl, _ = solar_position(np.array([datetime(2015, 3, 20, 22, 45, tzinfo=UTC).timestamp()]))
    assert abs(decl[0]) < 0.05


@given(st.floats(0.0, 55.0))
def test_scan_angle_to_view_zenith(scan: float) -> None:
    view, central = scan_to_view(np.array([scan]))
    assert view[0] >= scan - 1e-9 and 0 <= central[0] < 11
    assert slant_factor(np.array([scan]))[0] >= 1.0


def test_modis_swath_edges_and_nadir_window() -> None:
    view, central = scan_to_view(np.array([55.0, 16.2]))
    assert 64 < view[0] < 67  # ~65 deg at the swath edge
    assert abs(view[1] - 18) < 0.2  # < 18 deg only within about +-16 deg of scan
    assert 2 * central[0] * np.pi / 180 * 6371 > 2200  # ~2330 km swath
