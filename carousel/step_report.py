"""What one carousel step did: counts and job ids, filled in by each part of the step as it goes.

Its own module so that every part (`carousel.observe`, `carousel.dead_letters`, `carousel.apply`,
`carousel.complete`, `carousel.launching`) can record into it without importing `carousel.step`,
which wires them; `carousel.step` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StepReport:
    started_at: float
    seconds: float = 0.0
    events_received: int = 0
    events_deleted: int = 0
    events_malformed: int = 0
    heads: int = 0
    restores: int = 0
    renewals: int = 0
    restore_failures: int = 0
    index_requests: int = 0
    index_repeats_held: int = 0  # stale index requests not repeated because the index queue is not empty
    releases: int = 0
    done: int = 0
    failed_job_files: int = 0
    failed_files: int = 0
    stray_index_requests: int = 0  # dead-lettered index requests that said nothing about their file
    unattributed_dead_letters: int = 0  # dead letters naming no file or job: logged, then deleted
    redriven: int = 0  # dead letters of transient failures sent back to their queue (with a delay)
    invalidated: int = 0
    completed_jobs: list[str] = field(default_factory=list)
    open_jobs: int = 0  # jobs still OPEN after this step (reducing ones included): `--until-done` stops at 0
    reducing: list[str] = field(default_factory=list)  # done jobs whose reducer has not finished yet
    reduce_requests: int = 0
    conflicts: int = 0
    launched: dict[str, int] = field(default_factory=dict)
    launch_deferred: bool = False  # another step held the launch lease
    window_bytes: int = 0
    window_files: int = 0
    actions: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)
