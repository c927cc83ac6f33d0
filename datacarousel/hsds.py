"""HSDS adapter: index an HDF5 file into HSDS in place (`hsload --link`), and manage domains and folders.

Everything here is a plain function that takes where HSDS is and as whom to act there as one
value, `access: HsdsAccess` (None: from the HS_ENDPOINT / HS_USERNAME / HS_PASSWORD environment
variables; a program resolves it once, `HsdsAccess.resolve()`, and passes it in), opens its own
connections and closes them before returning. No connection or client is created at import time, so the
functions are safe to call from worker processes (including after `fork`/`spawn`).
Importing this module does fix two logging side effects of h5pyd for the whole
process (see `datacarousel.h5pyd_logging`): import it (or call that) in any program that uses h5pyd.

Linking (`link_file`) stores only metadata and chunk locations in HSDS: the data
bytes stay in the source (an `s3://bucket/key` object, or a file under the HSDS
server's POSIX root). It uses h5pyd's own loader (`h5pyd._apps.utillib.load_file`,
what `hsload --link` runs), with one fix: h5pyd 1.0.0 passes `maxshape` equal to
the shape for every dataset, and h5json 2.0.1 refuses any max dimensions on the
reference layouts (`H5D_CHUNKED_REF`, `H5D_CHUNKED_REF_INDIRECT`,
`H5D_CONTIGUOUS_REF`), so every dataset above 512 elements failed with
"Only datasets with 'H5D_CHUNKED' layout can be resizable". We drop the max
dimensions for those layouts (a linked dataset cannot be resized anyway).

A domain appears only when it is complete and durable: the file is loaded into a
private staging domain, the server is told to flush it, then the final domain is
created on the staging domain's root and the staging name is removed. A failure
leaves no half-indexed domain under the final name, so `domain_exists(domain)`
means "indexed", and re-running `link_file` after a crash is safe. A relink (the
domain exists) that fails at any step leaves the published domain as it was, or,
past the swap, the new one complete: never a broken one (see `_publish`).

Errors: `HsdsAuthError` (401/403: wrong credentials or no permission),
`datacarousel.errors.BadInput` (the source is not a readable HDF5 file, the object
does not exist, or a POSIX source lies outside the server root),
`datacarousel.errors.NotReadable` (the S3 object is archived and not restored),
`datacarousel.errors.TransientError` (HSDS or S3 unreachable / 5xx / 503: retry later).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import h5pyd
import numpy as np
import requests_unixsocket
from h5pyd._apps import utillib

from datacarousel.contract import Env
from datacarousel.errors import ConfigError, DataCarouselError, TransientError
from datacarousel.h5pyd_logging import fix_h5pyd_logging
from datacarousel.link_source import open_source

log = logging.getLogger(__name__)

# Layouts whose chunks live in the source file; h5json refuses max dimensions on them.
REF_LAYOUTS = frozenset({"H5D_CHUNKED_REF", "H5D_CHUNKED_REF_INDIRECT", "H5D_CONTIGUOUS_REF"})
STAGING_FOLDER_NAME = ".dc-staging"
# Name prefix, in the staging folder, of a published domain's old root kept while `_publish` swaps it.
BACKUP_PREFIX = "old-"
# A staging domain older than this belongs to a link that died (SIGKILL, lost node): a live link of
# a full orbit takes seconds, and index_file gives up on one long before an hour.
STAGING_SWEEP_AGE_S = 3600.0
_TIMEOUT_S = 60.0


class HsdsError(DataCarouselError):
    """HSDS answered with an unexpected status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HsdsAuthError(HsdsError):
    """HSDS refused the credentials (401) or the permission (403)."""


