"""Restore completion reconciliation: events are hints, observations win, repeats change nothing."""

from __future__ import annotations

import pytest
from carousel_builders import DAY, HOUR, T0, file, job, name, snapshot, wants
from hypothesis import given, settings
from hypothesis import strategies as st

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

ORBITS = list(range(20_000, 20_006))


def _world():
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


def _events_strategy():
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
def test_duplicated_and_reordered_events_change_nothing(events, rnd, copies) -> None:
    snap = _world()
    reference = reconcile(snap, events, {}, NOW)
    noisy = list(events) + [e for e in events for _ in range(copies)]
    rnd.shuffle(noisy)
    assert reconcile(snap, noisy, {}, NOW) == reference


@settings(max_examples=150, deadline=None)
@given(_events_strategy(), st.data())
def test_events_are_irrelevant_when_the_object_was_observed(events, data) -> None:
    snap = _world()
    status = data.draw(st.sampled_from(list(ObservedStatus)))
    expiry = T0 + 3 * DAY if status is ObservedStatus.RESTORED else None
    observed = {name(o): ObservedRestore(status, NOW, expiry) for o in ORBITS}
    kept = data.draw(st.lists(st.sampled_from(events), unique_by=id)) if events else []
    assert reconcile(snap, kept, observed, NOW) == reconcile(snap, events, observed, NOW)


@settings(max_examples=150, deadline=None)
@given(_events_strategy())
def test_reconciliation_is_idempotent(events) -> None:
    snap = _world()
    once = apply_updates(snap, reconcile(snap, events, {}, NOW), NOW)
    again = reconcile(once, events, {}, NOW)
    assert again == ()
