"""How many workers to start (pure): queue depth, workers already active, caps.

Each pool is one job definition draining one backlog. A pool with work gets
`ceil(depth / per_worker)` workers, at most `cap`, less those already active;
a pool without work gets none (an active worker drains and exits by itself).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from carousel.launcher import LaunchRequest


@dataclass(frozen=True)
class Pool:
    job_definition: str
    depth: int  # messages (or items) waiting
    active: int  # copies pending or running
    cap: int  # most copies at once
    per_worker: int = 1  # backlog one copy is expected to take
    parameters: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cap < 0 or self.per_worker < 1 or self.depth < 0 or self.active < 0:
            raise ValueError(f"bad pool {self}")


def to_start(pool: Pool) -> int:
    if pool.depth == 0:
        return 0
    wanted = min(math.ceil(pool.depth / pool.per_worker), pool.cap)
    return max(0, wanted - pool.active)


def decide(pools: Iterable[Pool]) -> list[LaunchRequest]:
    """One LaunchRequest per pool that needs more workers (array_size = how many)."""
    requests = []
    for pool in pools:
        n = to_start(pool)
        if n > 0:
            requests.append(
                LaunchRequest(
                    job_definition=pool.job_definition,
                    parameters=dict(pool.parameters),
                    array_size=n,
                    name=pool.job_definition,
                )
            )
    return requests
