"""Job queries: validation, matching and index-backed lookups."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carousel.catalogue import CatalogueArrays, fallback_entries
from carousel.query import JobQuery, lookups, match_mask, matches, month_orbits, validate_fields
from datacarousel import naming
from datacarousel.contract import FILES_TABLE, FileAttr, FileIndex
from datacarousel.errors import BadInput

# One orbit in 40 across the whole archive: every year, month and many paths appear.
SAMPLE = fallback_entries(seed=1, orbits=range(naming.FIRST_ORBIT, naming.LAST_ORBIT + 1, 40))
SAMPLE_ARRAYS = CatalogueArrays.from_entries(SAMPLE)

queries = (
    st.fixed_dictionaries(
        {
            "years": st.lists(st.integers(2000, 2015), max_size=3).map(tuple),
            "months": st.lists(st.integers(1, 12), max_size=3).map(tuple),
            "misr_paths": st.lists(st.integers(1, 233), max_size=4).map(tuple),
            "orbit_min": st.none() | st.integers(naming.FIRST_ORBIT, 50_000),
            "orbit_max": st.none() | st.integers(50_000, naming.LAST_ORBIT),
        }
    )
    .filter(lambda raw: not validate_fields(raw))
    .map(JobQuery.from_dict)
)


def _valid(**fields: object) -> bool:
    try:
        JobQuery(**fields)  # type: ignore[arg-type]
    except BadInput:
        return False
    return True


def test_query_is_canonical_and_round_trips() -> None:
    q = JobQuery.from_dict({"years": [2007, 2005, 2005], "months": [7], "misr_paths": [40, 37]})
    assert q.years == (2005, 2007)
    assert q.misr_paths == (37, 40)
    assert JobQuery.from_dict(q.to_dict()) == q


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"years": "2005"}, "years must be a list of integers"),
        ({"years": ["2005"]}, "years must hold integers only"),
        ({"years": [True]}, "years must hold integers only"),
        ({"years": [2005.0]}, "years must hold integers only"),
        ({"years": ["2005; DROP TABLE BasicFusionFiles"]}, "integers only"),
        ({"misr_paths": ["37 OR 1=1"]}, "integers only"),
        ({"orbit_min": "1000) OR (orbit > 0"}, "orbit_min must be an integer"),
        ({"years": [1999]}, "years must lie in 2000..2015"),
        ({"years": [2000], "months": [13]}, "months must lie in 1..12"),
        ({"misr_paths": [0, 234]}, "misr_paths must lie in 1..233"),
        ({"orbit_min": 10**12}, "orbit_min must lie in 1000..85302"),
        ({"orbit_min": 5000, "orbit_max": 4000}, "orbit_min 5000 is greater than orbit_max 4000"),
        ({"misr_paths": list(range(1, 234)) * 3}, "at most"),
        ({}, "selects the whole archive"),
        ({"years": [2005], "FilterExpression": "attribute_exists(x)"}, "unknown field(s) 'FilterExpression'"),
        ([2005], "expected an object"),
    ],
)
def test_bad_queries_are_rejected_with_clear_errors(raw: object, message: str) -> None:
    with pytest.raises(BadInput, match="invalid query") as info:
        JobQuery.from_dict(raw)
    assert message in str(info.value)


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(BadInput) as info:
        JobQuery.from_dict({"years": [1990], "months": [0], "misr_paths": ["x"]})
    text = str(info.value)
    assert "years" in text and "months" in text and "misr_paths" in text


def test_direct_construction_validates_too() -> None:
    assert not _valid(years=(2016,))
    assert not _valid(orbit_min=90_000)
    assert _valid(years=(2016 - 1,))


def test_matches_by_field() -> None:
    entry = SAMPLE[500]
    year, month = (int(p) for p in entry.year_month.split("."))
    assert matches(JobQuery(years=(year,)), entry)
    assert not matches(JobQuery(years=(year + 1 if year < 2015 else year - 1,)), entry)
    assert matches(JobQuery(months=(month,), misr_paths=(entry.misr_path,)), entry)
    assert not matches(JobQuery(months=(month,), misr_paths=(entry.misr_path % 233 + 1,)), entry)
    assert matches(JobQuery(orbit_min=entry.orbit, orbit_max=entry.orbit), entry)
    assert not matches(JobQuery(orbit_min=entry.orbit + 1), entry)


@settings(max_examples=60, deadline=None)
@given(queries)
def test_vector_mask_agrees_with_matches(query: JobQuery) -> None:
    mask = match_mask(query, SAMPLE_ARRAYS.orbit, SAMPLE_ARRAYS.year_month, SAMPLE_ARRAYS.misr_path)
    expected = [matches(query, e) for e in sorted(SAMPLE, key=lambda e: e.orbit)]
    assert mask.tolist() == expected


def _lookup_hits(query: JobQuery) -> set[int]:
    """Orbits the index lookups would return, then filtered by `matches` (what the adapter does)."""
    hits: set[int] = set()
    for lookup in lookups(query):
        for e in SAMPLE:
            key = e.year_month if lookup.index_name == FileIndex.BY_YEAR_MONTH else e.misr_path
            if key == lookup.hash_value and lookup.orbit_min <= e.orbit <= lookup.orbit_max and matches(query, e):
                hits.add(e.orbit)
    return hits


@settings(max_examples=60, deadline=None)
@given(queries)
def test_lookups_return_exactly_the_matching_files(query: JobQuery) -> None:
    expected = {e.orbit for e in SAMPLE if matches(query, e)}
    assert _lookup_hits(query) == expected


@settings(max_examples=40, deadline=None)
@given(queries)
def test_lookups_use_declared_indexes_with_typed_keys(query: JobQuery) -> None:
    for lookup in lookups(query):
        index = FILES_TABLE.index(lookup.index_name)  # exists on the table
        assert index.hash_key.name == lookup.hash_attribute
        assert index.range_key is not None and index.range_key.name == FileAttr.ORBIT == lookup.range_attribute
        expected_type = str if index.hash_key.type == "S" else int
        assert isinstance(lookup.hash_value, expected_type)
        assert naming.FIRST_ORBIT <= lookup.orbit_min <= lookup.orbit_max <= naming.LAST_ORBIT


def test_path_query_with_narrow_month_uses_the_month_index() -> None:
    q = JobQuery(years=(2005,), months=(7,), misr_paths=tuple(range(1, 101)))
    found = lookups(q)
    assert [x.index_name for x in found] == [FileIndex.BY_YEAR_MONTH]
    assert found[0].hash_value == "2005.07"


def test_few_paths_over_many_years_use_the_path_index() -> None:
    q = JobQuery(misr_paths=(37,), years=tuple(range(2001, 2010)))
    found = lookups(q)
    assert {x.index_name for x in found} == {FileIndex.BY_MISR_PATH}


def test_month_orbits_follow_the_naming_rule() -> None:
    for year, month in [(2000, 2), (2005, 7), (2012, 6), (2015, 12)]:
        span = month_orbits(year, month)
        assert span is not None
        lo, hi = span
        assert naming.BasicFusionName.for_orbit(lo).year_month == f"{year}.{month:02d}"
        assert naming.BasicFusionName.for_orbit(hi).year_month == f"{year}.{month:02d}"
        if lo > naming.FIRST_ORBIT:
            assert naming.orbit_start(lo - 1) < datetime(year, month, 1, tzinfo=UTC)
    assert month_orbits(2000, 1) is None  # before the archive starts
    assert month_orbits(2000, 2) is not None and month_orbits(2000, 2)[0] == naming.FIRST_ORBIT  # type: ignore[index]


def test_query_outside_archive_coverage_needs_no_lookup() -> None:
    assert lookups(JobQuery(years=(2000,), months=(1,))) == ()
    assert np.sum(SAMPLE_ARRAYS.mask(JobQuery(years=(2000,), months=(1,)))) == 0
