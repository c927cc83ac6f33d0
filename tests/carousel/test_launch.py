"""The pure launch decision: how many workers each backlog gets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carousel.launch import Pool, decide, to_start


def test_no_backlog_starts_nothing_even_with_room() -> None:
    assert to_start(Pool("index", depth=0, active=0, cap=4)) == 0


def test_backlog_gets_one_worker_per_share_up_to_the_cap() -> None:
    assert to_start(Pool("index", depth=5, active=0, cap=4, per_worker=2)) == 3
    assert to_start(Pool("index", depth=100, active=0, cap=4, per_worker=2)) == 4


def test_active_workers_count_against_the_cap() -> None:
    assert to_start(Pool("index", depth=100, active=3, cap=4)) == 1
    assert to_start(Pool("index", depth=100, active=4, cap=4)) == 0
    assert to_start(Pool("index", depth=1, active=2, cap=4)) == 0  # more active than the backlog needs


def test_decide_makes_one_request_per_pool_in_need_with_its_parameters() -> None:
    requests = decide(
        [
            Pool("datacarousel-index-file", depth=3, active=0, cap=2),
            Pool("datacarousel-record-metadata", depth=0, active=0, cap=1),
            Pool("ComputeRadiance", depth=1, active=0, cap=8, parameters={"mode": "queue"}),
        ]
    )
    assert [(r.job_definition, r.array_size, dict(r.parameters)) for r in requests] == [
        ("datacarousel-index-file", 2, {}),
        ("ComputeRadiance", 1, {"mode": "queue"}),
    ]


def test_bad_pool_is_refused() -> None:
    with pytest.raises(ValueError, match="bad pool"):
        Pool("x", depth=-1, active=0, cap=1)


@given(
    depth=st.integers(0, 10_000),
    active=st.integers(0, 100),
    cap=st.integers(0, 100),
    per_worker=st.integers(1, 50),
)
def test_never_exceeds_the_cap_and_starts_work_when_there_is_room(
    depth: int, active: int, cap: int, per_worker: int
) -> None:
    n = to_start(Pool("p", depth=depth, active=active, cap=cap, per_worker=per_worker))
    assert n >= 0
    assert active + n <= max(cap, active)  # never pushes past the cap
    if depth == 0:
        assert n == 0
    if depth > 0 and active == 0 and cap > 0:
        assert n >= 1  # a backlog with no worker always gets one
    assert n <= -(-depth // per_worker)  # never more than the backlog needs
