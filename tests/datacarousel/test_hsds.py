"""`datacarousel.hsds` against the real HSDS server (and moto S3) of the embedded environment.

The central property: a domain made by `link_file` reads back identical to its
source HDF5 file (values, dtypes, shapes, attributes), for every kind of dataset
BasicFusion holds, whether the source is a POSIX file under the HSDS root or an
`s3://` object in moto, while the large datasets really stay in the source.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import multiprocessing
import os
import posixpath
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import h5pyd
import numpy as np
import pytest
import s3fs

from datacarousel import aws, hsds, link_source, s3files
from datacarousel.errors import BadInput, ConfigError, NotReadable
from workbench.synthetic.generator import generate_orbit

pytestmark = pytest.mark.integration

SEED = 20070703
LINKED_LAYOUTS = {"H5D_CHUNKED_REF", "H5D_CHUNKED_REF_INDIRECT", "H5D_CONTIGUOUS_REF"}


def write_sample(path: Path) -> Path:
    """A small HDF5 file with every dataset kind the archive has (fixed seed)."""
    rng = np.random.default_rng(SEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "synthetic BasicFusion-like file"
        f.attrs["orbit"] = np.int32(40110)
        f.attrs["bounds"] = np.array([-90.0, 90.0, -180.0, 180.0])
        misr = f.create_group("MISR/AN/Data_Fields")
        misr.attrs["Resolution"] = b"275m"
        # chunked + gzip + shuffle, a handful of chunks (H5D_CHUNKED_REF)
        rad = misr.create_dataset(
            "Red_Radiance",
            data=rng.integers(0, 16000, (4, 64, 96), dtype=np.uint16),
            chunks=(1, 64, 96),
            compression="gzip",
            compression_opts=1,
            shuffle=True,
        )
        rad.attrs["units"] = "W m-2 sr-1 um-1"
        rad.attrs["_FillValue"] = np.uint16(65535)
        rad.attrs["scale_factor"] = np.float32(0.047)
        # chunked + gzip, many chunks (H5D_CHUNKED_REF_INDIRECT: a chunk table)
        misr.create_dataset(
            "Latitude", data=rng.uniform(-90, 90, (48, 40)).astype(np.float32), chunks=(8, 8), compression="gzip"
        )
        # contiguous (H5D_CONTIGUOUS_REF)
        f.create_dataset("CERES/FM1/Time_of_observation", data=np.cumsum(rng.random(1500)).astype(np.float64))
        # small (<= 512 elements: copied into HSDS)
        f.create_dataset("MODIS/granule_1/SensorZenith", data=rng.random((16, 32)).astype(np.float32))
        # fixed-length strings: MISR BlockCenterTime is 180 x S28 (small), and a long one (linked)
        times = [
            f"2007-07-03T16:{m % 60:02d}:{s % 60:02d}.123456Z" for m, s in zip(range(180), range(7, 187), strict=True)
        ]
        f.create_dataset("MISR/BlockCenterTime", data=np.array([t.encode() for t in times], dtype="S28"))
        long_times = np.array([f"2007-07-03T17:{i % 60:02d}:00.000000Z".encode() for i in range(700)], dtype="S28")
        f.create_dataset("MISR/LongBlockCenterTime", data=long_times)
        # scalars
        f.create_dataset("MISR/Path", data=np.int32(22))
        f.create_dataset("MISR/SunDistance", data=np.float64(1.0167))
        f.create_dataset("MISR/Version", data=np.bytes_(b"F03_0024"))
    return path


def _attrs(obj: Any) -> dict[str, Any]:
    return {name: obj.attrs[name] for name in obj.attrs}


def _same_value(a: Any, b: Any) -> bool:
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.dtype.kind == "f" or b_arr.dtype.kind == "f":
        return a_arr.shape == b_arr.shape and bool(np.array_equal(a_arr, b_arr, equal_nan=True))
    return a_arr.shape == b_arr.shape and bool(np.array_equal(a_arr, b_arr))


def assert_identical(domain: str, source: Path) -> list[str]:
    """Every group, dataset and attribute of `source` is in `domain` with the same value; returns dataset names."""
    datasets: list[str] = []
    with h5py.File(source, "r") as src, h5pyd.File(domain, "r") as dst:
        assert sorted(_attrs(src)) == sorted(_attrs(dst))
        for key, value in _attrs(src).items():
            assert _same_value(value, dst.attrs[key]), f"root attribute {key}"

        def visit(name: str, obj: Any) -> None:
            assert name in dst, f"{name} missing from {domain}"
            other = dst[name]
            assert sorted(_attrs(obj)) == sorted(_attrs(other)), name
            for key, value in _attrs(obj).items():
                assert _same_value(value, other.attrs[key]), f"{name} attribute {key}"
                assert np.asarray(value).dtype == np.asarray(other.attrs[key]).dtype, f"{name} attribute {key} dtype"
            if isinstance(obj, h5py.Dataset):
                datasets.append(name)
                assert other.shape == obj.shape, name
                assert other.dtype == obj.dtype, name
                assert _same_value(obj[()], other[()]), f"{name} values differ"

        src.visititems(visit)
    return datasets


def _layout(domain: str, name: str) -> dict[str, Any]:
    with h5pyd.File(domain, "r") as f:
        return dict(f[name].id.layout)


@pytest.fixture()
def folder(local_env: Any) -> Iterator[str]:
    """A fresh HSDS folder for one test, under the environment's DC_HSDS_FOLDER."""
    path = f"{local_env.env['DC_HSDS_FOLDER']}test-{uuid.uuid4().hex[:12]}/"
    hsds.ensure_folder(path)
    yield path


