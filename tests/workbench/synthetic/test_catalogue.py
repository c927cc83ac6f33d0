"""The archive catalogue: 84,303 orbit files named and timed by `naming`, about 2.5 PB in all."""

from __future__ import annotations

import csv
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from datacarousel import naming
from workbench.synthetic.catalogue import FIELDS, archive_catalogue, file_sizes, write_catalogue


@pytest.fixture(scope="module")
def catalogue() -> list:
    return archive_catalogue(seed=0)


def test_one_row_per_orbit_1000_to_85302(catalogue: list) -> None:
    assert len(catalogue) == 84_303
    assert [e.orbit for e in catalogue] == list(range(1000, 85303))
    assert len({e.file_name for e in catalogue}) == 84_303 and len({e.key for e in catalogue}) == 84_303


@pytest.mark.parametrize(
    ("orbit", "start", "path"),
    [
        (1000, "2000-02-25T00:25:07", 100),
        (9039, "2001-08-30T01:07:29", 108),
        (40110, "2007-07-03T16:09:15", 22),
        (66274, "2012-06-03T08:13:15", 178),
        (85079, "2015-12-16T16:09:10", 22),
        (85302, "2015-12-31T23:40:20", None),
    ],
)
def test_anchor_orbits_have_their_listed_start_times_and_paths(
    catalogue: list, orbit: int, start: str, path: int | None
) -> None:
    entry = catalogue[orbit - 1000]
    assert entry.orbit == orbit
    assert entry.start == datetime.fromisoformat(start).replace(tzinfo=UTC)
    if path is not None:
        assert entry.misr_path == path
    stamp = start.replace("-", "").replace(":", "").replace("T", "")
    assert entry.file_name == f"TERRA_BF_L1B_O{orbit}_{stamp}_F000_V001.h5"
    assert entry.key == f"P{entry.misr_path}/{entry.file_name}"
    assert entry.year_month == start[:7].replace("-", ".")


def test_o85079_is_the_p22_file_of_the_aws_sampler(catalogue: list) -> None:
    entry = catalogue[85079 - 1000]
    assert entry.key == "P22/TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5"
    assert entry.end == datetime(2015, 12, 16, 17, 48, 3, tzinfo=UTC)


def test_rows_agree_with_naming_everywhere(catalogue: list) -> None:
    for entry in catalogue[::97] + catalogue[-5:]:
        name = naming.BasicFusionName.for_orbit(entry.orbit)
        assert entry.file_name == name.file_name
        assert entry.key == naming.archive_key(name)
        assert entry.start == naming.orbit_start(entry.orbit) and entry.end == naming.orbit_end(entry.orbit)
        assert entry.misr_path == naming.misr_path(entry.orbit) and entry.year_month == name.year_month
    for before, after in itertools.pairwise(catalogue):
        assert before.start < before.end <= after.start


def test_first_orbit_of_each_year_starts_in_that_year(catalogue: list) -> None:
    for year, orbit in naming.FIRST_ORBIT_OF_YEAR.items():
        assert catalogue[orbit - 1000].start.year == year
        assert catalogue[orbit - 1001].start.year == year - 1


def test_sizes_are_15_to_50_gb_and_total_about_2_5_pb(catalogue: list) -> None:
    sizes = [e.size_bytes for e in catalogue]
    assert min(sizes) >= 15_000_000_000 and max(sizes) <= 50_000_000_000
    total = sum(sizes)
    assert 2.0e15 <= total <= 3.0e15
    assert 2.3e15 < total < 2.7e15  # about 2.5 PB (GLOBUS)


def test_sizes_are_fixed_by_the_seed() -> None:
    assert file_sizes(0).tolist() == file_sizes(0).tolist()
    assert file_sizes(0).tolist() != file_sizes(1).tolist()
    assert [e.size_bytes for e in archive_catalogue(seed=3)[:10]] == file_sizes(3)[:10].tolist()


def test_catalogue_builds_in_well_under_a_second_of_work() -> None:
    # Not a timing assertion (bench/ does timing): the catalogue is built from vectorised sizes.
    assert file_sizes().shape == (84_303,)


def test_write_csv_and_json(tmp_path: Path, catalogue: list) -> None:
    sample = catalogue[:3]
    write_catalogue(sample, tmp_path / "c.csv")
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert tuple(rows[0]) == FIELDS and rows[0]["orbit"] == "1000" and rows[0]["start"] == "2000-02-25T00:25:07Z"
    write_catalogue(sample, tmp_path / "c.json")
    data = json.loads((tmp_path / "c.json").read_text())
    assert data[2]["file_name"] == sample[2].file_name and data[2]["size_bytes"] == sample[2].size_bytes
    with pytest.raises(ValueError, match=r"\.csv or \.json"):
        write_catalogue(sample, tmp_path / "c.txt")
