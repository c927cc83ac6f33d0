"""Who is who in HSDS: a deployment's three accounts, which job runs as which, and the folders' ACLs.

One writer name (the stack's `HsdsUsername`, the embedded environment's user) names all three:

- the admin, `<writer>-admin`: makes the domains' folder and puts its ACLs, and nothing else. On
  AWS only the HSDS task's `folders` container has its secret (`python -m datacarousel.hsds_accounts`,
  every time the task starts); locally `datacarousel up` does the same. No job gets it.
- the writer, `<writer>`: index_file and record_metadata link and record files; the carousel step
  deletes the domains of copies that expired or failed. It creates, reads, updates and deletes in
  the domains' folder, and reads or changes no ACL.
- the reader, `<writer>-reader`: every analysis (built in or registered later) reads the domains.

The loader never talks to HSDS and runs as nobody there. Each job definition receives the secret of
its own account only (`stack_template.batch`), the local launcher the same (`workbench.local.launcher`).
"""

from __future__ import annotations

import enum
import logging
import os
import sys
from collections.abc import Mapping
from types import MappingProxyType

import tenacity

from datacarousel import hsds
from datacarousel.contract import Env, JobDefinitionName
from datacarousel.errors import ConfigError, TransientError, run_one_line

log = logging.getLogger(__name__)


class HsdsRole(str, enum.Enum):
    """An HSDS account of a deployment; the value is the word the template's names use."""

    ADMIN = "admin"
    WRITER = "writer"
    READER = "reader"


_SUFFIX = {HsdsRole.ADMIN: "-admin", HsdsRole.WRITER: "", HsdsRole.READER: "-reader"}


def username(role: HsdsRole, writer: str) -> str:
    """The HSDS user name of `role` in a deployment whose writer is `writer`."""
    return f"{writer}{_SUFFIX[role]}"


# The pipeline's jobs; every other job definition is an analysis (a reader).
PIPELINE_ROLES: Mapping[str, HsdsRole | None] = MappingProxyType(
    {
        JobDefinitionName.LOADER.value: None,  # stages archive objects: never talks to HSDS
        JobDefinitionName.INDEX_FILE.value: HsdsRole.WRITER,
        JobDefinitionName.RECORD_METADATA.value: HsdsRole.WRITER,
        JobDefinitionName.CAROUSEL.value: HsdsRole.WRITER,  # deletes the domains of expired copies
    }
)


def role_of(job_definition: str) -> HsdsRole | None:
    """The HSDS account a job definition runs as (None: no HSDS credentials at all)."""
    return PIPELINE_ROLES.get(job_definition, HsdsRole.READER)


# --- the folders and their ACLs ------------------------------------------------------------------

# HSDS's ACL keys (hsds.util.authUtil.getAclKeys): a `default` ACL with all of them False grants nothing.
ACL_KEYS = ("create", "read", "update", "delete", "readACL", "updateACL")
NONE = MappingProxyType(dict.fromkeys(ACL_KEYS, False))
READ = MappingProxyType({**NONE, "read": True})
READ_WRITE = MappingProxyType({**NONE, "create": True, "read": True, "update": True, "delete": True})
Acls = dict[str, dict[str, Mapping[str, bool]]]  # folder (no trailing '/') -> user -> ACL


def folder_acls(folder: str, writer: str) -> Acls:
    """The ACLs of every folder on the way to the domains' folder, of that folder and of the staging folder.

    The writer and the reader read the folders above (a worker checks the path exists). In the
    domains' folder the writer also creates, updates and deletes (domains it creates are its own),
    the reader only reads (domains and subfolders made there inherit its ACL). The staging folder
    (`hsds.staging_folder`: domains being built) is the writer's alone. Every folder's `default`
    ACL grants nothing: HSDS gives each new folder a `default` read ACL, whatever `default_public` says.
    """
    reader = username(HsdsRole.READER, writer)
    parts = [p for p in folder.strip("/").split("/") if p]
    acls: Acls = {"/" + "/".join(parts[:depth]): {writer: READ, reader: READ} for depth in range(1, len(parts))}
    acls[folder.rstrip("/")] = {writer: READ_WRITE, reader: READ}
    acls[hsds.staging_folder(f"{folder}x.h5").rstrip("/")] = {writer: READ_WRITE}
    return {path: {"default": NONE, **users} for path, users in acls.items()}


def put_folder_acls(admin: hsds.HsdsAccess, acls: Acls) -> None:
    """Put `acls` (as `folder_acls` returns them) on their folders, as the admin; a refused admin is a
    configuration error, HSDS unreachable or answering 5xx a `TransientError` (`hsds.put_acl`)."""
    for path, users in acls.items():
        for user, acl in users.items():
            try:
                hsds.put_acl(path, user, acl, admin)
            except hsds.HsdsAuthError as exc:
                raise ConfigError(f"HSDS refused the admin {admin.username!r} ({exc.status}): {_ADMIN_HINT}") from exc


_ADMIN_HINT = "the admin's name must be the server's ADMIN_USER and its password the one in the password file"


def prepare_folders(folder: str, admin: hsds.HsdsAccess, writer: str, *, timeout: float) -> None:
    """The domains' folder and the writer's staging folder (owned by the admin) with `folder_acls`.

    Idempotent (every start of HSDS runs it); transient answers (a node still starting) are retried
    for up to `timeout` seconds.
    """
    acls = folder_acls(folder, writer)
    for attempt in tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientError),
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_exponential(multiplier=0.1, max=2.0),
        reraise=True,
    ):
        with attempt:
            hsds.ensure_folder(folder, admin, admin=admin)
            hsds.ensure_folder(hsds.staging_folder(f"{folder}x.h5"), admin, admin=admin)
            put_folder_acls(admin, acls)


# How long the `folders` container waits for HSDS to answer (it starts once the service node is healthy).
PREPARE_TIMEOUT_S = 300.0
WRITER_VARIABLE = "DC_HSDS_WRITER"  # the `folders` container's: the writer's user name


def main(environ: Mapping[str, str] | None = None) -> int:
    """`python -m datacarousel.hsds_accounts`: prepare the folders as the admin (HS_ENDPOINT, HS_USERNAME,
    HS_PASSWORD: the admin's), for the writer `DC_HSDS_WRITER`, in `DC_HSDS_FOLDER`. Exit 0, or one line."""
    env = os.environ if environ is None else environ

    def prepare() -> None:
        logging.basicConfig(level=env.get(Env.LOG_LEVEL, "INFO"), format="%(levelname)s %(name)s: %(message)s")
        missing = [name for name in (Env.HSDS_FOLDER, WRITER_VARIABLE) if not env.get(name)]
        if missing:
            raise ConfigError(f"set {', '.join(missing)}: the folder of the domains and the writer's user name")
        admin = hsds.HsdsAccess.resolve(environ=env)
        prepare_folders(env[Env.HSDS_FOLDER], admin, env[WRITER_VARIABLE], timeout=PREPARE_TIMEOUT_S)
        log.info("HSDS folder %s ready for %s", env[Env.HSDS_FOLDER], env[WRITER_VARIABLE])

    return run_one_line(prepare)


if __name__ == "__main__":
    sys.exit(main())