@pytest.fixture()
def posix_sample(local_env: Any) -> Path:
    """The sample file placed under the HSDS root (in the server's bucket directory)."""
    name = f"sample-{uuid.uuid4().hex[:8]}.h5"
    return write_sample(local_env.hsds_root / local_env.hsds_bucket / "sources" / name)


@pytest.fixture()
def s3_sample(local_env: Any, tmp_path: Path) -> tuple[str, Path]:
    """The sample file uploaded to a bucket in moto; returns (s3 URI, local copy)."""
    s3 = aws.client("s3")
    bucket = f"dc-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": local_env.env["AWS_DEFAULT_REGION"]}
    )
    path = write_sample(tmp_path / "sample.h5")
    key = "P22/TERRA_BF_L1B_O40110_20070703160915_F000_V001.h5"
    s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}", path


def _storage_has_objects(local_env: Any, domain: str) -> None:
    """Every group and dataset of the domain is already on disk (durable), not only in server memory.

    HSDS POSIX layout: the root group `g-<a>-<b>-...` is `db/<a>-<b>/.group.json`; any other
    object `<k>-<a>-<b>-<c>-<d>-<e>` is `db/<a>-<b>/<k>/<c>-<d>-<e>/.group.json|.dataset.json`.
    """
    storage = local_env.hsds_root / local_env.hsds_bucket / "db"
    with h5pyd.File(domain, "r") as f:
        root_id = f.id.id
        others: list[str] = []
        f.visititems(lambda _name, obj: others.append(obj.id.id))
    root_parts = root_id.split("-")
    assert (storage / "-".join(root_parts[1:3]) / ".group.json").exists(), f"root of {domain} not in storage"
    for obj_id in others:
        kind, *parts = obj_id.split("-")
        suffix = ".group.json" if kind == "g" else ".dataset.json"
        path = storage / "-".join(parts[:2]) / kind / "-".join(parts[2:]) / suffix
        assert path.exists(), f"{obj_id} of {domain} is not in storage yet"


def test_link_posix_file_reads_back_identical(
    local_env: Any, folder: str, posix_sample: Path, caplog: pytest.LogCaptureFixture
) -> None:
    domain = f"{folder}posix.h5"
    with caplog.at_level(logging.INFO):
        result = hsds.link_file(posix_sample, domain, posix_root=local_env.hsds_root)
    # One log line for the unit of work; none of h5pyd's per-dataset chatter.
    assert [r.message for r in caplog.records if r.name == "datacarousel.hsds" and "linked" in r.message] == [
        f"linked {posix_sample} -> {domain}: 9 datasets (4 linked, 5 copied) in {result.seconds:.2f} s"
    ]
    chatter = [
        r for r in caplog.records if r.levelno < logging.WARNING and ("h5pyd" in r.pathname or "h5json" in r.pathname)
    ]
    assert chatter == []

    names = assert_identical(domain, posix_sample)
    assert result.datasets == len(names) == 9
    assert hsds.domain_exists(domain)
    # The large datasets really stay in the source file: their layouts point at it.
    expected_uri = posix_sample.relative_to(local_env.hsds_root).as_posix()
    for name, layout in {
        "MISR/AN/Data_Fields/Red_Radiance": "H5D_CHUNKED_REF",
        "MISR/AN/Data_Fields/Latitude": "H5D_CHUNKED_REF_INDIRECT",
        "CERES/FM1/Time_of_observation": "H5D_CONTIGUOUS_REF",
        "MISR/LongBlockCenterTime": "H5D_CONTIGUOUS_REF",
    }.items():
        got = _layout(domain, name)
        assert got["class"] == layout, name
        assert got["file_uri"] == expected_uri, name
    assert _layout(domain, "MISR/BlockCenterTime")["class"] not in LINKED_LAYOUTS  # small: copied
    assert result.linked == 4 and result.copied == 5
    _storage_has_objects(local_env, domain)


