"""Domain exceptions. Workers translate them into dead-letter reasons or exit codes at the edge."""

from __future__ import annotations

import errno
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


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


class EnvironmentDown(ConfigError):
    """`AWS_ENDPOINT_URL` names a loopback address where nothing answers: the embedded environment is down
    (or its variables are stale after `datacarousel down`). No retry fixes it; `datacarousel up` does."""


# Exit codes of every command and worker (the Batch job definitions and the docs use the same three).
EXIT_OK = 0
EXIT_FAILED = 1  # a service failed for now: a retry (the next schedule, the same command again) may succeed
EXIT_USAGE = 2  # bad input or configuration: no retry fixes it
RETRY_HINT = "retry later"
"""The one wording of a failure a retry can fix; never said of a permanent one."""

# AWS error codes no retry fixes: the credentials, the region or the names in the environment are wrong.
PERMANENT_AWS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "MissingAuthenticationToken",
        "NoSuchBucket",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "ResourceNotFoundException",
        "SignatureDoesNotMatch",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "ValidationError",
        "ValidationException",
    }
)
# OSError numbers of a path that is wrong (no retry fixes it): unwritable, missing, not a directory, ...
_PERMANENT_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.EINVAL,
        errno.ELOOP,
    }
)
UP_HINT = 'is the embedded environment up? run `datacarousel up`, then `eval "$(datacarousel env)"`'
CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE); "
    'on the embedded environment: `eval "$(datacarousel env)"`'
)
REGION_HINT = 'set AWS_DEFAULT_REGION (on the embedded environment: `eval "$(datacarousel env)"`)'


@dataclass(frozen=True)
class Outcome:
    """How a failure ends a command or worker: its exit code and its one line for stderr."""

    code: int
    line: str


def one_line(text: object) -> str:
    """`text` on one line (newlines and runs of spaces folded)."""
    return " ".join(str(text).split())


def is_loopback_url(url: str) -> bool:
    """`url` names this machine (127.x.y.z, localhost, ::1): the embedded environment, never AWS."""
    host = urlsplit(url).hostname or ""
    return host in {"localhost", "::1"} or host.startswith("127.")


def _aws_outcome(exc: Exception) -> Outcome | None:
    """The outcome of a botocore error; None for anything else."""
    from botocore import exceptions as boto  # noqa: PLC0415 - only failures pay for it

    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError | boto.CredentialRetrievalError):
        return Outcome(EXIT_USAGE, f"error: no usable AWS credentials ({one_line(exc)}): {CREDENTIALS_HINT}")
    if isinstance(exc, boto.NoRegionError):
        return Outcome(EXIT_USAGE, f"error: no AWS region: {REGION_HINT}")
    if isinstance(exc, boto.EndpointConnectionError | boto.ConnectionClosedError) and is_loopback_url(
        str(exc.kwargs.get("endpoint_url", ""))
    ):
        return Outcome(EXIT_USAGE, f"error: {one_line(exc)}: {UP_HINT}")
    if isinstance(exc, boto.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in PERMANENT_AWS_CODES:
            return Outcome(
                EXIT_USAGE, f"error: AWS refused: {one_line(exc)} (check the credentials and the DC_* names)"
            )
        return Outcome(EXIT_FAILED, f"error: AWS failed: {one_line(exc)} ({RETRY_HINT})")
    if isinstance(exc, boto.BotoCoreError):
        return Outcome(EXIT_FAILED, f"error: AWS failed: {type(exc).__name__}: {one_line(exc)} ({RETRY_HINT})")
    return None


def _from_click(exc: Exception) -> bool:
    """Raised by click (or the copy Typer carries, `typer._click`)."""
    return any(cls.__module__.split(".")[0] == "click" or ".".join(cls.__module__.split(".")[:2]) == "typer._click"
               for cls in type(exc).__mro__)  # fmt: skip


def _click_outcome(exc: Exception) -> Outcome | None:
    """A command-line usage error (click's, as Typer raises them): one line naming `--help`; None otherwise."""
    if not _from_click(exc):
        return None
    format_message, code = getattr(exc, "format_message", None), getattr(exc, "exit_code", None)
    if not callable(format_message) or not isinstance(code, int):  # click's Abort: Ctrl-C at a prompt
        return Outcome(EXIT_FAILED, "error: aborted")
    if type(exc).__name__ == "NoArgsIsHelpError":  # no arguments: the help was shown, nothing to add
        return Outcome(code, "")
    text = f"error: {one_line(format_message())}"
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        text += f" (see `{ctx.command_path} --help`)"
    return Outcome(code, text)


def outcome(exc: Exception) -> Outcome:
    """The exit code and one line of any failure: 2 for bad input or configuration (no retry fixes it),
    1 for what a retry may fix (`retry later`), 1 with a hint to report it for a bug."""
    found = _click_outcome(exc) or _aws_outcome(exc)
    if found is not None:
        return found
    cause = exc.__cause__
    if isinstance(exc, TransientError) and isinstance(cause, Exception):  # wrapping what no retry fixes?
        underneath = _aws_outcome(cause)
        if underneath is not None and underneath.code == EXIT_USAGE:
            return underneath
    if isinstance(exc, BadInput | BadFileName | MalformedMessage | ConfigError):
        return Outcome(EXIT_USAGE, f"error: {one_line(exc)}")
    if isinstance(exc, TransientError | NotReadable):
        return Outcome(EXIT_FAILED, f"error: {one_line(exc)} ({RETRY_HINT})")
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"error: {where}{exc.strerror or one_line(exc)}"
        if exc.errno in _PERMANENT_ERRNOS:
            return Outcome(EXIT_USAGE, text)
        return Outcome(
            EXIT_FAILED, f"{text} ({RETRY_HINT})" if isinstance(exc, ConnectionError | TimeoutError) else text
        )
    if isinstance(exc, DataCarouselError):
        return Outcome(EXIT_FAILED, f"error: {one_line(exc)}")
    return Outcome(
        EXIT_FAILED,
        f"error: unexpected {type(exc).__name__}: {one_line(exc)} (a bug: DC_LOG_LEVEL=DEBUG shows the traceback)",
    )


def run_one_line(call: Callable[[], Any]) -> int:
    """Run a command line (`call`: a click/Typer command's `main(standalone_mode=False)`) and return its exit code;
    any failure ends in one line on stderr and its code (`outcome`), never a traceback (DEBUG logs it)."""
    try:
        result = call()
    except Exception as exc:
        logging.getLogger("datacarousel").debug("failed", exc_info=True)
        ended = outcome(exc)
        if ended.line:
            print(ended.line, file=sys.stderr)  # noqa: T201 - the one line
        return ended.code
    return result if isinstance(result, int) else EXIT_OK
