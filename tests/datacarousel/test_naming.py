"""BasicFusion naming rules against the anchors of docs/basicfusion-layout.md section 7."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datacarousel import naming
from datacarousel.errors import BadFileName


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("orbit", "path", "start"),
    [
        (1000, 100, "2000-02-25T00:25:07Z"),
        (40110, 22, "2007-07-03T16:09:15Z"),
        (66274, 178, "2012-06-03T08:13:15Z"),
        (85079, 22, "2015-12-16T16:09:10Z"),
        (9039, 108, "2001-08-30T01:07:29Z"),
        (85302, None, "2015-12-31T23:40:20Z"),
    ],
)
def test_anchor_orbits(orbit: int, path: int | None, start: str) -> None:
    assert naming.orbit_start(orbit) == _utc(start)
    if path is not None:
        assert naming.misr_path(orbit) == path


def test_misr_path_examples() -> None:
    assert naming.misr_path(73748) == 233
    assert naming.misr_path(9039) == 108
    assert naming.misr_path(85079) == 22
    assert {naming.misr_path(o) for o in range(1000, 1000 + 233)} == set(range(1, 234))


def test_orbit_85079_spans_the_documented_interval() -> None:
    assert naming.orbit_start(85079) == _utc("2015-12-16T16:09:10Z")
    assert naming.orbit_end(85079) == _utc("2015-12-16T17:48:03Z")


def test_real_file_names() -> None:
    assert naming.BasicFusionName.for_orbit(9039).file_name == "TERRA_BF_L1B_O9039_20010830010729_F000_V001.h5"
    assert naming.BasicFusionName.for_orbit(66274).file_name.startswith("TERRA_BF_L1B_O66274_20120603081315")
    name = naming.BasicFusionName.for_orbit(85079)
    assert name.file_name == "TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5"
    assert naming.archive_key(name) == "P22/TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5"
    assert (
        naming.hsds_domain("/home/u/bf/", name) == "/home/u/bf/2015.12/TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5"
    )
    assert name.result_name == "CLIMARBLE_O85079_20151216160910_F000_V001.npz"


@pytest.mark.parametrize(("year", "orbit"), sorted(naming.FIRST_ORBIT_OF_YEAR.items()))
def test_first_orbit_of_each_year(year: int, orbit: int) -> None:
    assert naming.orbit_start(orbit).year == year
    assert naming.orbit_start(orbit - 1).year == year - 1


def test_consecutive_orbits_are_one_period_apart() -> None:
    """Consecutive starts differ by 5805-6039 s in the OPT table; interpolation stays within that."""
    starts = [naming.orbit_start(o) for o in range(naming.FIRST_ORBIT, naming.LAST_ORBIT + 1)]
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(starts)}
    assert min(gaps) >= 5805 and max(gaps) <= 6039
    ends = [naming.orbit_end(o) for o in (1000, 40110, 85301)]
    assert ends == [naming.orbit_start(o + 1) - timedelta(seconds=1) for o in (1000, 40110, 85301)]


@pytest.mark.parametrize("orbit", [999, 85303, 0, -5])
def test_orbits_outside_the_archive_are_refused(orbit: int) -> None:
    with pytest.raises(BadFileName, match="outside the archive"):
        naming.BasicFusionName.for_orbit(orbit)


@pytest.mark.parametrize(
    "bad",
    [
        "TERRA_BF_L1B_O85079_2015121616091_F000_V001.h5",  # 13-digit time
        "TERRA_BF_L1B_O85079_20151216160910_F000_V001.hdf",
        "terra_bf_l1b_O85079_20151216160910_F000_V001.h5",
        "TERRA_BF_L1B_85079_20151216160910_F000_V001.h5",
        "TERRA_BF_L1B_O85079_20151316160910_F000_V001.h5",  # month 13
        "TERRA_BF_L1B_O99999_20151216160910_F000_V001.h5",  # orbit out of range
        "",
    ],
)
def test_malformed_names_are_refused(bad: str) -> None:
    with pytest.raises(BadFileName):
        naming.BasicFusionName.parse(bad)


def test_parse_accepts_keys_and_paths() -> None:
    parsed = naming.BasicFusionName.parse("s3://b/P22/TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5")
    assert (parsed.orbit, parsed.start, parsed.misr_path) == (85079, _utc("2015-12-16T16:09:10Z"), 22)


@given(st.integers(min_value=naming.FIRST_ORBIT, max_value=naming.LAST_ORBIT))
def test_format_parse_round_trip(orbit: int) -> None:
    name = naming.BasicFusionName.for_orbit(orbit)
    parsed = naming.BasicFusionName.parse(name.file_name)
    assert parsed == name
    assert parsed.file_name == name.file_name
    assert naming.BasicFusionName.parse(naming.archive_key(name, "archive/")) == name


@given(
    st.integers(min_value=naming.FIRST_ORBIT, max_value=naming.LAST_ORBIT),
    st.integers(min_value=-naming.ORBIT_START_TOLERANCE_S, max_value=naming.ORBIT_START_TOLERANCE_S),
    st.integers(min_value=0, max_value=999),
    st.integers(min_value=0, max_value=999),
)
def test_any_valid_name_round_trips(orbit: int, offset: int, f: int, v: int) -> None:
    """Any software and collection version; a start time off the interpolated one by no more than the
    interpolation may err (a real name carries OPT's exact time)."""
    start = naming.orbit_start(orbit) + timedelta(seconds=offset)
    name = naming.BasicFusionName(orbit=orbit, start=start, software=f"F{f:03d}", collection=f"V{v:03d}")
    assert naming.BasicFusionName.parse(name.file_name) == name


@pytest.mark.parametrize("tail", ["\n", "\r\n", "\n\n", " ", "\x00"])
def test_a_name_followed_by_anything_is_refused(tail: str) -> None:
    """`re.match(...$)` accepted a name followed by a newline: such a key named a good file."""
    name = naming.BasicFusionName.for_orbit(85079)
    for text in (name.file_name + tail, naming.archive_key(name, "bf/") + tail):
        with pytest.raises(BadFileName, match="is not a BasicFusion file name"):
            naming.BasicFusionName.parse(text)


@given(
    st.integers(min_value=naming.FIRST_ORBIT, max_value=naming.LAST_ORBIT),
    st.integers(min_value=naming.ORBIT_START_TOLERANCE_S + 1, max_value=40 * 365 * 86_400),
    st.sampled_from([-1, 1]),
)
def test_a_start_time_that_is_not_the_orbits_is_refused(orbit: int, distance: int, sign: int) -> None:
    """A name whose time is not its orbit's would make a second, phantom item for the orbit."""
    start = naming.orbit_start(orbit) + timedelta(seconds=sign * distance)
    if not datetime(2000, 1, 1, tzinfo=UTC) <= start < datetime(2100, 1, 1, tzinfo=UTC):
        return
    text = naming.BasicFusionName(orbit=orbit, start=start).file_name
    with pytest.raises(BadFileName, match=f"is not orbit {orbit}'s"):
        naming.BasicFusionName.parse(text)


def test_the_next_orbits_start_time_is_not_this_orbits() -> None:
    for orbit in (1000, 40110, 85078):
        text = naming.BasicFusionName(orbit=orbit, start=naming.orbit_start(orbit + 1)).file_name
        with pytest.raises(BadFileName, match="is not orbit"):
            naming.BasicFusionName.parse(text)