def test_link_s3_object_reads_back_identical(local_env: Any, folder: str, s3_sample: tuple[str, Path]) -> None:
    uri, local_copy = s3_sample
    domain = f"{folder}s3.h5"
    result = hsds.link_file(uri, domain)

    assert result.file_uri == uri
    assert len(assert_identical(domain, local_copy)) == 9
    assert _layout(domain, "MISR/AN/Data_Fields/Red_Radiance")["file_uri"] == uri
    assert _layout(domain, "MISR/AN/Data_Fields/Latitude")["class"] == "H5D_CHUNKED_REF_INDIRECT"
    _storage_has_objects(local_env, domain)


def test_linked_s3_domain_reads_from_the_object(local_env: Any, folder: str, s3_sample: tuple[str, Path]) -> None:
    """HSDS fetches linked bytes from the S3 object at read time (nothing was copied at link time)."""
    uri, local_copy = s3_sample
    domain = f"{folder}live.h5"
    hsds.link_file(uri, domain)
    name = "CERES/FM1/Time_of_observation"  # contiguous: rewriting values keeps the byte offset
    with h5py.File(local_copy, "r+") as f:
        f[name][...] = -f[name][...]
        changed = f[name][()]
    bucket, key = uri[len("s3://") :].split("/", 1)
    aws.client("s3").upload_file(str(local_copy), bucket, key)
    with h5pyd.File(domain, "r") as f:
        assert np.array_equal(f[name][()], changed)


def test_missing_object_reads_as_fill_values(local_env: Any, folder: str, s3_sample: tuple[str, Path]) -> None:
    """HSDS hazard (hsds 1.0.2): once a linked object is gone (e.g. its restore expired), linked datasets
    read as fill values without any error. The carousel must drop a domain before its object goes."""
    uri, local_copy = s3_sample
    domain = f"{folder}gone.h5"
    hsds.link_file(uri, domain)
    bucket, key = uri[len("s3://") :].split("/", 1)
    aws.client("s3").delete_object(Bucket=bucket, Key=key)
    with h5pyd.File(domain, "r") as f, h5py.File(local_copy, "r") as src:
        name = "MISR/AN/Data_Fields/Latitude"
        assert not np.array_equal(f[name][()], src[name][()])
        assert not f[name][()].any()
        assert np.array_equal(f["MISR/BlockCenterTime"][()], src["MISR/BlockCenterTime"][()])  # copied: intact


def test_relink_replaces_domain_and_leaves_no_staging(local_env: Any, folder: str, posix_sample: Path) -> None:
    domain = f"{folder}twice-{uuid.uuid4().hex[:8]}.h5"
    hsds.link_file(posix_sample, domain, posix_root=local_env.hsds_root)
    hsds.link_file(posix_sample, domain, posix_root=local_env.hsds_root)  # redelivery: same result
    assert_identical(domain, posix_sample)
    assert _staging_of(domain) == []


def _staging_of(domain: str) -> list[str]:
    """The staging domains of `domain`'s links (the folder is the user's: other tests' links may be in it)."""
    with h5pyd.Folder(hsds.staging_folder(domain)) as listing:
        return [name for name in listing if name.endswith(f"-{posixpath.basename(domain)}")]


def test_a_later_link_sweeps_staging_left_by_a_killed_link(local_env: Any, folder: str, posix_sample: Path) -> None:
    """A link killed between "create staging" and "publish" leaves a staging domain; it stays while it
    could still be a live link elsewhere (younger than the sweep age) and goes with the next link after."""
    domain = f"{folder}swept-{uuid.uuid4().hex[:8]}.h5"
    leftover = f"{hsds.staging_folder(domain)}{uuid.uuid4().hex}-{posixpath.basename(domain)}"
    hsds.ensure_folder(hsds.staging_folder(domain))
    with h5pyd.File(leftover, "w") as f:
        f.create_group("half-built")
    assert hsds.sweep_staging(domain) == []  # young: may be a live link in another worker
    assert hsds.domain_exists(leftover)
    time.sleep(1.1)
    hsds.link_file(posix_sample, domain, posix_root=local_env.hsds_root, sweep_after_s=1.0)
    assert not hsds.domain_exists(leftover)
    assert_identical(domain, posix_sample)
    assert _staging_of(domain) == []


