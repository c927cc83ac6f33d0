"""`map_ahead`: results in order, at most `workers` computed ahead of the consumer, errors where they belong."""

from __future__ import annotations

import threading
import time

import pytest

from datacarousel.chunkread.readahead import map_ahead


def test_results_come_in_order_though_computed_side_by_side() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def slow_square(x: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02 * (5 - x % 5))  # later items finish first
        with lock:
            running -= 1
        return x * x

    assert list(map_ahead(slow_square, range(12), 3)) == [x * x for x in range(12)]
    assert most == 3


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_no_more_than_workers_items_are_started_ahead_of_the_consumer(workers: int) -> None:
    started: list[int] = []

    def note(x: int) -> int:
        started.append(x)
        return x

    results = map_ahead(note, range(20), workers)
    for consumed, item in enumerate(results, start=1):
        assert item == consumed - 1
        time.sleep(0.01)  # time for the pool to run anything it was given
        assert len(started) <= consumed + workers


def test_an_error_is_raised_at_its_item_and_the_rest_is_not_started() -> None:
    started: list[int] = []

    def fail_at_three(x: int) -> int:
        started.append(x)
        if x == 3:
            raise ValueError("three")
        return x

    got: list[int] = []
    with pytest.raises(ValueError, match="three"):
        for item in map_ahead(fail_at_three, range(100), 2):
            got.append(item)
    assert got == [0, 1, 2]
    assert max(started) <= 5


def test_closing_the_consumer_waits_for_running_items_and_cancels_the_others() -> None:
    started: list[int] = []
    finished: list[int] = []

    def work(x: int) -> int:
        started.append(x)
        time.sleep(0.05)
        finished.append(x)
        return x

    results = map_ahead(work, range(100), 2)
    assert next(results) == 0
    results.close()
    assert sorted(started) == sorted(finished)  # nothing left running after close
    assert len(started) <= 4
