"""Domain exceptions. Workers translate them into dead-letter reasons or exit codes at the edge."""

from __future__ import annotations


class DataCarouselError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigError(DataCarouselError):
    """The environment is missing variables or holds malformed ones (all are named)."""


class MalformedMessage(DataCarouselError):
    """A queue message that can never be processed: it goes to the dead-letter queue."""


class BadFileName(DataCarouselError):
    """A name that does not follow the BasicFusion naming rule."""


class BadInput(DataCarouselError):
    """Input that will never succeed however often it is retried (poison): dead-letter it."""


class NotReadable(DataCarouselError):
    """The object is still archived (or its restore expired): it cannot be read now."""


class TransientError(DataCarouselError):
    """A service is briefly unavailable: retry later, the message returns to the queue."""


class CorruptData(BadInput):
    """Stored bytes fail their integrity check (deflate stream, zlib checksum, size): poison, never retried.

    Every read path raises it for a damaged chunk, so callers classify by type, never by message text.
    `reason`: what failed; `path`: the dataset; `offset`: the chunk's byte offset in the file (None if
    not known); `source`: the file, object or domain read (may be empty).
    """

    def __init__(self, reason: str, path: str = "", offset: int | None = None, source: str = "") -> None:
        self.reason = reason
        self.path = path
        self.offset = offset
        self.source = source
        where = ": ".join(p for p in (source, path) if p)
        at = f" (chunk at byte {offset})" if offset is not None else ""
        super().__init__(f"{where + ': ' if where else ''}corrupt data{at}: {reason}")

    def __reduce__(self) -> tuple[type[CorruptData], tuple[str, str, int | None, str]]:  # survives pickling
        return (type(self), (self.reason, self.path, self.offset, self.source))