@dataclass(frozen=True)
class HsdsAccess:
    """Where HSDS is and who we are there: one identity, passed as one value (never rebuilt from
    os.environ on the way). An admin, e.g. for top-level folders, is another `HsdsAccess`."""

    endpoint: str
    username: str
    password: str = field(repr=False)
    bucket: str | None = None

    @classmethod
    def resolve(
        cls,
        endpoint: str | None = None,
        username: str | None = None,
        password: str | None = None,
        bucket: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> HsdsAccess:
        """Explicit values win; missing ones come from HS_ENDPOINT / HS_USERNAME / HS_PASSWORD."""
        env = os.environ if environ is None else environ
        values = {
            Env.HS_ENDPOINT: endpoint or env.get(Env.HS_ENDPOINT, ""),
            Env.HS_USERNAME: username or env.get(Env.HS_USERNAME, ""),
            Env.HS_PASSWORD: password or env.get(Env.HS_PASSWORD, ""),
        }
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise ConfigError(f"HSDS access needs {', '.join(missing)} (argument or environment variable)")
        return cls(values[Env.HS_ENDPOINT], values[Env.HS_USERNAME], values[Env.HS_PASSWORD], bucket)

    @classmethod
    def given(cls, access: HsdsAccess | None) -> HsdsAccess:
        """`access`, or (None) the one of the environment (`resolve()`)."""
        return cls.resolve() if access is None else access

    def h5pyd_kwargs(self) -> dict[str, Any]:
        """The keyword arguments that open `h5pyd.File` / `h5pyd.Folder` as this identity."""
        return {"endpoint": self.endpoint, "username": self.username, "password": self.password, "bucket": self.bucket}


@dataclass(frozen=True)
class LinkResult:
    """What `link_file` did."""

    domain: str
    source: str
    file_uri: str  # what the domain's layouts point at (`s3://b/k` or `<bucket>/<path>`)
    datasets: int
    linked: int  # datasets whose bytes stay in the source (above 512 elements)
    copied: int  # small, scalar and variable-length datasets, copied into HSDS
    seconds: float
    inspected: Any = None  # what `inspect` returned, given the open source (None without one)


# --- REST --------------------------------------------------------------------------


class _Rest:
    """A tiny HSDS REST client over http:// or http+unix:// (requests-unixsocket)."""

    def __init__(self, access: HsdsAccess) -> None:
        self.access = access
        self.session = requests_unixsocket.Session()
        self.session.auth = (access.username, access.password)

    def close(self) -> None:
        self.session.close()

    def request(
        self, method: str, domain: str, *, body: Any = None, params: Mapping[str, Any] | None = None, path: str = "/"
    ) -> Any:
        """`method` on the endpoint's `path` (the domain itself: "/"; its ACL of a user: "/acls/<user>")."""
        query: dict[str, Any] = {"domain": domain, **(params or {})}
        if self.access.bucket:
            query["bucket"] = self.access.bucket
        url = self.access.endpoint.rstrip("/") + path
        try:
            return self.session.request(method, url, params=query, json=body, timeout=_TIMEOUT_S)
        except Exception as exc:  # connection refused, socket missing, timeout
            raise TransientError(f"HSDS at {self.access.endpoint} is unreachable: {exc}") from exc

    def check(self, rsp: Any, what: str, ok: tuple[int, ...]) -> Any:
        if rsp.status_code in ok:
            return rsp
        text = f"{what}: HSDS answered {rsp.status_code} {rsp.reason}"
        if rsp.status_code in (401, 403):
            raise HsdsAuthError(f"{text} (user {self.access.username!r})", rsp.status_code)
        if rsp.status_code >= 500:
            raise TransientError(text)
        raise HsdsError(text, rsp.status_code)


@contextlib.contextmanager
def _rest(access: HsdsAccess | None) -> Iterator[_Rest]:
    client = _Rest(HsdsAccess.given(access))
    try:
        yield client
    finally:
        client.close()


def _get(client: _Rest, domain: str) -> dict[str, Any] | None:
    rsp = client.check(client.request("GET", domain), f"GET {domain}", (200, 404, 410))
    if rsp.status_code != 200:
        return None
    body = rsp.json()
    return body if isinstance(body, dict) else None


def _check_domain_name(domain: str) -> None:
    if not domain.startswith("/") or domain.endswith("/"):
        raise ValueError(f"an HSDS domain is an absolute path not ending in '/': {domain!r}")


def _check_folder_name(folder: str) -> None:
    if not folder.startswith("/") or not folder.endswith("/") or folder == "/":
        raise ValueError(f"an HSDS folder is an absolute path ending in '/': {folder!r}")


# --- public helpers ------------------------------------------------------------------


def domain_exists(domain: str, access: HsdsAccess | None = None) -> bool:
    """True when `domain` is an HSDS domain (a file, not a folder). Domains made by
    `link_file` exist only once complete."""
    _check_domain_name(domain)
    with _rest(access) as client:
        body = _get(client, domain)
    return bool(body and body.get("root"))


def folder_exists(folder: str, access: HsdsAccess | None = None) -> bool:
    """True when `folder` (ending in '/') is an HSDS folder."""
    _check_folder_name(folder)
    with _rest(access) as client:
        body = _get(client, folder.rstrip("/"))
    return body is not None and not body.get("root")


def delete_domain(domain: str, access: HsdsAccess | None = None) -> bool:
    """Delete a domain (its metadata; linked source bytes are untouched). Idempotent:
    returns False when there was nothing to delete."""
    _check_domain_name(domain)
    with _rest(access) as client:
        rsp = client.check(client.request("DELETE", domain), f"DELETE {domain}", (200, 404, 410))
    deleted = bool(rsp.status_code == 200)
    if deleted:
        log.info("deleted HSDS domain %s", domain)
    return deleted


def flush_domain(domain: str, access: HsdsAccess | None = None) -> None:
    """Make the server write every pending object of `domain` to storage before returning.
    (HSDS data nodes otherwise write lazily, a second or more after a change.)"""
    _check_domain_name(domain)
    with _rest(access) as client:
        client.check(client.request("PUT", domain, body={"flush": True}), f"flush {domain}", (200, 204))


def ensure_folder(folder: str, access: HsdsAccess | None = None, *, admin: HsdsAccess | None = None) -> None:
    """Create `folder` (absolute, ending in '/') and any missing parent, owned by `access`'s user.

    Top-level folders (e.g. `/home/`) can only be made by an admin: pass the admin's
    identity as `admin` for those (the embedded environment does, once, at `up`); it is
    also used where `access` may not create a folder. Idempotent.
    """
    _check_folder_name(folder)
    parts = [p for p in folder.strip("/").split("/") if p]
    with _rest(access) as client:
        owner = client.access.username
        admin_client = None if admin is None else _Rest(admin)
        try:
            for depth in range(1, len(parts) + 1):
                path = "/" + "/".join(parts[:depth]) + "/"
                _create_folder_level(client, admin_client, path, owner)
        finally:
            if admin_client is not None:
                admin_client.close()


def _create_folder_level(client: _Rest, admin: _Rest | None, path: str, owner: str) -> None:
    existing = _get(client, path.rstrip("/"))
    if existing is not None:
        if existing.get("root"):
            raise HsdsError(f"{path} is a domain, not a folder")
        return
    toplevel = path.count("/") == 2
    creator = admin if (toplevel and admin is not None) else client
    name = path.rstrip("/")
    rsp = creator.request("PUT", name, body={"folder": True, "owner": owner})
    if rsp.status_code == 403 and admin is not None and creator is client:
        creator = admin
        rsp = creator.request("PUT", name, body={"folder": True, "owner": owner})
    if rsp.status_code == 409:  # made meanwhile by another worker
        return
    creator.check(rsp, f"create folder {path}", (200, 201))
    log.info("created HSDS folder %s (owner %s)", path, owner)


def put_acl(domain: str, user: str, acl: Mapping[str, bool], access: HsdsAccess) -> None:
    """Set `user`'s ACL on a domain or folder (no trailing '/'), as `access` (the admin: only it may)."""
    with _rest(access) as client:
        rsp = client.request("PUT", domain, body=dict(acl), path=f"/acls/{user}")
        client.check(rsp, f"set the ACL of {user} on {domain}", (200, 201))


def staging_folder(domain: str) -> str:
    """Private folder for domains being built: `/<top>/<user>/.dc-staging/` for `/<top>/<user>/...`."""
    parts = [p for p in domain.split("/") if p]
    if len(parts) >= 3:
        return f"/{parts[0]}/{parts[1]}/{STAGING_FOLDER_NAME}/"
    return posixpath.dirname(domain).rstrip("/") + f"/{STAGING_FOLDER_NAME}/"


# --- linking -----------------------------------------------------------------------


def _fix_ref_maxshape(fout: Any) -> None:
    """Make `fout.create_dataset` drop max dimensions for the reference layouts (see module doc)."""
    create = fout.create_dataset

    def create_dataset(name: Any, *args: Any, **kwargs: Any) -> Any:
        chunks = kwargs.get("chunks")
        if isinstance(chunks, dict) and chunks.get("class") in REF_LAYOUTS and kwargs.get("maxshape") is not None:
            kwargs["maxshape"] = None
        return create(name, *args, **kwargs)

    fout.create_dataset = create_dataset


fix_h5pyd_logging()


def _count(fin: Any) -> tuple[int, int]:
    datasets = linked = 0

    def visit(_name: str, obj: Any) -> None:
        nonlocal datasets, linked
        if isinstance(obj, h5py.Dataset):
            datasets += 1
            shape = obj.shape
            if (
                shape
                and not utillib.is_vlen(obj.dtype)
                and not utillib.is_compact(obj)
                and int(np.prod(shape)) > utillib.MIN_DSET_ELEMENTS_FOR_LINKING
            ):
                linked += 1

    fin.visititems(visit)
    return datasets, linked


def link_file(
    source: str | Path,
    domain: str,
    access: HsdsAccess | None = None,
    *,
    posix_root: Path | str | None = None,
    retries: int = 3,
    sweep_after_s: float = STAGING_SWEEP_AGE_S,
    inspect: Callable[[h5py.File], Any] | None = None,
) -> LinkResult:
    """Index `source` into HSDS as `domain`, in place (the `hsload --link` of this project).

    source: `s3://bucket/key` (read with s3fs; AWS_ENDPOINT_URL and the standard AWS
        credentials apply, and the HSDS server reads the chunks from the same object), or a
        POSIX path of a file under the HSDS server's root directory `posix_root`
        (HSDS then reads `<bucket>/<path>` relative to that root).
    domain: absolute HSDS domain, e.g. `naming.hsds_domain(folder, name)`. Its parent folder is
        created if missing (the user must be allowed to create it). An existing domain of that
        name is replaced: the new one appears atomically, complete and flushed to storage.
    access: as whom (None: from the environment).
    sweep_after_s: once published, staging domains older than this in the same staging folder
        (left by links killed mid-way) are deleted; see `sweep_staging`.
    inspect: called with the open source (h5py) before it is linked; its result is the
        `LinkResult.inspected` (a caller that needs more of the file's metadata reads it without
        opening the file a second time).
    Returns a `LinkResult`. Raises `BadInput`, `NotReadable`, `TransientError`, `HsdsAuthError`
    (see the module docstring). Safe to call from several worker processes at once for
    different domains.
    """
    _check_domain_name(domain)
    access = HsdsAccess.given(access)
    started = time.monotonic()
    source_text = str(source)
    parent = posixpath.dirname(domain) + "/"
    staging = _scratch_name(domain)
    ensure_folder(parent, access)
    ensure_folder(staging_folder(domain), access)
    datasets, linked, file_uri, inspected = _load_staging(
        source_text, staging, f"link {source_text} into {domain}", access, posix_root=posix_root, retries=retries,
        inspect=inspect,
    )  # fmt: skip
    _publish(staging, domain, access)  # drops the staging name itself: past the swap its root is `domain`'s
    try:  # housekeeping: never fails a link that is already published
        sweep_staging(domain, access, older_than_s=sweep_after_s)
    except (DataCarouselError, OSError) as exc:
        log.warning("could not sweep the staging folder of %s: %s", domain, exc)
    result = LinkResult(
        domain=domain,
        source=source_text,
        file_uri=file_uri,
        datasets=datasets,
        linked=linked,
        copied=datasets - linked,
        seconds=time.monotonic() - started,
        inspected=inspected,
    )
    log.info(
        "linked %s -> %s: %d datasets (%d linked, %d copied) in %.2f s",
        source_text,
        domain,
        result.datasets,
        result.linked,
        result.copied,
        result.seconds,
    )
    return result


def _load_staging(
    source: str,
    staging: str,
    what: str,
    access: HsdsAccess,
    *,
    posix_root: Path | str | None,
    retries: int,
    inspect: Callable[[h5py.File], Any] | None = None,
) -> tuple[int, int, str, Any]:
    """Link `source` into the private domain `staging` and flush it (deleted again if either fails).
    Returns the source's datasets, how many of them are linked, the URI HSDS reads the chunks from, and
    what `inspect` returned."""
    with open_source(source, posix_root) as (fin, file_uri):
        datasets, linked = _count(fin)
        inspected = inspect(fin) if inspect is not None else None
        try:
            fout = h5pyd.File(staging, "w", retries=retries, **access.h5pyd_kwargs())
        except OSError as exc:
            _raise_for_io(exc, f"create staging domain {staging}")
        try:
            _fix_ref_maxshape(fout)
            utillib.load_file(fin, fout, dataload="link", s3path=file_uri)  # closes fin and fout
        except BaseException as exc:
            with contextlib.suppress(Exception):
                fout.close()
            with contextlib.suppress(Exception):
                delete_domain(staging, access)
            if isinstance(exc, OSError):
                _raise_for_io(exc, what)
            raise
    try:
        flush_domain(staging, access)
    except BaseException:
        with contextlib.suppress(Exception):
            delete_domain(staging, access)
        raise
    return datasets, linked, file_uri, inspected


def sweep_staging(
    domain: str, access: HsdsAccess | None = None, *, older_than_s: float = STAGING_SWEEP_AGE_S
) -> list[str]:
    """Delete the staging domains, next to `domain`'s, that were created more than `older_than_s`
    ago: what links killed between "create staging" and "publish" left behind. Returns them.

    Age, not name, decides: a younger one may be a link still running in another worker. A backup
    (`BACKUP_PREFIX`: an old root kept by `_publish`) loses its name only: its root may be a published
    domain's again (a swap put back, or a link killed mid-swap).
    """
    _check_domain_name(domain)
    access = HsdsAccess.given(access)
    folder = staging_folder(domain)
    cutoff = time.time() - older_than_s
    try:
        with h5pyd.Folder(folder, **access.h5pyd_kwargs()) as listing:
            entries = [(name, listing[name] or {}) for name in listing]
    except OSError as exc:
        if exc.errno in (404, 410):
            return []
        raise
    stale = [
        posixpath.join(folder, name)
        for name, entry in entries
        if entry.get("class") != "folder" and float(entry.get("created") or cutoff) < cutoff
    ]
    swept = [d for d in stale if not _is_backup(d) and delete_domain(d, access)]
    backups = [d for d in stale if _is_backup(d)]
    if backups:
        with _rest(access) as client:
            for name in backups:
                rsp = client.check(client.request("DELETE", name, params={"keep_root": 1}), name, (200, 404, 410))
                if rsp.status_code == 200:
                    swept.append(name)
    if swept:
        log.info("swept %d stale staging domains from %s", len(swept), folder)
    return swept


def _publish(staging: str, domain: str, access: HsdsAccess) -> None:
    """Give the staging domain's root to `domain` (replacing any old one) and drop the staging name.

    HSDS can neither rename a domain nor move one to another root: the old `domain` must be deleted
    before it is made again on the staging root. So its root is first kept under a backup name, and
    a failure before the new `domain` exists puts the old one back: a relink that fails leaves the
    published domain as it was (same root, objects, chunk references and marker), not missing. From
    the swap on, the staging root *is* `domain`'s: only its name is dropped (`keep_root`), never the
    root (deleting it, as the caller's cleanup once did, left `domain` answering 410 Gone); a failure
    after the swap leaves the new domain complete and is raised, so the caller links again.
    """
    client = _Rest(access)
    backup: str | None = None
    try:
        old = _get(client, domain)
        if old is not None and old.get("root"):
            backup = _scratch_name(domain, BACKUP_PREFIX)
            rsp = client.request("PUT", backup, body={"linked_domain": domain})
            client.check(rsp, f"keep the root of {domain} as {backup}", (200, 201))
            rsp = client.request("DELETE", domain, params={"keep_root": 1})
            client.check(rsp, f"replace {domain}", (200, 404, 410))
        elif old is not None:  # an (empty) folder of that name: deleted, as always
            client.check(client.request("DELETE", domain), f"replace {domain}", (200, 404, 410))
        client.check(client.request("PUT", domain, body={"linked_domain": staging}), f"publish {domain}", (200, 201))
    except BaseException:
        _undo_swap(client, staging, domain, backup)
        client.close()
        raise
    try:  # `domain` is on the staging root
        client.check(client.request("DELETE", staging, params={"keep_root": 1}), f"drop staging name {staging}", (200,))
        if backup is not None:  # the old root, used by no domain now
            client.check(client.request("DELETE", backup), f"drop the old root of {domain}", (200, 404, 410))
        client.check(client.request("PUT", domain, body={"flush": True}), f"flush {domain}", (200, 204))
    finally:
        client.close()


def _undo_swap(client: _Rest, staging: str, domain: str, backup: str | None) -> None:
    """A swap failed: the staging domain goes (root and all) and `domain` is put back on its old root,
    kept under `backup`. Best effort: the caller sees the swap's own error, and links again.

    Unless the swap did happen (HSDS did it but its answer was lost): then only the names go. If HSDS
    cannot even say, nothing is touched: the leftovers are names in the staging folder; the next link
    of `domain` replaces whatever `domain` is, and `sweep_staging` drops them later.
    """
    try:
        now, staged = _get(client, domain), _get(client, staging)
        swapped = bool(now and staged and now.get("root") and now.get("root") == staged.get("root"))
        if swapped:
            client.check(client.request("DELETE", staging, params={"keep_root": 1}), staging, (200, 404, 410))
        else:
            client.check(client.request("DELETE", staging), f"delete {staging}", (200, 404, 410))
        if backup is None:
            return
        if swapped:
            client.check(client.request("DELETE", backup), f"drop the old root of {domain}", (200, 404, 410))
            return
        if now is None or not now.get("root"):
            rsp = client.request("PUT", domain, body={"linked_domain": backup})
            client.check(rsp, f"put {domain} back on its old root", (200, 201))
        rsp = client.request("DELETE", backup, params={"keep_root": 1})
        client.check(rsp, f"drop backup name {backup}", (200, 404, 410))
    except Exception as exc:
        log.error("after a failed swap of %s (old root kept as %s): %s", domain, backup, exc)


def _is_backup(name: str) -> bool:
    return posixpath.basename(name).startswith(BACKUP_PREFIX)


def _scratch_name(domain: str, prefix: str = "") -> str:
    """A fresh name in `domain`'s staging folder."""
    return f"{staging_folder(domain)}{prefix}{uuid.uuid4().hex}-{posixpath.basename(domain)}"


def _raise_for_io(exc: OSError, what: str) -> None:
    status = exc.errno
    if status in (401, 403):
        raise HsdsAuthError(f"{what}: HSDS refused access ({status})", status) from exc
    if status is not None and (status >= 500 or status in (408, 429)):
        raise TransientError(f"{what}: HSDS answered {status}: {exc}") from exc
    raise HsdsError(f"{what}: {exc}", status) from exc
