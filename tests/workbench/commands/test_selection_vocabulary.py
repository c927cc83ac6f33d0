"""One vocabulary selects files in `generate`, `submit`, `files` and `demo`: --year-month, --years, --months,
--path, --orbits. Repeated or comma-listed, the same selection gives the same result in each command; the old
spellings (--paths, --orbit-min/--orbit-max, demo's --month and --orbits N) still work; a bad value is one line
on stderr and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from carousel.query import JobQuery
from datacarousel.contract import Env, FileAttr, FileState
from datacarousel.errors import BadInput
from datacarousel.naming import BasicFusionName, misr_path
from tests.workbench.commands.commands_world import CliWorld, cli, make_world, one_line_error
from workbench.commands import carousel as carousel_commands
from workbench.commands import demo as demo_commands
from workbench.commands import generate as generate_commands
from workbench.commands.selection import Selection, parse_selection

NOVEMBER = (84482, 84613, 84715, 84846)  # 2015.11 on MISR paths 22, 23
DECEMBER = (84948, 85079, 85181)  # 2015.12 on MISR paths 22, 23
OTHER_PATH = 85050  # 2015.12, path 24

SAME_PATHS = (
    ["--path", "22", "--path", "23"],
    ["--path", "22,23"],
    ["--paths", "22,23"],  # the old spelling
    ["--paths", "22", "--paths", "23"],
)
SAME_MONTHS = (
    ["--year-month", "2015.11", "--year-month", "2015.12"],
    ["--year-month", "2015.11,2015.12"],
    ["--years", "2015", "--months", "11,12"],
    ["--years", "2015", "--months", "11", "--months", "12"],
)
BAD = [
    (["--years", "1999"], "--years 1999"),
    (["--months", "13"], "--months 13"),
    (["--months", "x"], "--months takes integers"),
    (["--path", "0"], "--path 0"),
    (["--path", "22,234"], "--path 234"),
    (["--paths", "22,x"], "--paths takes integers"),
    (["--year-month", "2015-12"], "YYYY.MM"),
    (["--year-month", "2016.01"], "--year-month 2016.01"),
    (["--orbits", "85100-85000"], "--orbits 85100-85000"),
    (["--orbits", "999-1005"], "orbit 999 is outside the archive"),
    (["--orbits", "85079-85999"], "orbit 85999 is outside the archive"),
    (["--orbits", "a-b"], "--orbits 'a-b'"),
    (["--year-month", "2015.12", "--years", "2015"], "give one of them"),
]


def test_repeated_and_comma_listed_values_are_one_selection() -> None:
    assert parse_selection(path=["22", "23"]) == parse_selection(path=["22,23"]) == parse_selection(paths=["23,22"])
    assert parse_selection(path=["22"], paths=["23"]).paths == (22, 23)
    assert parse_selection(orbits="85000-85100") == parse_selection(orbit_min=85000, orbit_max=85100)
    assert parse_selection(orbits="85079").orbits == (85079, 85079)
    assert parse_selection(orbit_min=85000).orbits == (85000, 85302)
    assert parse_selection(month=["2015.12"]) == parse_selection(year_month=["2015.12"])
    assert parse_selection(years=["2015"], months=["11,12"]).month_list() == ("2015.11", "2015.12")
    assert len(parse_selection(months=["12"]).month_list()) == 16  # December of every year
    assert parse_selection() == Selection() and Selection().is_empty


@pytest.mark.parametrize(("args", "message"), [*BAD, (["--orbit-min", "85100", "--orbit-max", "85000"], "greater")])
def test_bad_values_name_the_option_and_the_value(args: list[str], message: str) -> None:
    names = {"--year-month": "year_month", "--orbit-min": "orbit_min", "--orbit-max": "orbit_max"}
    kwargs: dict[str, Any] = {}
    for option, value in zip(args[::2], args[1::2], strict=True):
        name = names.get(option, option.removeprefix("--"))
        kwargs[name] = int(value) if name.startswith("orbit_") else value if name == "orbits" else [value]
    with pytest.raises(BadInput, match=message):
        parse_selection(**kwargs)


# --- generate ----------------------------------------------------------------------------------------


@pytest.fixture()
def generated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """`generate` records the orbits it would write (no HDF5 files: what is chosen is the point)."""
    written: list[int] = []

    def fake(number: int, out: Path, **_: Any) -> Path:
        written.append(number)
        path = out / f"{number}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        return path

    monkeypatch.setattr(generate_commands, "generate_orbit", fake)
    return written


def _generate(written: list[int], tmp_path: Path, *args: str) -> list[int]:
    written.clear()
    out = cli("generate", "--out", str(tmp_path), "--preset", "tiny", *args)
    assert out.exit_code == 0, out.output
    return list(written)


def test_generate_takes_the_vocabulary_both_ways(generated: list[int], tmp_path: Path) -> None:
    for paths in SAME_PATHS:
        assert _generate(generated, tmp_path, "--year-month", "2015.12", *paths) == list(DECEMBER), paths
    for months in SAME_MONTHS:
        assert _generate(generated, tmp_path, *months, "--path", "22,23") == sorted(NOVEMBER + DECEMBER), months
    assert _generate(generated, tmp_path, "--year-month", "2015.12", "--orbits", "85000-85302") == [
        o for o in range(85000, 85303) if BasicFusionName.for_orbit(o).year_month == "2015.12"
    ]  # options combine as AND
    assert _generate(generated, tmp_path, "--orbits", "85079") == [85079]
    assert _generate(generated, tmp_path, "--orbit", "85079", "--orbit", "85080") == [85079, 85080]  # old spelling
    assert _generate(generated, tmp_path, "--year-month", "2015.12", "--path", "22", "--limit", "1") == [85079]


# --- submit ------------------------------------------------------------------------------------------


@pytest.fixture()
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[JobQuery]:
    """`submit` hands its JobQuery to the carousel: recorded here, no table read."""
    queries: list[JobQuery] = []

    def fake(*_: Any, query: JobQuery, **__: Any) -> Any:
        queries.append(query)
        return SimpleNamespace(as_dict=lambda: {"query": query.to_dict()})

    monkeypatch.delenv(Env.STACK_NAME, raising=False)
    monkeypatch.setattr(carousel_commands, "_context", lambda need: SimpleNamespace(tables=None, config=None))
    monkeypatch.setattr(carousel_commands, "do_submit", fake)
    return queries


def _submit(queries: list[JobQuery], *args: str) -> JobQuery:
    out = cli("submit", "--owner", "alice", "--json", *args)
    assert out.exit_code == 0, out.output
    return queries[-1]


def test_submit_takes_the_vocabulary_both_ways(submitted: list[JobQuery]) -> None:
    for paths in SAME_PATHS:
        assert _submit(submitted, "--years", "2015", *paths) == JobQuery(years=(2015,), misr_paths=(22, 23))
    for months in SAME_MONTHS:
        assert _submit(submitted, *months) == JobQuery(years=(2015,), months=(11, 12))
    ranged = JobQuery(orbit_min=85000, orbit_max=85100)
    assert _submit(submitted, "--orbits", "85000-85100") == ranged
    assert _submit(submitted, "--orbit-min", "85000", "--orbit-max", "85100") == ranged  # old spelling


def test_submit_refuses_months_that_are_no_years_by_months(submitted: list[JobQuery]) -> None:
    out = cli("submit", "--owner", "alice", "--year-month", "2014.12,2015.01")
    assert out.exit_code == 2 and "submit one job per year" in one_line_error(out)
    assert submitted == []


# --- files -------------------------------------------------------------------------------------------


@pytest.fixture()
def world(fake_aws: Any, monkeypatch: pytest.MonkeyPatch) -> CliWorld:
    world = make_world(fake_aws, monkeypatch)
    for orbit in (*NOVEMBER, *DECEMBER, OTHER_PATH):
        name = BasicFusionName.for_orbit(orbit)
        world.file(name, FileState.INDEXED if orbit == DECEMBER[0] else FileState.ARCHIVED)
        world.tables.files.ddb.update_item(
            TableName=world.tables.files.table,
            Key={FileAttr.FILE_NAME: {"S": name.file_name}},
            UpdateExpression="SET #p = :p",
            ExpressionAttributeNames={"#p": FileAttr.MISR_PATH},
            ExpressionAttributeValues={":p": {"N": str(misr_path(orbit))}},
        )
    return world


def _files(*args: str) -> list[int]:
    out = cli("files", *args)
    assert out.exit_code == 0, out.output
    return [int(item[FileAttr.ORBIT]) for item in json.loads(out.stdout)]


def test_files_takes_the_vocabulary_both_ways(world: CliWorld) -> None:
    for paths in SAME_PATHS:
        assert _files(*paths) == sorted(NOVEMBER + DECEMBER), paths
        assert _files("--year-month", "2015.12", *paths) == list(DECEMBER), paths
    for months in SAME_MONTHS:
        assert _files(*months) == sorted((*NOVEMBER, *DECEMBER, OTHER_PATH)), months
        assert _files(*months, "--path", "24") == [OTHER_PATH], months
    assert _files("--path", "22,23", "--orbits", "84900-85100") == [84948, 85079]
    assert _files("--year-month", "2015.12", "--state", "INDEXED") == [DECEMBER[0]]
    assert _files("--months", "11") == list(NOVEMBER)


# --- demo --------------------------------------------------------------------------------------------


@pytest.fixture()
def demo_runs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """`demo` checks its options and would start the environment: the options are recorded instead."""
    runs: list[Any] = []
    monkeypatch.delenv(Env.STACK_NAME, raising=False)
    monkeypatch.setattr(demo_commands, "_run", lambda options, out: runs.append(options))
    return runs


def _demo(runs: list[Any], *args: str) -> tuple[str, tuple[int, ...], int | None]:
    out = cli("demo", *args)
    assert out.exit_code == 0, out.output
    options = runs[-1]
    return options.month, options.paths, options.orbits


def test_demo_takes_the_vocabulary_both_ways(demo_runs: list[Any]) -> None:
    for paths in SAME_PATHS:
        assert _demo(demo_runs, "--year-month", "2015.11", *paths) == ("2015.11", (22, 23), None), paths
    for month in (["--year-month", "2015.11"], ["--month", "2015.11"], ["--years", "2015", "--months", "11"]):
        assert _demo(demo_runs, *month, "--limit", "3") == ("2015.11", (22, 23, 24), 3), month
    assert _demo(demo_runs, "--orbits", "3") == ("2015.12", (22, 23, 24), 3)  # the old "at most N orbits"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--orbits", "85000-85100"], "--limit N"),
        (["--year-month", "2015.11,2015.12"], "one month, not 2"),
        (["--years", "2015"], "one month, not 12"),
    ],
)
def test_demo_refuses_what_one_month_cannot_be(demo_runs: list[Any], args: list[str], message: str) -> None:
    out = cli("demo", *args)
    assert out.exit_code == 2 and message in one_line_error(out)
    assert demo_runs == []


# --- every command: a bad value is one line and exit code 2 --------------------------------------------

COMMANDS = {
    "generate": ["generate", "--out", "unused"],
    "submit": ["submit", "--owner", "alice"],
    "files": ["files"],
    "demo": ["demo"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("args", "message"), BAD)
def test_a_bad_value_is_one_line_and_exit_2(
    command: str, args: list[str], message: str, demo_runs: list[Any], submitted: list[JobQuery]
) -> None:
    out = cli(*COMMANDS[command], *args)
    assert out.exit_code == 2, out.output
    assert message in one_line_error(out)
    assert demo_runs == [] and submitted == []


def test_help_shows_the_one_vocabulary() -> None:
    for command in COMMANDS:
        out = cli(command, "--help")
        assert out.exit_code == 0, out.output
        for option in ("--year-month", "--years", "--months", "--path", "--orbits"):
            assert option in out.stdout, (command, option)
        for hidden in ("--paths", "--orbit-min", "--orbit-max", "--month "):
            assert hidden not in out.stdout, (command, hidden)
