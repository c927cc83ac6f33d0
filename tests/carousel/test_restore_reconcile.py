"""Restore completion reconciliation: events are hints, observations win, repeats change nothing."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carousel import restore
from carousel.actions import InvalidateExpired, RenewLease, RequestRestore, UpdateFileState
from carousel.model import Snapshot
from carousel.planner import PlannerConfig, plan
from carousel.planner import step as planner_step
from carousel.restore import (
    ObservedRestore,
    ObservedStatus,
    RestoreEvent,
    RestoreEventKind,
    apply_updates,
    parse_restore_header,
    reconcile,
)
from datacarousel.contract import FileState
from datacarousel.errors import BadInput
from tests.carousel.carousel_builders import DAY, HOUR, T0, file, job, name, snapshot, wants

ORBITS = list(range(20_000, 20_006))


def _world() -> Snapshot:
    """Six files: two restoring, one indexed (expiry T0+2d), one restored, one archived, one failed."""
    files = [
        file(ORBITS[0], FileState.RESTORING, requested_at=T0),
        file(ORBITS[1], FileState.RESTORING, requested_at=T0),
        file(ORBITS[2], FileState.INDEXED, requested_at=T0 - DAY, expiry=T0 + 2 * DAY, version=3),
        file(ORBITS[3], FileState.RESTORED, requested_at=T0 - DAY, expiry=T0 + DAY, version=2),
        file(ORBITS[4], FileState.ARCHIVED),
        file(ORBITS[5], FileState.FAILED, requested_at=T0 - DAY, expiry=T0 + DAY),
    ]
    return snapshot(files, [job("j1")], wants("j1", ORBITS))


def _events_strategy() -> st.SearchStrategy[list[RestoreEvent]]:
    kinds = st.sampled_from(list(RestoreEventKind))
    return st.lists(
        st.builds(
            lambda i, k, dt: RestoreEvent(
                name(ORBITS[i]), k, T0 + dt, T0 + dt + DAY if k is RestoreEventKind.COMPLETED else None
            ),
            st.integers(0, len(ORBITS) - 1),
            kinds,
            st.floats(-2 * DAY, 3 * DAY, allow_nan=False).map(lambda x: round(x / 60) * 60),
        ),
        max_size=12,
    )


NOW = T0 + 40 * HOUR
PLANNER = PlannerConfig(window_bytes=10**15, window_files=1000)


def test_parse_restore_header() -> None:
    ongoing = parse_restore_header('ongoing-request="true"', T0)
    assert ongoing.status is ObservedStatus.ONGOING
    done = parse_restore_header('ongoing-request="false", expiry-date="Fri, 23 Jan 2026 00:00:00 GMT"', T0)
    assert done.status is ObservedStatus.RESTORED
    assert done.restore_expiry == T0 + 22 * DAY
    assert parse_restore_header(None, T0).status is ObservedStatus.ARCHIVED
    with pytest.raises(BadInput, match="unrecognised Restore header"):
        parse_restore_header("garbage", T0)
    with pytest.raises(BadInput, match="bad expiry-date"):
        parse_restore_header('ongoing-request="false", expiry-date="not a date"', T0)


def test_completion_event_makes_a_restoring_file_restored() -> None:
    snap = _world()
    updates = reconcile(
        snap, [RestoreEvent(name(ORBITS[0]), RestoreEventKind.COMPLETED, T0 + 30 * HOUR, T0 + 3 * DAY)], {}, NOW
    )
    assert len(updates) == 1
    u = updates[0]
    assert (u.from_state, u.to_state, u.restore_expiry) == (FileState.RESTORING, FileState.RESTORED, T0 + 3 * DAY)
    assert u.expected_version == 0


def test_stale_event_from_an_earlier_restore_is_ignored() -> None:
    snap = _world()
    stale = RestoreEvent(name(ORBITS[0]), RestoreEventKind.COMPLETED, T0 - HOUR, T0 + DAY)
    assert reconcile(snap, [stale], {}, NOW) == ()


def test_old_completion_event_never_undoes_a_renewal() -> None:
    snap = _world()  # ORBITS[2] indexed, expiry T0 + 2 days (renewed)
    old = RestoreEvent(name(ORBITS[2]), RestoreEventKind.COMPLETED, T0 - HOUR, T0 + DAY)
    assert reconcile(snap, [old], {}, NOW) == ()


def test_failed_files_are_left_alone() -> None:
    snap = _world()
    events = [RestoreEvent(name(ORBITS[5]), RestoreEventKind.EXPIRED, T0 + 2 * DAY)]
    assert reconcile(snap, events, {name(ORBITS[5]): ObservedRestore(ObservedStatus.ARCHIVED, NOW)}, NOW) == ()


def test_lost_completion_is_recovered_by_a_probe() -> None:
    snap = _world()
    event = RestoreEvent(name(ORBITS[1]), RestoreEventKind.COMPLETED, T0 + 30 * HOUR, T0 + 3 * DAY)
    with_event = apply_updates(snap, reconcile(snap, [event], {}, NOW), NOW)
    probe = {name(ORBITS[1]): ObservedRestore(ObservedStatus.RESTORED, NOW, T0 + 3 * DAY)}
    with_probe = apply_updates(snap, reconcile(snap, [], probe, NOW), NOW)
    assert with_event.file(name(ORBITS[1])) == with_probe.file(name(ORBITS[1]))
    assert with_probe.file(name(ORBITS[1])).state is FileState.RESTORED


def test_probe_of_a_restore_that_never_took_allows_a_new_request() -> None:
    snap = _world()
    updates = reconcile(snap, [], {name(ORBITS[0]): ObservedRestore(ObservedStatus.ARCHIVED, NOW)}, NOW)
    assert [(u.file_name, u.to_state) for u in updates] == [(name(ORBITS[0]), FileState.ARCHIVED)]


def test_vanished_copy_of_a_readable_file_is_marked_expired_for_invalidation() -> None:
    snap = _world()
    updates = reconcile(snap, [], {name(ORBITS[2]): ObservedRestore(ObservedStatus.ARCHIVED, NOW)}, NOW)
    assert len(updates) == 1
    assert updates[0].to_state is FileState.INDEXED  # the planner invalidates it (domain, requeue)
    assert updates[0].restore_expiry == NOW


@settings(max_examples=150, deadline=None)
@given(_events_strategy(), st.randoms(use_true_random=False), st.integers(0, 3))
def test_duplicated_and_reordered_events_change_nothing(
    events: list[RestoreEvent], rnd: random.Random, copies: int
) -> None:
    snap = _world()
    reference = reconcile(snap, events, {}, NOW)
    noisy = list(events) + [e for e in events for _ in range(copies)]
    rnd.shuffle(noisy)
    assert reconcile(snap, noisy, {}, NOW) == reference


@settings(max_examples=150, deadline=None)
@given(_events_strategy(), st.data())
def test_events_are_irrelevant_when_the_object_was_observed(events: list[RestoreEvent], data: st.DataObject) -> None:
    snap = _world()
    status = data.draw(st.sampled_from(list(ObservedStatus)))
    expiry = T0 + 3 * DAY if status is ObservedStatus.RESTORED else None
    observed = {name(o): ObservedRestore(status, NOW, expiry) for o in ORBITS}
    kept = data.draw(st.lists(st.sampled_from(events), unique_by=id)) if events else []
    assert reconcile(snap, kept, observed, NOW) == reconcile(snap, events, observed, NOW)


@settings(max_examples=150, deadline=None)
@given(_events_strategy())
def test_reconciliation_is_idempotent(events: list[RestoreEvent]) -> None:
    snap = _world()
    once = apply_updates(snap, reconcile(snap, events, {}, NOW), NOW)
    again = reconcile(once, events, {}, NOW)
    assert again == ()


# --- storage class and missing objects ---------------------------------------------------------------
# HeadObject is the truth: its StorageClass first (absent = STANDARD), then its Restore header; a 404 says
# the object is gone. (New names are reached through the module: `restore.observe_head`, ...)

STANDING = [ORBITS[0], ORBITS[1]]  # inventoried in a readable class: RESTORED / INDEXED with no expiry


def _standard_world() -> Snapshot:
    files = [
        file(ORBITS[0], FileState.RESTORED, version=1),
        file(ORBITS[1], FileState.INDEXED, version=2),
        file(ORBITS[2], FileState.ARCHIVED),
        file(ORBITS[3], FileState.RESTORING, requested_at=T0),
    ]
    return snapshot(files, [job("j1")], wants("j1", ORBITS[:4]))


RESTORED_HEADER = 'ongoing-request="false", expiry-date="Fri, 23 Jan 2026 00:00:00 GMT"'


@pytest.mark.parametrize(
    ("head", "status", "expiry"),
    [
        ({}, "READABLE", None),  # STANDARD: HeadObject names no class
        ({"StorageClass": "STANDARD"}, "READABLE", None),
        ({"StorageClass": "STANDARD_IA"}, "READABLE", None),
        ({"StorageClass": "ONEZONE_IA"}, "READABLE", None),
        ({"StorageClass": "INTELLIGENT_TIERING"}, "READABLE", None),
        ({"StorageClass": "GLACIER_IR"}, "READABLE", None),
        ({"Restore": RESTORED_HEADER}, "READABLE", None),  # copied into STANDARD, header not gone yet
        ({"StorageClass": "DEEP_ARCHIVE"}, "ARCHIVED", None),
        ({"StorageClass": "GLACIER"}, "ARCHIVED", None),
        ({"StorageClass": "DEEP_ARCHIVE", "Restore": 'ongoing-request="true"'}, "ONGOING", None),
        ({"StorageClass": "GLACIER", "Restore": RESTORED_HEADER}, "RESTORED", T0 + 22 * DAY),
    ],
)
def test_observe_head_reads_the_storage_class_before_the_restore_header(
    head: dict[str, str], status: str, expiry: float | None
) -> None:
    seen = restore.observe_head(head, T0)
    assert (seen.status, seen.restore_expiry) == (restore.ObservedStatus[status], expiry)
    assert seen.storage_class == head.get("StorageClass", "STANDARD")


@pytest.mark.parametrize(
    ("orbit", "from_state", "to_state"),
    [
        (ORBITS[0], FileState.RESTORING, FileState.RESTORED),
        (ORBITS[2], FileState.INDEXED, FileState.INDEXED),  # its expiry goes: never expired, never renewed
        (ORBITS[3], FileState.RESTORED, FileState.RESTORED),
        (ORBITS[4], FileState.ARCHIVED, FileState.RESTORED),  # never restored
    ],
)
def test_an_object_in_a_readable_class_is_readable_with_no_expiry(
    orbit: int, from_state: FileState, to_state: FileState
) -> None:
    """RestoreObject refused it (InvalidObjectState), or it was copied into STANDARD: whatever the file's
    state, it becomes readable with no expiry; a FAILED file is left alone."""
    snap = _world()
    seen = restore.observe_head({"StorageClass": "STANDARD_IA"}, NOW)
    (update,) = reconcile(snap, [], {name(orbit): seen}, NOW)
    assert (update.from_state, update.to_state, update.restore_expiry) == (from_state, to_state, None)
    after = apply_updates(snap, [update], NOW)
    for later in (NOW, NOW + 3 * DAY, NOW + 30 * DAY):
        p = plan(after, later, PLANNER)
        touched = [a.file_name for a in p.of(InvalidateExpired)] + [a.file_name for a in p.of(RenewLease)]
        assert name(orbit) not in touched + [a.file_name for a in p.of(RequestRestore)]
    assert reconcile(snap, [], {name(ORBITS[5]): seen}, NOW) == ()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.builds(
            lambda i, k, dt: RestoreEvent(name(STANDING[i]), k, T0 + dt, T0 + dt + DAY),
            st.integers(0, 1),
            st.sampled_from(list(RestoreEventKind)),
            st.floats(-2 * DAY, 3 * DAY, allow_nan=False),
        ),
        min_size=1,
        max_size=8,
    ),
    st.booleans(),
)
def test_restore_events_about_an_object_in_a_readable_class_change_nothing(
    events: list[RestoreEvent], looked: bool
) -> None:
    """The issue's case: a restore event for an INDEXED STANDARD object expired it (its domain deleted, then
    RestoreObject and InvalidObjectState for ever). Whether the step looked at the object or not."""
    snap = _standard_world()
    observed = {}
    if looked:
        observed = {name(o): restore.observe_head({}, NOW) for o in STANDING}
    assert reconcile(snap, events, observed, NOW) == ()


def test_an_object_moved_into_an_archive_class_goes_back_to_archived_never_failed() -> None:
    """Inventoried readable (no expiry), then moved to DEEP_ARCHIVE by a lifecycle rule with no restored copy:
    expired now, invalidated by the next plan (back to ARCHIVED), then restored for the job waiting."""
    snap = _standard_world()
    seen = restore.observe_head({"StorageClass": "DEEP_ARCHIVE"}, NOW)
    plan_, after = planner_step(snap, [], {name(o): seen for o in STANDING}, NOW, PLANNER)
    assert {(u.file_name, u.to_state, u.restore_expiry) for u in plan_.of(UpdateFileState)} == {
        (name(ORBITS[0]), FileState.RESTORED, NOW),
        (name(ORBITS[1]), FileState.INDEXED, NOW),
    }
    later = NOW + HOUR
    invalidated = plan(after, later, PLANNER).of(InvalidateExpired)
    assert sorted(a.file_name for a in invalidated) == sorted(name(o) for o in STANDING)
    archived = snapshot(
        [file(o) for o in STANDING] + [file(ORBITS[2]), file(ORBITS[3], FileState.RESTORING, requested_at=T0)],
        [job("j1")],
        wants("j1", ORBITS[:4]),
    )
    assert {a.file_name for a in plan(archived, later, PLANNER).of(RequestRestore)} >= {name(o) for o in STANDING}
    assert FileState.FAILED not in {after.file(name(o)).state for o in STANDING}


@pytest.mark.parametrize("orbit", ORBITS[:5])
def test_a_missing_object_fails_its_file_with_the_key_and_the_answer(orbit: int) -> None:
    snap = _world()
    seen = restore.object_missing("archive", f"bf/{name(orbit)}", "HeadObject answered HTTP 404 (404)", NOW)
    (update,) = reconcile(snap, [], {name(orbit): seen}, NOW)
    assert (update.to_state, update.restore_expiry) == (FileState.FAILED, None)
    reason = str(update.reason)
    assert reason.startswith(restore.MISSING_OBJECT)
    assert f"s3://archive/bf/{name(orbit)}: HeadObject answered HTTP 404" in reason
    after = apply_updates(snap, [update], NOW)
    assert after.file(name(orbit)).error == update.reason
    assert reconcile(after, [], {name(orbit): seen}, NOW) == ()  # FAILED is terminal: once


@settings(max_examples=150, deadline=None)
@given(_events_strategy())
def test_no_event_restores_an_object_head_object_says_is_gone(events: list[RestoreEvent]) -> None:
    """A restore event for a deleted object was trusted when HeadObject answered 404 (ARCHIVED -> RESTORED)."""
    snap = _world()
    gone = {
        name(o): restore.object_missing("archive", name(o), "HeadObject answered HTTP 404 (404)", NOW) for o in ORBITS
    }
    updates = reconcile(snap, events, gone, NOW)
    assert {u.to_state for u in updates} <= {FileState.FAILED}
    assert {u.file_name for u in updates} == {name(o) for o in ORBITS[:5]}  # all but the one already FAILED


def test_a_refused_restore_is_reconciled_against_the_claim() -> None:
    """The step claims (ARCHIVED -> RESTORING, version + 1) before RestoreObject; what it sees after a refusal
    is reconciled against that claim, so its write is at the claimed version."""
    snap = _world()  # ORBITS[4] is ARCHIVED at version 0
    claimed = restore.claimed(snap, name(ORBITS[4]), 1, NOW)
    (update,) = reconcile(claimed, [], {name(ORBITS[4]): restore.observe_head({}, NOW)}, NOW)
    assert (update.expected_version, update.from_state, update.to_state) == (1, FileState.RESTORING, FileState.RESTORED)
    assert snap.file(name(ORBITS[4])).state is FileState.ARCHIVED  # the snapshot itself is unchanged
