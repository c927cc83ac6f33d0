"""What every part of a carousel step works with, in one base class.

`carousel.step.Step` builds one of each part (`carousel.observe.Observer`,
`carousel.dead_letters.DeadLetters`, `carousel.apply.Applier`, `carousel.complete.JobCompleter`,
`carousel.launching.WorkerLaunching`) over the same `Context`, the same `WorkQueues` (each queue looked up
once per step object) and the same way of deleting an HSDS domain (tests pass their own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carousel.runtime import Context
from carousel.store import Loaded
from datacarousel import hsds
from datacarousel.contract import FileAttr
from datacarousel.work_queues import WorkQueues

IO_WORKERS = 16  # S3 calls at once (HeadObject, RestoreObject)

DomainDeleter = Callable[[str], Any]


class StepPart:
    """The clients, tables and settings of a `Context`, the stack's work queues, and where a file's object is."""

    def __init__(self, ctx: Context, work_queues: WorkQueues, delete_domain: DomainDeleter | None = None) -> None:
        self.ctx = ctx
        self.s3 = ctx.s3
        self.sqs = ctx.sqs
        self.tables = ctx.tables
        self.files = ctx.tables.carousel_files
        self.settings = ctx.settings
        self.config = ctx.config
        self.work_queues = work_queues
        self._delete_domain = delete_domain

    def bucket_of(self, loaded: Loaded, name: str) -> str:
        item = loaded.files.get(name, {})
        return str(item.get(FileAttr.BUCKET) or self.settings.require("archive_bucket"))

    def key_of(self, loaded: Loaded, name: str) -> str:
        item = loaded.files.get(name, {})
        return str(item.get(FileAttr.KEY) or name)

    def delete_domain(self, domain: str) -> None:
        if self._delete_domain is not None:
            self._delete_domain(domain)
            return
        hsds.delete_domain(domain)
