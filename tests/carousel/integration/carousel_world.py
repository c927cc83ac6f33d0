"""Helpers of the carousel's integration tests: the stack's resources (from `local_env`), staged orbits,
call counters on the step's own clients, and a launcher that runs the real workers as local processes."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from carousel import inventory
from carousel.launcher import LaunchRequest
from carousel.runtime import Context, planner_config
from carousel.step import Step
from datacarousel import aws, naming
from datacarousel.contract import Env, FileAttr, JobState
from datacarousel.work_queues import WorkQueue, WorkQueues
from workbench.local.environment import template_dict
from workbench.local.launcher import LocalLauncher, launcher_from_env
from workbench.synthetic.generator import generate_orbit

# Orbits of June 2014 (other tests use other months); each test takes its own.
JUNE_2014 = 76971


@pytest.fixture(scope="session")
def orbit_files(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """Tiny synthetic orbits, generated once per session (fixed seed)."""
    out = tmp_path_factory.mktemp("carousel-orbits")
    made: dict[int, Path] = {}

    def get(orbit: int) -> Path:
        if orbit not in made:
            made[orbit] = generate_orbit(orbit, out, preset="tiny", seed=7)
        return made[orbit]

    return get


@dataclasses.dataclass
class World:
    env: dict[str, str]
    s3: Any
    sqs: Any
    ddb: Any
    orbit_files: Callable[[int], Path]

    @property
    def archive(self) -> str:
        return self.env[Env.ARCHIVE_BUCKET]

    @property
    def results(self) -> str:
        return self.env[Env.RESULTS_BUCKET]

    @property
    def work_queue(self) -> WorkQueue:
        """ComputeRadiance's work queue and dead-letter queue (found by name, as the carousel finds them)."""
        return WorkQueues(self.sqs, self.env[Env.STACK_NAME]).of("ComputeRadiance")

    def stage(self, orbits: Sequence[int], prefix: str, storage_class: str = "DEEP_ARCHIVE") -> list[str]:
        """Upload orbits (DEEP_ARCHIVE by default) under `prefix`; returns their file names."""
        names = []
        for orbit in orbits:
            path = self.orbit_files(orbit)
            name = naming.BasicFusionName.parse(path.name)
            self.s3.put_object(
                Bucket=self.archive,
                Key=naming.archive_key(name, prefix),
                Body=path.read_bytes(),
                StorageClass=storage_class,
            )
            names.append(name.file_name)
        return names

    def context(self, redrive_delays_s: tuple[int, ...] | None = None, **settings: Any) -> Context:
        """The carousel's context from the environment (as `python -m carousel step` builds it).

        Few workers at once: the test machine is small and shared (HSDS answers 503 when swamped).
        """
        ctx = Context.from_env()
        tuned = dataclasses.replace(ctx.settings, **{"max_index_workers": 1, "max_job_workers": 2, **settings})
        ctx = dataclasses.replace(ctx, settings=tuned, config=planner_config(tuned))
        return ctx if redrive_delays_s is None else dataclasses.replace(ctx, redrive_delays_s=redrive_delays_s)

    def inventory(self, ctx: Context, prefix: str) -> inventory.InventoryReport:
        return inventory.run(ctx.s3, ctx.tables.files, bucket=self.archive, prefix=prefix, now=time.time())

    def file_item(self, ctx: Context, name: str) -> dict[str, Any]:
        item = ctx.tables.files.get(name)
        assert item is not None, name
        return item

    def set_restore_delay(self, seconds: float | None) -> None:
        """moto's state manager: restores take `seconds` (counted from the upload); None: immediate."""
        transition: dict[str, Any] = (
            {"progression": "immediate"} if seconds is None else {"progression": "time", "seconds": seconds}
        )
        body = json.dumps({"model_name": "s3::keyrestore", "transition": transition}).encode()
        url = self.env[Env.AWS_ENDPOINT_URL].rstrip("/") + "/moto-api/state-manager/set-transition"
        request = urllib.request.Request(url, data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:  # loopback moto only
            assert response.status in (200, 201)


@pytest.fixture()
def world(local_env: Any, orbit_files: Callable[[int], Path]) -> World:
    return World(dict(local_env.env), aws.client("s3"), aws.client("sqs"), aws.client("dynamodb"), orbit_files)


class Calls:
    """Counts API calls a client makes (botocore's provide-client-params event), with their parameters."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail: Callable[[str, dict[str, Any]], bool] | None = None

    def watch(self, client: Any, *operations: str) -> None:
        service = client.meta.service_model.service_name
        for op in operations:
            # One handler per (Calls, operation): clients of one process may share an event trie.
            client.meta.events.register(
                f"provide-client-params.{service}.{op}", self._hook(op), unique_id=f"calls-{id(self)}-{op}"
            )

    def _hook(self, op: str) -> Callable[..., None]:
        def hook(params: dict[str, Any], **_: Any) -> None:
            if self.fail is not None and self.fail(op, params):
                raise RuntimeError(f"injected crash before {op}")
            self.calls.append((op, params))

        return hook

    def restores(self) -> Counter[str]:
        return Counter(p["Key"] for op, p in self.calls if op == "RestoreObject")

    def sent(self, queue_url: str) -> list[str]:
        return [p["MessageBody"] for op, p in self.calls if op == "SendMessage" and p["QueueUrl"] == queue_url]


class OnlyLauncher:
    """The local launcher, restricted to some job definitions (a test holds back the others)."""

    def __init__(self, inner: LocalLauncher, allowed: set[str]) -> None:
        self.inner = inner
        self.allowed = allowed

    def launch(self, request: LaunchRequest) -> list[str]:
        return self.inner.launch(request) if request.job_definition in self.allowed else []

    def active(self, job_definition: str) -> int:
        return self.inner.active(job_definition)


@pytest.fixture()
def launcher(local_env: Any) -> Iterator[LocalLauncher]:
    """The launcher `DC_LAUNCHER=local` gives: the template's job definitions as local processes."""
    made = launcher_from_env(aws.client("batch"), template_dict)
    assert isinstance(made, LocalLauncher)
    yield made
    try:
        made.wait(timeout=90)  # the drainers exit once their queue is empty
    except TimeoutError:
        made.stop_all()


def steps_until(
    steps: Sequence[Step],
    done: Callable[[], bool],
    *,
    timeout: float,
    pause: float = 1.0,
    after_each: Callable[[], None] | None = None,
) -> int:
    """Run the steps (concurrently when several: they race) until `done()`; returns the rounds run."""
    deadline = time.monotonic() + timeout
    rounds = 0
    with ThreadPoolExecutor(max_workers=max(1, len(steps))) as pool:
        while True:
            list(pool.map(lambda s: s.run(), steps))
            rounds += 1
            if after_each is not None:
                after_each()
            if done():
                return rounds
            if time.monotonic() > deadline:
                raise AssertionError(f"not done after {rounds} rounds ({timeout} s)")
            time.sleep(pause)


def job_state(ctx: Context, job_id: str) -> JobState:
    item = ctx.tables.jobs.get(job_id)
    assert item is not None
    return JobState(item["state"])


def restore_counts(ctx: Context, names: Sequence[str]) -> dict[str, int]:
    return {n: int((ctx.tables.files.get(n) or {}).get(FileAttr.RESTORE_COUNT, 0)) for n in names}
