"""Domain publication: a relink that fails midway leaves the published domain intact and identical.

When a file is indexed again (a new object version) and linking fails part way, readers of the
published domain still see the previous complete domain, identical: same root and objects, same
chunk references (layouts), same attributes and completion marker; a retry then completes.

- `test_a_relink_failing_midway_leaves_the_published_domain_identical`: the issue's scenario, through
  index_file's handler on a synthetic orbit (~560 datasets) in the stack's archive bucket: the loop of
  `hsds.link_file` fails after N datasets were written (N = 1, then about half), for readers during and
  after the failure nothing changed (nor in the files table), then the retry indexes the new version.
- `test_a_relink_failing_at_any_step_of_the_publication`: a failure at each HSDS request of the
  publication (`hsds._publish`), on a small file: up to the swap the old domain is intact and identical
  (values too); past it the new domain is complete. Never a broken or (HSDS answering) missing domain;
  a retry completes, and sweeping the staging folder afterwards never touches the published domain.

Real HSDS and moto server (`local_env`). Orbit 63701 is this module's own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import h5pyd
import numpy as np
import pytest

from datacarousel import aws, hsds
from datacarousel.contract import FileAttr, FileState
from datacarousel.errors import TransientError
from datacarousel.files_table import FilesTable, serialize
from datacarousel.messages import IndexRequest
from datacarousel.naming import BasicFusionName, archive_key, hsds_domain
from index_file.adapters import HsdsTarget, IndexFileHandler, read_domain_root, write_marker
from index_file.core import Marker
from workbench.synthetic.generator import generate_orbit

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORBIT = 63701
PREFIX = "hsds-publication-test/"


class InjectedFailure(Exception):
    """The failure a test injects into linking."""


# --- what a reader sees ----------------------------------------------------------------------------


def _attrs(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in obj.attrs:
        value = np.asarray(obj.attrs[name])
        out[name] = (value.dtype.str, value.tolist())
    return out


def snapshot(domain: str, access: hsds.HsdsAccess) -> dict[str, Any]:
    """Every object of `domain` as a reader sees it: id, attributes and, for a dataset, shape, type and
    layout (a linked dataset's chunk references: file, offsets and sizes, or its chunk table)."""
    out: dict[str, Any] = {}
    with h5pyd.File(domain, "r", **access.h5pyd_kwargs()) as f:
        out["/"] = {"id": f.id.id, "attrs": _attrs(f)}

        def visit(name: str, obj: Any) -> None:
            entry: dict[str, Any] = {"id": obj.id.id, "attrs": _attrs(obj)}
            if isinstance(obj, h5pyd.Dataset):
                layout = json.dumps(obj.id.layout, sort_keys=True)
                entry.update(shape=obj.shape, dtype=obj.dtype.str, layout=layout)
            out[name] = entry

        f.visititems(visit)
    return out


def leftovers(domain: str, access: hsds.HsdsAccess) -> list[str]:
    """Names in `domain`'s staging folder that belong to links of `domain` (staging or backup names)."""
    suffix = "-" + domain.rsplit("/", 1)[1]
    try:
        with h5pyd.Folder(hsds.staging_folder(domain), **access.h5pyd_kwargs()) as listing:
            return sorted(name for name in listing if name.endswith(suffix))
    except OSError as exc:
        if exc.errno in (404, 410):
            return []
        raise


def copied_datasets(source: Path, limit: int = 8) -> list[str]:
    """Some datasets of `source` small enough to be copied into HSDS (not linked)."""
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.size <= 512 and obj.dtype.kind in "iufS" and len(found) < limit:
            found.append(name)

    with h5py.File(source, "r") as f:
        f.visititems(visit)
    return found


def datasets_equal(domain: str, source: Path, names: list[str], access: hsds.HsdsAccess) -> bool:
    with h5pyd.File(domain, "r", **access.h5pyd_kwargs()) as dst, h5py.File(source, "r") as src:
        return all(np.array_equal(dst[n][()], src[n][()]) for n in names)


# --- 1. the scenario, through index_file ---------------------------------------------------


@dataclass
class World:
    s3: Any
    files: FilesTable
    target: HsdsTarget
    bucket: str
    key: str
    name: BasicFusionName
    domain: str
    versions: dict[int, Path]

    def upload(self, version: int) -> str:
        """Put object `version` at the file's key; returns the index request for it."""
        self.s3.upload_file(str(self.versions[version]), self.bucket, self.key)
        head = self.s3.head_object(Bucket=self.bucket, Key=self.key)
        etag = head["ETag"].strip('"')
        return IndexRequest(bucket=self.bucket, key=self.key, size=head["ContentLength"], etag=etag).to_json()

    def raw_item(self) -> dict[str, Any] | None:
        key = {FileAttr.FILE_NAME: serialize(self.name.file_name)}
        return self.files.ddb.get_item(TableName=self.files.table, Key=key, ConsistentRead=True).get("Item")

    def handler(self) -> IndexFileHandler:
        return IndexFileHandler(self.s3, self.files, self.target, archive_bucket=self.bucket)

    def forget(self) -> None:
        self.files.ddb.delete_item(TableName=self.files.table, Key={FileAttr.FILE_NAME: {"S": self.name.file_name}})
        hsds.delete_domain(self.domain, self.target.access)
        self.s3.delete_object(Bucket=self.bucket, Key=self.key)


@pytest.fixture(scope="module")
def world(local_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    env = local_env.env
    out = tmp_path_factory.mktemp("publication")
    versions = {v: generate_orbit(ORBIT, out / f"v{v}", preset="tiny", seed=v) for v in (1, 2)}
    name = BasicFusionName.parse(versions[1].name)
    target = HsdsTarget(hsds.HsdsAccess.resolve(environ=env), env["DC_HSDS_FOLDER"])
    w = World(
        s3=aws.client("s3"),
        files=FilesTable(aws.client("dynamodb"), env["DC_FILES_TABLE"]),
        target=target,
        bucket=env["DC_ARCHIVE_BUCKET"],
        key=archive_key(name, PREFIX),
        name=name,
        domain=hsds_domain(target.folder, name),
        versions=versions,
    )
    w.forget()
    yield w
    w.forget()


def failing_after(datasets: int, at_failure: Callable[[], None]) -> Callable[[Any], None]:
    """A `hsds._fix_ref_maxshape` whose staging domain fails to create dataset `datasets + 1`: the
    loop of `link_file` has then written `datasets` datasets; `at_failure` runs just before."""
    fix = hsds._fix_ref_maxshape

    def fix_then_fail(fout: Any) -> None:
        fix(fout)
        create = fout.create_dataset
        made = 0

        def create_dataset(*args: Any, **kwargs: Any) -> Any:
            nonlocal made
            if made == datasets:
                at_failure()
                raise InjectedFailure(f"linking failed after {datasets} datasets")
            made += 1
            return create(*args, **kwargs)

        fout.create_dataset = create_dataset

    return fix_then_fail


def test_a_relink_failing_midway_leaves_the_published_domain_identical(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    access = world.target.access
    first = world.handler().handle(world.upload(1))
    assert first.linked and first.recorded
    published = snapshot(world.domain, access)
    marker = read_domain_root(world.target, world.domain).marker
    item = world.raw_item()
    assert marker is not None and item is not None
    datasets = marker.datasets
    assert datasets > 500 and len(published) > datasets  # the groups too

    request = world.upload(2)  # a new object version: the handler links again
    v2 = json.loads(request)["etag"]
    assert v2 != marker.etag
    for after in (1, datasets // 2):
        seen_during: list[tuple[str, Marker | None]] = []

        def look(seen: list[tuple[str, Marker | None]] = seen_during) -> None:  # a reader, mid-relink
            with h5pyd.File(world.domain, "r", **access.h5pyd_kwargs()) as f:
                seen.append((f.id.id, read_domain_root(world.target, world.domain).marker))

        monkeypatch.setattr(hsds, "_fix_ref_maxshape", failing_after(after, look))
        with pytest.raises(InjectedFailure):
            world.handler().handle(request)
        monkeypatch.undo()
        assert seen_during == [(published["/"]["id"], marker)], f"after {after}: readers mid-relink saw a change"
        assert snapshot(world.domain, access) == published, f"after {after} datasets: the domain changed"
        assert read_domain_root(world.target, world.domain).marker == marker
        assert world.raw_item() == item, "the files table changed"
        assert leftovers(world.domain, access) == [], "the failed link left its staging domain"

    retry = world.handler().handle(request)
    assert retry.linked and retry.recorded
    relinked = read_domain_root(world.target, world.domain).marker
    assert relinked is not None and relinked.etag == v2 and relinked.datasets == datasets
    with h5pyd.File(world.domain, "r", **access.h5pyd_kwargs()) as f:
        assert f.id.id != published["/"]["id"], "the retry published a new root"
    small = copied_datasets(world.versions[2])  # their values live in HSDS: the new version's now
    assert small and datasets_equal(world.domain, world.versions[2], small, access)
    recorded = world.files.get(world.name.file_name)
    assert recorded is not None and recorded[FileAttr.STATE] == FileState.INDEXED.value
    assert recorded[FileAttr.ETAG] == v2
    assert recorded[FileAttr.STATE_VERSION] == int(item[FileAttr.STATE_VERSION]["N"]) + 1
    assert leftovers(world.domain, access) == []


# --- 2. a failure at each HSDS request of the publication -------------------------------------------


def write_source(path: Path, seed: int) -> Path:
    """A small HDF5 file: linked datasets of each layout (chunked, chunk table, contiguous) and copied ones."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["version"] = np.int32(seed)
        misr = f.create_group("MISR/AN")
        misr.create_dataset(
            "Radiance",
            data=rng.integers(0, 16000, (4, 64, 96), dtype=np.uint16),
            chunks=(1, 64, 96),
            compression="gzip",
        )
        misr.create_dataset("Latitude", data=rng.uniform(-90, 90, (48, 40)).astype(np.float32), chunks=(8, 8))
        f.create_dataset("CERES/Time", data=np.cumsum(rng.random(1500)))
        f.create_dataset("MODIS/Zenith", data=rng.random((16, 32)).astype(np.float32))
        f.create_dataset("MISR/Path", data=np.int32(seed))
    return path


DATASETS = ["MISR/AN/Radiance", "MISR/AN/Latitude", "CERES/Time", "MODIS/Zenith", "MISR/Path"]


@dataclass(frozen=True)
class Step:
    """One request of the publication, recognised by method, whose name it is for, and its body."""

    method: str
    whose: str  # "domain", "staging" (the domain being built) or "backup" (the old root kept)
    does: str  # "flush", "link" (PUT linked_domain), "keep_root" (DELETE the name only), "delete"


STEPS: dict[str, Step] = {
    "flush the staging domain": Step("PUT", "staging", "flush"),
    "keep the old root": Step("PUT", "backup", "link"),
    "delete the old name": Step("DELETE", "domain", "keep_root"),
    "swap": Step("PUT", "domain", "link"),
    "drop the staging name": Step("DELETE", "staging", "keep_root"),
    "drop the old root": Step("DELETE", "backup", "delete"),
    "flush the published domain": Step("PUT", "domain", "flush"),
}


@dataclass(frozen=True)
class Failure:
    step: str
    answer_lost: bool = False  # the request is done, then fails (its answer never arrives)
    hsds_down: bool = False  # every request fails from this one on
    published: str = "old"  # what readers see after the failure: "old" (identical), "new", "none"
    left: tuple[str, ...] = ()  # names the failed link leaves in the staging folder: "staging", "backup"


FAILURES = [
    Failure("flush the staging domain"),
    Failure("keep the old root"),
    Failure("delete the old name"),
    Failure("swap"),
    # No HSDS to clean up: the staging domain and the backup (which names the published root) are left.
    Failure("delete the old name", hsds_down=True, left=("backup", "staging")),
    Failure("swap", answer_lost=True, published="new"),
    # The staging name shares the published root: the retry (index_file's redelivery) must come before
    # a sweep, and does (a sweep only takes names an hour old); after it, the name is one without a root.
    Failure("drop the staging name", published="new", left=("backup", "staging")),
    Failure("drop the old root", published="new", left=("backup",)),
    Failure("flush the published domain", published="new"),
    # The old name is gone and no HSDS answers to put it back: missing until the retry links again.
    Failure("swap", hsds_down=True, published="none", left=("backup", "staging")),
]


def _step_of(domain: str, method: str, name: str, body: Any, params: Any) -> Step | None:
    if name == domain:
        whose = "domain"
    elif name.startswith(hsds.staging_folder(domain)):
        whose = "backup" if hsds._is_backup(name) else "staging"
    else:
        return None
    if isinstance(body, dict) and body.get("flush"):
        does = "flush"
    elif isinstance(body, dict) and "linked_domain" in body:
        does = "link"
    elif method == "DELETE":
        does = "keep_root" if params and params.get("keep_root") else "delete"
    else:
        return None
    return Step(method, whose, does)


def inject(monkeypatch: pytest.MonkeyPatch, domain: str, failure: Failure) -> list[str]:
    """Make `failure` happen in `hsds._Rest.request` (every HSDS request of link_file's publication);
    returns the list of failures that happened (one, if the publication reached the step)."""
    request = hsds._Rest.request
    target = STEPS[failure.step]
    happened: list[str] = []
    down = False

    def failing(self: Any, method: str, name: str, *, body: Any = None, params: Any = None) -> Any:
        nonlocal down
        if down:
            raise TransientError(f"injected: HSDS down ({method} {name})")
        hit = not happened and _step_of(domain, method, name, body, params) == target
        if not hit:
            return request(self, method, name, body=body, params=params)
        happened.append(failure.step)
        down = failure.hsds_down
        if failure.answer_lost:
            request(self, method, name, body=body, params=params)
        raise TransientError(f"injected: {failure.step} ({method} {name})")

    monkeypatch.setattr(hsds._Rest, "request", failing)
    return happened


@pytest.fixture()
def folder(local_env: Any) -> str:
    path = f"{local_env.env['DC_HSDS_FOLDER']}publication-{uuid.uuid4().hex[:10]}/"
    hsds.ensure_folder(path)
    return path


@pytest.mark.parametrize(
    "failure",
    FAILURES,
    ids=[
        f.step + (", answer lost" if f.answer_lost else "") + (", HSDS down" if f.hsds_down else "") for f in FAILURES
    ],
)
def test_a_relink_failing_at_any_step_of_the_publication(
    local_env: Any, folder: str, failure: Failure, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = local_env.hsds_root / local_env.hsds_bucket / "sources" / f"publication-{uuid.uuid4().hex[:8]}"
    v1, v2 = write_source(sources / "v1.h5", 1), write_source(sources / "v2.h5", 2)
    access = hsds.HsdsAccess.resolve(environ=local_env.env)
    target = HsdsTarget(access, folder)
    domain = f"{folder}relinked.h5"
    root = local_env.hsds_root
    hsds.link_file(v1, domain, posix_root=root)
    marker = Marker(str(v1), "etag-1", v1.stat().st_size, len(DATASETS), "2026-01-01T00:00:00Z")
    write_marker(target, domain, marker)
    published = snapshot(domain, access)

    done = inject(monkeypatch, domain, failure)
    with pytest.raises(TransientError, match="injected"):
        hsds.link_file(v2, domain, posix_root=root)
    monkeypatch.undo()
    assert done == [failure.step], f"the injected failure did not happen: {done}"

    if failure.published == "old":
        assert snapshot(domain, access) == published, "the published domain changed"
        assert read_domain_root(target, domain).marker == marker
        assert datasets_equal(domain, v1, DATASETS, access), "the old domain reads differently"
    elif failure.published == "new":  # past the swap: the new domain, complete and readable
        assert snapshot(domain, access)["/"]["id"] != published["/"]["id"]
        assert datasets_equal(domain, v2, DATASETS, access)
        assert read_domain_root(target, domain).marker is None, "its marker is index_file's to write"
    else:
        assert not hsds.domain_exists(domain, access)
    left = leftovers(domain, access)
    assert sorted("backup" if n.startswith(hsds.BACKUP_PREFIX) else "staging" for n in left) == sorted(failure.left)

    retried = False
    if failure.step == "drop the staging name":  # see FAILURES: the retry comes first
        hsds.link_file(v2, domain, posix_root=root)
        retried = True
    # Sweeping every leftover now (as a later link does after an hour) never touches the published domain.
    before_sweep = snapshot(domain, access) if hsds.domain_exists(domain, access) else None
    hsds.sweep_staging(domain, older_than_s=0)
    assert leftovers(domain, access) == []
    if before_sweep is not None:
        assert snapshot(domain, access) == before_sweep, "the sweep changed the published domain"
        assert datasets_equal(domain, v1 if failure.published == "old" and not retried else v2, DATASETS, access)

    hsds.link_file(v2, domain, posix_root=root)  # the retry (again)
    assert datasets_equal(domain, v2, DATASETS, access)
    assert leftovers(domain, access) == []