def test_bad_sources_are_bad_input_and_leave_no_domain(local_env: Any, folder: str, tmp_path: Path) -> None:
    not_hdf5 = local_env.hsds_root / local_env.hsds_bucket / "sources" / f"junk-{uuid.uuid4().hex[:6]}.h5"
    not_hdf5.parent.mkdir(parents=True, exist_ok=True)
    not_hdf5.write_bytes(b"this is not HDF5" * 100)
    with pytest.raises(BadInput, match="not a readable HDF5 file"):
        hsds.link_file(not_hdf5, f"{folder}junk.h5", posix_root=local_env.hsds_root)
    outside = write_sample(tmp_path / "outside.h5")
    with pytest.raises(BadInput, match="not under the HSDS root"):
        hsds.link_file(outside, f"{folder}outside.h5", posix_root=local_env.hsds_root)
    with pytest.raises(BadInput, match="does not exist"):
        hsds.link_file("s3://no-such-bucket-dc/none.h5", f"{folder}missing.h5")
    for name in ("junk.h5", "outside.h5", "missing.h5"):
        assert not hsds.domain_exists(f"{folder}{name}")


def test_archived_object_is_not_readable(local_env: Any, folder: str, tmp_path: Path) -> None:
    s3 = aws.client("s3")
    bucket = f"dc-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": local_env.env["AWS_DEFAULT_REGION"]}
    )
    path = write_sample(tmp_path / "archived.h5")
    s3.put_object(Bucket=bucket, Key="a.h5", Body=path.read_bytes(), StorageClass="DEEP_ARCHIVE")
    with pytest.raises(NotReadable):
        hsds.link_file(f"s3://{bucket}/a.h5", f"{folder}archived.h5")
    assert not hsds.domain_exists(f"{folder}archived.h5")


def test_domain_helpers_are_idempotent(local_env: Any, folder: str, posix_sample: Path) -> None:
    domain = f"{folder}sub/dir/d.h5"
    assert not hsds.domain_exists(domain)
    assert not hsds.delete_domain(domain)
    hsds.link_file(posix_sample, domain, posix_root=local_env.hsds_root)  # creates the missing folders
    assert hsds.folder_exists(f"{folder}sub/dir/")
    assert hsds.domain_exists(domain)
    assert not hsds.domain_exists(f"{folder}sub/dir")  # a folder is not a domain
    hsds.flush_domain(domain)
    assert hsds.delete_domain(domain)
    assert not hsds.domain_exists(domain)
    assert not hsds.delete_domain(domain)
    hsds.ensure_folder(f"{folder}sub/dir/")  # exists already: no error


def _link_in_worker(source: str, domain: str, root: str) -> tuple[str, int]:
    result = hsds.link_file(source, domain, posix_root=root)
    return result.domain, result.datasets


