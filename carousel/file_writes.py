"""The carousel's writes on BasicFusionFiles: each a conditional UpdateItem on a file's state and version.

index_file and record_metadata write their own states (`datacarousel.files_table.FilesTable`); these
are the carousel's: claiming and undoing a restore, leases, probes, index requests, invalidation,
failure and retry. Each bumps the item's version, so a writer that read an older item loses its write.
"""

from __future__ import annotations

import logging
from typing import Any

from carousel.dynamo_items import update
from datacarousel.contract import (
    FileAttr,
    FileState,
)
from datacarousel.files_table import Expr, FilesTable
from datacarousel.times import iso_seconds

log = logging.getLogger(__name__)

READABLE_STATES = (FileState.RESTORED, FileState.INDEXED)  # a copy is readable: leases and invalidation apply


# --- carousel writes on BasicFusionFiles -------------------------------------------------------


class CarouselFiles:
    """The carousel's own writes on BasicFusionFiles items (state, restore and lease attributes).

    A state change bumps `state_version` (index_file's `mark_indexed` checks it, so an
    index built before an invalidation never lands); bookkeeping writes (lease expiry,
    probe and index-request times) leave it alone.
    """

    def __init__(self, files: FilesTable) -> None:
        self.files = files
        self.ddb = files.ddb
        self.table = files.table

    def _update(self, name: str, expr: Expr, **changes: Any) -> bool:
        """One conditional UpdateItem of file `name` (see `update`)."""
        return update(self.ddb, self.table, self._key(name), expr, **changes)

    def _key(self, name: str) -> dict[str, str]:
        return {FileAttr.FILE_NAME: name}

    def _bump(self, expr: Expr) -> str:
        version = expr.name(FileAttr.STATE_VERSION)
        return f"{version} = if_not_exists({version}, {expr.value(0)}) + {expr.value(1)}"

    def set_state(
        self,
        name: str,
        expected_version: int,
        to_state: FileState,
        restore_expiry: float | None,
        now: float,
        *,
        uncount_restore: bool = False,
        error: str | None = None,
    ) -> bool:
        """Reconciliation: the state (and expiry) S3 reports, at the version the planner saw.

        `uncount_restore`: the last restore request never took (nothing to pay): restore_count - 1.
        `error`: why (a FAILED file's reason, written in the same write as its state).
        """
        expr = Expr()
        extra = [self._bump(expr)]
        if uncount_restore:
            count = expr.name(FileAttr.RESTORE_COUNT)
            extra.append(f"{count} = if_not_exists({count}, {expr.value(1)}) - {expr.value(1)}")
        values: dict[str, Any] = {FileAttr.STATE: to_state.value, FileAttr.UPDATED_AT: iso_seconds(now)}
        if error is not None:
            values[FileAttr.ERROR] = error[:2000]
        remove: list[str] = []
        if restore_expiry is None:
            remove.append(FileAttr.RESTORE_EXPIRY)
        else:
            values[FileAttr.RESTORE_EXPIRY] = iso_seconds(restore_expiry)
        return self._update(
            name,
            expr,
            set_=values,
            extra_set=extra,
            remove=remove,
            condition=f"attribute_exists({expr.name(FileAttr.FILE_NAME)}) AND "
            + expr.version_is(FileAttr.STATE_VERSION, expected_version),
        )

    def claim_restore(self, name: str, expected_version: int, now: float) -> bool:
        """ARCHIVED at `expected_version` -> RESTORING; only the winner then calls RestoreObject."""
        expr = Expr()
        count = expr.name(FileAttr.RESTORE_COUNT)
        return self._update(
            name,
            expr,
            set_={
                FileAttr.STATE: FileState.RESTORING.value,
                FileAttr.RESTORE_REQUESTED_AT: iso_seconds(now),
                FileAttr.UPDATED_AT: iso_seconds(now),
            },
            extra_set=[self._bump(expr), f"{count} = if_not_exists({count}, {expr.value(0)}) + {expr.value(1)}"],
            remove=[FileAttr.RESTORE_EXPIRY, FileAttr.RESTORE_CHECKED_AT],
            condition=f"{expr.name(FileAttr.STATE)} = {expr.value(FileState.ARCHIVED.value)} AND "
            + expr.version_is(FileAttr.STATE_VERSION, expected_version),
        )

    def unclaim_restore(self, name: str, claimed_version: int, now: float) -> bool:
        """RestoreObject failed for good: back to ARCHIVED (the request did not count)."""
        expr = Expr()
        count = expr.name(FileAttr.RESTORE_COUNT)
        return self._update(
            name,
            expr,
            set_={FileAttr.STATE: FileState.ARCHIVED.value, FileAttr.UPDATED_AT: iso_seconds(now)},
            extra_set=[self._bump(expr), f"{count} = {count} - {expr.value(1)}"],
            condition=f"{expr.name(FileAttr.STATE)} = {expr.value(FileState.RESTORING.value)} AND "
            + expr.version_is(FileAttr.STATE_VERSION, claimed_version),
        )

    def set_lease(self, name: str, restore_expiry: float, now: float) -> bool:
        """A renewal: the readable copy now lives until `restore_expiry`."""
        expr = Expr()
        return self._update(
            name,
            expr,
            set_={FileAttr.RESTORE_EXPIRY: iso_seconds(restore_expiry), FileAttr.UPDATED_AT: iso_seconds(now)},
            condition=expr.one_of(FileAttr.STATE, (s.value for s in READABLE_STATES)),
        )

    def mark_probed(self, name: str, now: float) -> bool:
        expr = Expr()
        return self._update(
            name,
            expr,
            set_={FileAttr.RESTORE_CHECKED_AT: iso_seconds(now)},
            condition=f"attribute_exists({expr.name(FileAttr.FILE_NAME)})",
        )

    def claim_index_request(self, name: str, now: float, retry_s: float) -> bool:
        """RESTORED and no index request within `retry_s`: record one now (the winner sends it)."""
        expr = Expr()
        at = expr.name(FileAttr.INDEX_REQUESTED_AT)
        return self._update(
            name,
            expr,
            set_={FileAttr.INDEX_REQUESTED_AT: iso_seconds(now)},
            condition=f"{expr.name(FileAttr.STATE)} = {expr.value(FileState.RESTORED.value)} AND "
            f"(attribute_not_exists({at}) OR {at} <= {expr.value(iso_seconds(now - retry_s))})",
        )

    def invalidate(self, name: str, expected_version: int, now: float) -> bool:
        """A readable file whose copy expired -> ARCHIVED, its domain forgotten (deleted before this write)."""
        expr = Expr()
        return self._update(
            name,
            expr,
            set_={FileAttr.STATE: FileState.ARCHIVED.value, FileAttr.UPDATED_AT: iso_seconds(now)},
            extra_set=[self._bump(expr)],
            remove=[FileAttr.DOMAIN, FileAttr.RESTORE_EXPIRY, FileAttr.INDEX_REQUESTED_AT, FileAttr.RESTORE_CHECKED_AT],
            condition=expr.one_of(FileAttr.STATE, (s.value for s in READABLE_STATES))
            + " AND "
            + expr.version_is(FileAttr.STATE_VERSION, expected_version),
        )

    def claim_index_redrive(self, name: str, now: float, limit: int) -> bool:
        """Count one more redrive of a file's index request; False once `limit` were used.

        A request that reached the dead-letter queue without a reason failed transiently at
        every receive (an HSDS or S3 outage): the file is good, so it is tried again, a few times.
        """
        expr = Expr()
        redrives = expr.name(FileAttr.INDEX_REDRIVES)
        return self._update(
            name,
            expr,
            set_={FileAttr.UPDATED_AT: iso_seconds(now)},
            extra_set=[f"{redrives} = if_not_exists({redrives}, {expr.value(0)}) + {expr.value(1)}"],
            condition=f"attribute_exists({expr.name(FileAttr.FILE_NAME)}) AND "
            + f"(attribute_not_exists({redrives}) OR {redrives} < {expr.value(limit)})",
        )

    def fail(self, name: str, reason: str, now: float) -> bool:
        """A file that cannot be indexed (its request reached the index dead-letter queue)."""
        expr = Expr()
        return self._update(
            name,
            expr,
            set_={
                FileAttr.STATE: FileState.FAILED.value,
                FileAttr.ERROR: reason[:2000],
                FileAttr.UPDATED_AT: iso_seconds(now),
            },
            extra_set=[self._bump(expr)],
            condition=f"attribute_exists({expr.name(FileAttr.FILE_NAME)}) AND "
            + f"NOT {expr.name(FileAttr.STATE)} IN "
            + f"({expr.value(FileState.INDEXED.value)}, {expr.value(FileState.FAILED.value)})",
        )

    def retry_failed(self, name: str, now: float) -> bool:
        """FAILED -> ARCHIVED (`datacarousel retry`): a state change (version bumped), its reason, redrive
        count and every trace of the last restore and index forgotten, like `invalidate`. The next steps
        restore and index it again for the jobs that wait for it. False if it is no longer FAILED."""
        expr = Expr()
        return self._update(
            name,
            expr,
            set_={FileAttr.STATE: FileState.ARCHIVED.value, FileAttr.UPDATED_AT: iso_seconds(now)},
            extra_set=[self._bump(expr)],
            remove=[
                FileAttr.ERROR,
                FileAttr.INDEX_REDRIVES,
                FileAttr.DOMAIN,
                FileAttr.RESTORE_EXPIRY,
                FileAttr.INDEX_REQUESTED_AT,
                FileAttr.RESTORE_CHECKED_AT,
            ],
            condition=f"{expr.name(FileAttr.STATE)} = {expr.value(FileState.FAILED.value)}",
        )
