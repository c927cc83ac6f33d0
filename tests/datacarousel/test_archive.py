"""Is this archive object readable now? Storage classes, `Restore` header variants, expired copies, 404s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from datacarousel import archive
from datacarousel.archive import RestoreStatus, Unreadable

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DONE = 'ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"'
LOOSE = 'ongoing-request = "FALSE" ,expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"'  # spacing and case vary
END_OF_2012 = datetime(2012, 12, 21, tzinfo=UTC)


@pytest.mark.parametrize(
    ("storage_class", "archived"),
    [
        (None, False),
        ("", False),
        ("STANDARD", False),
        ("STANDARD_IA", False),
        ("ONEZONE_IA", False),
        ("INTELLIGENT_TIERING", False),
        ("REDUCED_REDUNDANCY", False),
        ("GLACIER_IR", False),  # instantly readable
        ("GLACIER", True),
        ("DEEP_ARCHIVE", True),
    ],
)
def test_each_storage_class(storage_class: str | None, archived: bool) -> None:
    assert archive.is_archive_class(storage_class) is archived
    # Never restored: only an archive class needs a restore to be read.
    assert archive.readable_now(storage_class, None, NOW) is not archived


@pytest.mark.parametrize(
    ("header", "status", "problem"),
    [
        (None, None, ""),
        ("", None, ""),
        ("  ", None, ""),
        ('ongoing-request="true"', RestoreStatus(True), ""),
        (DONE, RestoreStatus(False, END_OF_2012), ""),
        (LOOSE, RestoreStatus(False, END_OF_2012), ""),
        ("garbage", None, "unrecognised Restore header"),
        ('ongoing-request="false"', RestoreStatus(False), "without expiry-date"),
        ('ongoing-request="false", expiry-date="not a date"', RestoreStatus(False), "bad expiry-date"),
    ],
)
def test_restore_header_variants(header: str | None, status: RestoreStatus | None, problem: str) -> None:
    parsed = archive.parse_restore_header(header)
    assert parsed.status == status
    assert (problem in parsed.problem) if problem else parsed.problem == ""


@pytest.mark.parametrize(
    ("restore", "why"),
    [
        (None, Unreadable.ARCHIVED),
        (RestoreStatus(True), Unreadable.RESTORING),
        (RestoreStatus(False, NOW + timedelta(days=1)), None),  # restored: the class stays DEEP_ARCHIVE
        (RestoreStatus(False, NOW), Unreadable.EXPIRED),  # expires at `now`: gone
        (RestoreStatus(False, NOW - timedelta(seconds=1)), Unreadable.EXPIRED),
        (RestoreStatus(False), None),  # finished, expiry not known
    ],
)
def test_an_archived_object_is_readable_only_while_its_copy_has_not_expired(
    restore: RestoreStatus | None, why: Unreadable | None
) -> None:
    assert archive.why_unreadable("DEEP_ARCHIVE", restore, NOW) == why
    assert archive.readable_now("DEEP_ARCHIVE", restore, NOW) is (why is None)
    # A non-archive class is readable as is, whatever its header says (copied over itself into STANDARD).
    assert archive.readable_now("STANDARD", restore, NOW)


def test_an_expired_copy_is_not_readable() -> None:
    expired = archive.parse_restore_header(DONE).status  # ongoing-request="false", expiry in 2012
    assert expired is not None and not expired.in_progress
    assert not archive.readable_now("GLACIER", expired, NOW)
    assert archive.why_unreadable("GLACIER", expired, NOW) is Unreadable.EXPIRED


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}}, "HeadObject")


@pytest.mark.parametrize(
    ("code", "missing"),
    [("404", True), ("NoSuchKey", True), ("NotFound", True), ("403", False), ("InvalidObjectState", False)],
)
def test_not_found_codes(code: str, missing: bool) -> None:
    assert archive.is_not_found(_client_error(code)) is missing
    assert (code in archive.NOT_FOUND_CODES) is missing
    assert archive.error_code(_client_error(code)) == code


def test_an_answer_without_an_error_code_is_not_not_found() -> None:
    assert archive.error_code(ClientError({}, "HeadObject")) == ""
    assert not archive.is_not_found(ClientError({}, "HeadObject"))


def test_normalize_etag() -> None:
    assert archive.normalize_etag('"abc"') == "abc"
    assert archive.normalize_etag("abc") == "abc"
    assert archive.normalize_etag(None) == ""
