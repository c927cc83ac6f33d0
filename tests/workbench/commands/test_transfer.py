"""`datacarousel upload | fetch` (and `down`'s warning) through the command line on moto's in-process fakes:
orbit files into the archive bucket under their keys and storage class, a job's results out with their
layout; both idempotent; a user error is one line on stderr with a hint, exit 2; never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from datacarousel.contract import Env, JobAttr, JobFileState, JobState
from datacarousel.naming import BasicFusionName, archive_key, composite_key, reduced_marker_key, result_key
from tests.workbench.commands.commands_world import RESULTS, CliWorld, cli, make_world, one_line_error
from workbench import transfer
from workbench.local import environment, moto_server

ARCHIVE = "dc-archive"
PREFIX = "bf/"
ORBITS = (85079, 85078)


def _write_orbit(directory: Path, name: str, values: int) -> Path:
    path = directory / name
    with h5py.File(path, "w") as f:
        f.create_dataset("MISR/AN/Data_Fields/Blue_Radiance", data=np.arange(values, dtype="f4"))
    return path


@pytest.fixture()
def world(fake_aws: Any, monkeypatch: pytest.MonkeyPatch) -> CliWorld:
    fake_aws.s3.create_bucket(Bucket=ARCHIVE)
    monkeypatch.setenv(Env.ARCHIVE_BUCKET, ARCHIVE)
    monkeypatch.setenv(Env.ARCHIVE_PREFIX, PREFIX)
    return make_world(fake_aws, monkeypatch)


@pytest.fixture()
def orbits(tmp_path: Path) -> Path:
    directory = tmp_path / "orbits"
    directory.mkdir()
    for i, orbit in enumerate(ORBITS):
        _write_orbit(directory, BasicFusionName.for_orbit(orbit).file_name, 100 * (i + 1))
    _write_orbit(directory, "notes.h5", 10)
    (directory / "README.txt").write_text("not an orbit")
    return directory


def test_upload_puts_each_orbit_under_its_key_with_the_storage_class(world: CliWorld, orbits: Path) -> None:
    out = cli("upload", str(orbits))
    assert out.exit_code == 0, out.output
    for orbit in ORBITS:
        name = BasicFusionName.for_orbit(orbit)
        head = world.s3.head_object(Bucket=ARCHIVE, Key=archive_key(name, PREFIX))
        assert head["StorageClass"] == "DEEP_ARCHIVE"
        assert head["ContentLength"] == (orbits / name.file_name).stat().st_size
        assert f"uploaded {name.file_name} -> s3://{ARCHIVE}/{archive_key(name, PREFIX)}" in out.stdout
    assert "not BasicFusion names (skipped): notes.h5" in out.stdout.splitlines()
    assert out.stdout.splitlines()[-1].startswith("uploaded 2 (")
    assert out.stdout.splitlines()[-1].endswith("skipped 0 already there, 1 not BasicFusion names")
    keys = [o["Key"] for o in world.s3.list_objects_v2(Bucket=ARCHIVE).get("Contents", [])]
    assert len(keys) == 2  # neither notes.h5 nor README.txt

    again = cli("upload", str(orbits), "--storage-class", "GLACIER")
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[-1].startswith("uploaded 0 (0 B)")
    assert "skipped 2 already there, 1 not BasicFusion names" in again.stdout
    name = BasicFusionName.for_orbit(ORBITS[0])
    assert world.s3.head_object(Bucket=ARCHIVE, Key=archive_key(name, PREFIX))["StorageClass"] == "DEEP_ARCHIVE"


def test_upload_replaces_an_object_of_another_size_with_the_chosen_class(world: CliWorld, orbits: Path) -> None:
    name = BasicFusionName.for_orbit(ORBITS[0])
    world.s3.put_object(Bucket=ARCHIVE, Key=archive_key(name, PREFIX), Body=b"short", StorageClass="DEEP_ARCHIVE")
    out = cli("upload", str(orbits), "--storage-class", "STANDARD")
    assert out.exit_code == 0, out.output
    assert "uploaded 2 (" in out.stdout and "(replaced an object of 5 B)" in out.stdout
    head = world.s3.head_object(Bucket=ARCHIVE, Key=archive_key(name, PREFIX))
    assert head["ContentLength"] == (orbits / name.file_name).stat().st_size
    assert head.get("StorageClass", "STANDARD") == "STANDARD"


def test_upload_is_multipart_above_the_threshold(world: CliWorld, tmp_path: Path) -> None:
    name = BasicFusionName.for_orbit(ORBITS[0])
    (tmp_path / name.file_name).write_bytes(b"x" * (6 * 2**20))
    plan = transfer.plan_upload(tmp_path, "")
    config = transfer.TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    seen: list[int] = []

    class Count:
        def begin(self, files: int, total_bytes: int) -> None:
            seen.append(total_bytes)

        def advance(self, n_bytes: int) -> None:
            pass

        def line(self, text: str) -> None:
            pass

        def end(self) -> None:
            pass

    report = transfer.upload(world.s3, ARCHIVE, plan, storage_class="GLACIER", reporter=Count(), config=config)
    assert [f.name for f in report.uploaded] == [name] and seen == [6 * 2**20]
    head = world.s3.head_object(Bucket=ARCHIVE, Key=archive_key(name))
    assert head["ETag"].strip('"').endswith("-2") and head["StorageClass"] == "GLACIER"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", "is not a directory"),
        (lambda d: d, "no *.h5 file in"),
    ],
)
def test_upload_of_a_missing_or_empty_directory_is_one_line_exit_2(
    world: CliWorld, tmp_path: Path, make: Any, message: str
) -> None:
    out = cli("upload", str(make(tmp_path)))
    assert out.exit_code == 2, out.output
    line = one_line_error(out)
    assert message in line and "datacarousel generate --out" in line
    assert not out.stdout


def test_upload_without_the_archive_bucket_is_one_line_exit_2(
    world: CliWorld, orbits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(Env.ARCHIVE_BUCKET)
    out = cli("upload", str(orbits))
    assert out.exit_code == 2 and "DC_ARCHIVE_BUCKET is not set" in one_line_error(out)


def test_upload_to_a_bucket_that_does_not_exist_is_exit_2(
    world: CliWorld, orbits: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(Env.ARCHIVE_BUCKET, "no-such-bucket")
    out = cli("upload", str(orbits))
    assert out.exit_code == 2, out.output
    line = one_line_error(out)
    assert "DC_ARCHIVE_BUCKET" in line


# ---- fetch ----

JOB = "job-1"


def _plant_results(world: CliWorld) -> dict[str, bytes]:
    objects: dict[str, bytes] = {}
    for i, orbit in enumerate(ORBITS):
        name = BasicFusionName.for_orbit(orbit)
        objects[result_key(JOB, name)] = bytes([i]) * (1000 + i)
        objects[result_key(JOB, name, prefix="TERRA_BF_L1B", suffix=".nc")] = b"n" * (50 + i)
    objects[composite_key(JOB, "2015.12")] = b"c" * 3000
    objects[composite_key(JOB, "2015.12", ".nc")] = b"d" * 700
    objects[f"results/{JOB}/composites/quicklook/composite_2015.12_MISR.png"] = b"\x89PNG" + b"p" * 100
    objects[reduced_marker_key(JOB)] = b'{"keys": []}'
    objects["results/job-10/2015.12/other.npz"] = b"not job-1's"
    for key, body in objects.items():
        world.s3.put_object(Bucket=RESULTS, Key=key, Body=body)
    return {k[len(f"results/{JOB}/") :]: v for k, v in objects.items() if k.startswith(f"results/{JOB}/")}


def test_fetch_reproduces_the_layout_and_sizes_then_skips(world: CliWorld, tmp_path: Path) -> None:
    expected = _plant_results(world)
    out = cli("fetch", JOB, "--out", str(tmp_path / "res"))
    assert out.exit_code == 0, out.output
    root = tmp_path / "res" / JOB
    got = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert got == expected
    assert "2015.12/CLIMARBLE_O85079_20151216160910_F000_V001.npz" in got
    lines = out.stdout.splitlines()
    assert len(lines) == len(expected) + 1 and all(line.startswith("fetched ") for line in lines[:-1])
    total = sum(len(v) for v in expected.values())
    assert lines[-1].startswith(f"{len(expected)} file(s), {transfer.size_text(total)} in {root}")
    assert "skipped 0 already there" in lines[-1]

    (root / "reduced.json").unlink()  # one missing, one of another size: fetched again
    (root / "composites" / "2015.12.npz").write_bytes(b"half")
    again = cli("fetch", JOB, "--out", str(tmp_path / "res"))
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[:-1] == ["fetched composites/2015.12.npz (3.00 KB)", "fetched reduced.json (12 B)"]
    assert f"skipped {len(expected) - 2} already there" in again.stdout
    assert (root / "composites" / "2015.12.npz").read_bytes() == expected["composites/2015.12.npz"]
    assert not list(root.rglob("*.part"))


def test_fetch_defaults_to_results_in_the_working_directory(
    world: CliWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _plant_results(world)
    monkeypatch.chdir(tmp_path)
    out = cli("fetch", JOB)
    assert out.exit_code == 0, out.output
    assert (tmp_path / "results" / JOB / "reduced.json").is_file()


@pytest.mark.parametrize(("job", "message"), [("job-nope", "no job 'job-nope'"), ("../x", "is not a job id")])
def test_fetch_of_an_unknown_job_is_one_line_exit_2(world: CliWorld, tmp_path: Path, job: str, message: str) -> None:
    _plant_results(world)
    out = cli("fetch", job, "--out", str(tmp_path))
    assert out.exit_code == 2, out.output
    line = one_line_error(out)
    assert message in line and "datacarousel status" in line
    assert not out.stdout and not list(tmp_path.iterdir())


def test_fetch_of_a_job_without_results_yet_says_so_exit_1(world: CliWorld, tmp_path: Path) -> None:
    world.job("job-new", {BasicFusionName.for_orbit(85079): (JobFileState.WAITING, "")}, JobState.OPEN)
    out = cli("fetch", "job-new", "--out", str(tmp_path))
    assert out.exit_code == 1, out.output
    line = one_line_error(out)
    assert "job 'job-new' (OPEN) has no results" in line and "datacarousel status" in line


def test_fetch_by_owner_takes_each_of_their_jobs_and_skips_one_still_running(world: CliWorld, tmp_path: Path) -> None:
    name = BasicFusionName.for_orbit(85079)
    expected = _plant_results(world)
    world.job(JOB, {name: (JobFileState.DONE, "")}, JobState.COMPLETE)  # alice's
    world.job("job-new", {name: (JobFileState.WAITING, "")}, JobState.OPEN)  # alice's, no results yet
    world.job("job-10", {name: (JobFileState.DONE, "")}, JobState.COMPLETE, {JobAttr.OWNER: "bob"})
    out = cli("fetch", "--owner", "alice", "--out", str(tmp_path / "res"))
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == [JOB]  # not bob's job-10, nothing for job-new
    root = tmp_path / "res" / JOB
    assert {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} == set(expected)
    assert "job 'job-new' (OPEN) has no results" in out.stdout and "skipped" in out.stdout


@pytest.mark.parametrize("args", [(), (JOB, "--owner", "alice")])
def test_fetch_needs_jobs_or_an_owner_not_both(world: CliWorld, tmp_path: Path, args: tuple[str, ...]) -> None:
    out = cli("fetch", *args, "--out", str(tmp_path))
    assert out.exit_code == 2, out.output
    assert "--owner NAME" in one_line_error(out)


def test_fetch_for_an_owner_without_jobs_is_one_line_exit_2(world: CliWorld, tmp_path: Path) -> None:
    out = cli("fetch", "--owner", "carol", "--out", str(tmp_path))
    assert out.exit_code == 2, out.output
    assert "owner 'carol' has no jobs" in one_line_error(out)


# ---- down's warning ----


def test_jobs_with_results_lists_the_jobs_and_the_warning_names_a_few(world: CliWorld) -> None:
    assert transfer.jobs_with_results(world.s3, RESULTS) == []
    _plant_results(world)
    assert transfer.jobs_with_results(world.s3, RESULTS) == [JOB, "job-10"]
    line = transfer.loss_warning(RESULTS, ["a", "b", "c", "d"])
    assert "\n" not in line and "lost" in line
    assert "`datacarousel fetch a`, `datacarousel fetch b`, `datacarousel fetch c`, …" in line
    assert "fetch d" not in line


def test_down_warns_in_one_line_before_stopping(
    world: CliWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _plant_results(world)
    service = environment.ServiceStatus(
        name=moto_server.NAME, running=True, pid=1, pids=(1,), endpoint="", log_file=str(tmp_path / "log")
    )
    current = environment.LocalEnvironment(
        state_dir=tmp_path,
        env={Env.RESULTS_BUCKET: RESULTS, Env.AWS_ENDPOINT_URL: "http://127.0.0.1:1"},
        services=[service],
        started=False,
    )
    monkeypatch.setattr(environment, "status", lambda state_dir: current)
    monkeypatch.setattr(transfer, "environment_s3", lambda env: world.s3)  # moto in-process, not on a port
    stopped: list[Path] = []

    def down(state_dir: Path) -> list[str]:
        stopped.append(state_dir)
        return ["moto"]

    monkeypatch.setattr(environment, "down", down)
    out = cli("down", "--state-dir", str(tmp_path))
    assert out.exit_code == 0, out.output
    warning = out.stderr.strip()
    assert warning.startswith("warning: ") and "\n" not in warning
    assert f"`datacarousel fetch {JOB}`, `datacarousel fetch job-10`" in warning
    assert out.stdout.strip() == "stopped: moto" and stopped


def test_down_says_nothing_when_moto_does_not_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = environment.ServiceStatus(
        name=moto_server.NAME, running=True, pid=1, pids=(1,), endpoint="", log_file=str(tmp_path / "log")
    )
    current = environment.LocalEnvironment(
        state_dir=tmp_path,
        env={
            Env.RESULTS_BUCKET: RESULTS,
            Env.AWS_ENDPOINT_URL: "http://127.0.0.1:9",  # discard port: refused at once
            Env.AWS_ACCESS_KEY_ID: "x",
            Env.AWS_SECRET_ACCESS_KEY: "x",
            Env.AWS_REGION: "us-west-2",
        },
        services=[service],
        started=False,
    )
    monkeypatch.setattr(environment, "status", lambda state_dir: current)
    monkeypatch.setattr(environment, "down", lambda state_dir: [])
    out = cli("down", "--state-dir", str(tmp_path))
    assert out.exit_code == 0, out.output
    assert not out.stderr and out.stdout.strip() == "nothing was running"
