"""Which orbits `datacarousel generate` writes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datacarousel import naming
from datacarousel.errors import BadFileName
from workbench.synthetic.selection import parse_orbit_range, select_orbits


@given(st.integers(1000, 85302), st.integers(0, 300))
def test_orbit_range_is_inclusive(first: int, length: int) -> None:
    last = min(first + length, 85302)
    assert list(parse_orbit_range(f"{first}-{last}")) == list(range(first, last + 1))


@pytest.mark.parametrize("text", ["85085-85079", "abc", "85079-", "1-5"])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises((ValueError, BadFileName)):
        parse_orbit_range(text)


@pytest.mark.parametrize("year_month", ["2000.02", "2007.07", "2012.06", "2015.12"])
def test_month_selects_exactly_the_orbits_starting_in_it(year_month: str) -> None:
    chosen = select_orbits(year_month=year_month)
    assert chosen and all(naming.BasicFusionName.for_orbit(o).year_month == year_month for o in chosen)
    if chosen[0] > naming.FIRST_ORBIT:
        assert naming.BasicFusionName.for_orbit(chosen[0] - 1).year_month != year_month
    if chosen[-1] < naming.LAST_ORBIT:
        assert naming.BasicFusionName.for_orbit(chosen[-1] + 1).year_month != year_month
    assert len(chosen) == len(set(chosen)) and 60 < len(chosen) < 460


def test_union_of_orbits_range_and_month_filtered_by_path() -> None:
    assert select_orbits([85079, 9039], "85079-85081") == [9039, 85079, 85080, 85081]
    assert select_orbits(year_month="2015.12", paths=[22]) == [85079]
    july = select_orbits(year_month="2007.07", paths=[22])
    assert 40110 in july and all(naming.misr_path(o) == 22 for o in july) and len(july) == 2
    with pytest.raises(ValueError, match=r"YYYY\.MM"):
        select_orbits(year_month="July")