def test_link_file_runs_in_worker_processes(local_env: Any, folder: str, posix_sample: Path) -> None:
    """Worker processes (spawned: a fresh interpreter) import and call it with the environment's variables."""
    ctx = multiprocessing.get_context("spawn")
    domains = [f"{folder}worker-{i}.h5" for i in range(2)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        futures = [pool.submit(_link_in_worker, str(posix_sample), d, str(local_env.hsds_root)) for d in domains]
        results = [f.result(timeout=120) for f in futures]
    assert sorted(results) == [(d, 9) for d in domains]
    for domain in domains:
        assert_identical(domain, posix_sample)


def test_missing_credentials_are_a_config_error(local_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HS_PASSWORD")
    monkeypatch.delenv("HS_ENDPOINT")
    with pytest.raises(ConfigError, match="HS_ENDPOINT, HS_PASSWORD"):
        hsds.domain_exists("/home/x/y.h5")
    assert os.environ.get("HS_USERNAME")


def test_h5pyd_does_not_silence_the_program_logs(local_env: Any, folder: str) -> None:
    """h5pyd 1.0.0 sets the root logger to ERROR when a File opens; importing datacarousel.hsds undoes it."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.INFO)
    try:
        with h5pyd.File(f"{folder}levels.h5", "w") as f:
            f.attrs["a"] = 1
        assert root.level == logging.INFO
        assert logging.getLogger("datacarousel.anything").isEnabledFor(logging.INFO)
    finally:
        root.setLevel(previous)


def test_wrong_password_is_refused(local_env: Any) -> None:
    wrong = dataclasses.replace(hsds.HsdsAccess.resolve(), password="wrong-password")
    with pytest.raises(hsds.HsdsAuthError) as info:
        hsds.domain_exists(f"{local_env.env['DC_HSDS_FOLDER']}x.h5", wrong)
    assert info.value.status in (401, 403)


def test_the_access_passed_in_is_used_not_the_environment(
    local_env: Any, folder: str, posix_sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access = hsds.HsdsAccess.resolve()
    monkeypatch.setenv("HS_PASSWORD", "wrong-password")
    domain = f"{folder}explicit.h5"
    hsds.link_file(posix_sample, domain, access, posix_root=local_env.hsds_root)
    assert hsds.domain_exists(domain, access)
    with pytest.raises(hsds.HsdsAuthError):
        hsds.domain_exists(domain)  # None: the environment's (now wrong) identity


def test_access_is_one_value() -> None:
    env = {"HS_ENDPOINT": "http://hsds:5101", "HS_USERNAME": "u", "HS_PASSWORD": "secret-pw"}
    access = hsds.HsdsAccess.resolve(environ=env)
    assert access == hsds.HsdsAccess("http://hsds:5101", "u", "secret-pw")
    assert hsds.HsdsAccess.resolve(username="other", environ=env).username == "other"
    assert hsds.HsdsAccess.given(access) is access
    assert access.h5pyd_kwargs() == {
        "endpoint": "http://hsds:5101",
        "username": "u",
        "password": "secret-pw",
        "bucket": None,
    }
    assert "secret-pw" not in repr(access)


@pytest.mark.slow
def test_link_a_synthetic_orbit_from_s3(local_env: Any, folder: str, tmp_path: Path) -> None:
    """The real BasicFusion layout (tiny preset, ~540 datasets): every object is there with its shape
    and dtype; the largest datasets, the strings and the scalars read back identical."""
    path = generate_orbit(40110, tmp_path, preset="tiny", seed=SEED)
    bucket = local_env.env["DC_ARCHIVE_BUCKET"]
    key = f"test-{uuid.uuid4().hex[:8]}/{path.name}"
    aws.client("s3").upload_file(str(path), bucket, key)
    domain = f"{folder}{path.name}"
    result = hsds.link_file(f"s3://{bucket}/{key}", domain)

    def shapes(f: Any, kind: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        f.visititems(lambda n, o: found.__setitem__(n, (o.shape, o.dtype) if isinstance(o, kind) else None))
        return found

    with h5py.File(path, "r") as src, h5pyd.File(domain, "r") as dst:
        want = shapes(src, h5py.Dataset)
        assert shapes(dst, h5pyd.Dataset) == want
        datasets = {n: v for n, v in want.items() if v is not None}
        assert result.datasets == len(datasets) > 100
        assert result.linked > 100
        largest = sorted(datasets, key=lambda n: -int(np.prod(datasets[n][0])))[:6]
        strings = [n for n, (_, dtype) in datasets.items() if dtype.kind == "S"][:4]
        scalars = [n for n, (shape, _) in datasets.items() if shape == ()][:4]
        for name in {*largest, *strings, *scalars}:
            assert _same_value(src[name][()], dst[name][()]), name
            assert sorted(_attrs(src[name])) == sorted(_attrs(dst[name])), name


class StalledEndpoint:
    """A TCP server on loopback that accepts connections and reads requests but never answers:
    an S3 endpoint that hangs mid-read."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.accepted = 0
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            self._held.append(conn)  # held open, never answered

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self.server.close()


def test_a_stalled_s3_read_fails_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    """link_file's S3 reads have a read timeout: an endpoint that never answers ends in a
    TransientError (the message goes back to the queue), not in a worker stuck for hours."""
    stalled = StalledEndpoint()
    monkeypatch.setenv("AWS_ENDPOINT_URL", stalled.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(s3files, "S3_READ_TIMEOUT_S", 0.5)
    # one attempt each for botocore and s3fs (5 each by default: ~40 s of retries of a read that cannot succeed)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setattr(s3fs.S3FileSystem, "retries", 1)
    outcome: list[BaseException | None] = []

    def open_it() -> None:
        try:
            with link_source.open_source("s3://archive/P022/TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5", None):
                outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=open_it, daemon=True)
    worker.start()
    worker.join(timeout=300)  # a guard against a hang, not a timing goal
    try:
        assert not worker.is_alive(), "the read hung: no read timeout"
        assert stalled.accepted >= 1, "the request never reached the endpoint"
        assert len(outcome) == 1 and isinstance(outcome[0], hsds.TransientError), outcome
    finally:
        stalled.close()
