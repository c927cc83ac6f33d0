"""Destructive faults in an environment of this module's own (never the shared `local_env`):
HSDS stopped and restarted while index_file workers are busy.

moto restart: not run as a scenario. moto keeps every bucket, queue and table in memory, so a
restarted moto holds nothing: there is no "state in the services" left for a step to pick up.
moto's recorder (MOTO_ENABLE_RECORDING + /moto-api/recorder/replay-recording) can replay the
requests into a fresh server, but a replay re-runs ReceiveMessage/DeleteMessage with stale receipt
handles and recreates the stack's resources under new random physical names, so it does not
reproduce the state either. See docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from carousel.runtime import TABLE_SETTINGS, Context
from carousel.step import queue_backlog
from datacarousel import aws, hsds_accounts
from datacarousel.contract import Env, FileAttr, FileState
from datacarousel.hsds_accounts import HsdsRole
from datacarousel.messages import IndexRequest
from tests.reliability import pipeline_scenarios as scen
from tests.reliability.reliability_harness import (
    FaultKit,
    RecordedWrites,
    ScenarioResult,
    drain_messages,
    hsds_domains,
    make_orbits,
    record_scenario,
    start_worker,
    stop_all,
    update_doc,
    wait_until,
)
from workbench.local import environment, hsds_server, process
from workbench.local.environment import LocalEnvironment, Paths
from workbench.local.errors import StartupFailed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_ORBIT = 30900


@pytest.fixture(scope="module")
def own_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    # (`up` itself tries again when HSDS misses its 10 s start-up limit on a swamped machine.)
    with environment.running(tmp_path_factory.mktemp("own-env")) as env:
        yield env


def stop_hsds(state_dir: Path) -> None:
    paths = Paths(state_dir.resolve())
    record = process.read_record(paths.pid_file(hsds_server.NAME))
    assert record is not None
    process.stop(record, signal.SIGINT)


def start_hsds(state_dir: Path, env: dict[str, str]) -> None:
    """Start HSDS again exactly as `up` did: same storage, passwords and socket directory (same endpoint)."""
    for attempt in range(1, 4):
        try:
            _start_hsds_once(state_dir, env)
            return
        except StartupFailed:
            if attempt == 3:
                raise
            time.sleep(3)


def _start_hsds_once(state_dir: Path, env: dict[str, str]) -> None:
    paths = Paths(state_dir.resolve())
    state = json.loads(paths.state_file.read_text())
    socket_dir = Path(state["socket_dir"])
    for sock in socket_dir.glob("*.sock"):
        sock.unlink()
    record, endpoint, dn_urls = hsds_server.start(
        root_dir=paths.hsds_root,
        bucket=state["hsds_bucket"],
        password_file=paths.password_file,
        socket_dir=socket_dir,
        override_file=paths.override_file,
        log_file=paths.logs / "hsds.log",
        dn_count=2,
        base_env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        s3=hsds_server.S3Access(
            gateway=env[Env.AWS_ENDPOINT_URL],
            access_key_id=env[Env.AWS_ACCESS_KEY_ID],
            secret_access_key=env[Env.AWS_SECRET_ACCESS_KEY],
            region=env[Env.AWS_REGION],
        ),
        admin_user=hsds_accounts.username(HsdsRole.ADMIN, env[Env.HS_USERNAME]),
    )
    assert endpoint == env[Env.HS_ENDPOINT]
    try:
        hsds_server.wait_ready(endpoint, dn_urls, record, timeout=90)
    except StartupFailed:
        process.stop(record, signal.SIGINT)
        raise
    process.write_record(paths.pid_file(hsds_server.NAME), record.with_children(process.live_children(record)))


def hsds_outage(
    env_obj: LocalEnvironment,
    work: Path,
    *,
    files: int,
    outages: int,
    seed: int,
    first_orbit: int = OUTAGE_ORBIT,
    down_s: float = 8.0,
) -> ScenarioResult:
    rng = random.Random(seed)
    env = dict(env_obj.env)
    started = time.monotonic()
    writes = RecordedWrites.start(env)
    s3, sqs = aws.client("s3"), aws.client("sqs")
    archive = env[Env.ARCHIVE_BUCKET]
    paths = make_orbits(list(range(first_orbit, first_orbit + files)), work / "orbits")
    prefix = f"reliability/hsds-{uuid.uuid4().hex[:8]}/"
    keys = scen.upload(s3, archive, list(paths.values()), prefix, "STANDARD")
    names = sorted(keys)
    for n in names:
        body = IndexRequest(bucket=archive, key=keys[n]).to_json()
        sqs.send_message(QueueUrl=env[Env.INDEX_QUEUE_URL], MessageBody=body)
    kit = FaultKit(work / "kit")
    wenv = kit.env(env)
    argv = ["index_file", "--visibility-timeout", "5", "--wait-seconds", "1"]
    procs = [start_worker(argv, wenv, work / f"index-{i}.log") for i in range(2)]
    ctx = Context.from_env(need=TABLE_SETTINGS)

    def indexed() -> int:
        items = ctx.tables.files.get_many(names)
        return sum(1 for n in names if items.get(n, {}).get(FileAttr.STATE) == FileState.INDEXED.value)

    injected = 0
    last_back = time.monotonic()
    try:
        for _ in range(outages):
            time.sleep(rng.uniform(0.5, 4.0))
            stop_hsds(env_obj.state_dir)
            injected += 1
            time.sleep(down_s)
            start_hsds(env_obj.state_dir, env)
            last_back = time.monotonic()

        def finished() -> bool:
            # Done when the queue holds nothing (visible or in flight): each file is indexed, or its request
            # went to the dead-letter queue (counted below; no carousel runs here to redrive it).
            if queue_backlog(sqs, env[Env.INDEX_QUEUE_URL]) == 0:
                return True
            if not [p for p in procs if p.poll() is None]:
                procs.append(start_worker(argv, wenv, work / f"index-{len(procs)}.log"))
            return False

        wait_until(finished, timeout=300, pause=1.0, what="index backlog after HSDS outages")
        recover_s = time.monotonic() - last_back
    finally:
        stop_all(procs)
    dead = drain_messages(sqs, env[Env.INDEX_DLQ_URL])
    kwargs = scen.hs_kwargs(env)
    domains = [d for d in hsds_domains(env[Env.HSDS_FOLDER], **kwargs) if d.rsplit("/", 1)[-1] in set(names)]
    linked = sorted({d.rsplit("/", 1)[-1] for d in domains})
    # Links counted from the HSDS request log, state versions from the files table's stream.
    counts, evidence = writes.duplicates(names=names, domains_of=names, linked=linked)
    # A domain built before the outage still reads after it (the marker index_file writes last).
    import h5pyd  # noqa: PLC0415

    readable = 0
    for d in domains:
        with h5pyd.File(d, "r", **kwargs) as f:
            readable += int("datacarousel_indexed" in f.attrs and "MODIS" in f)
    done = indexed()
    result = ScenarioResult(
        scenario="HSDS stopped and restarted mid-indexing",
        runs=1,
        faults=injected,
        messages_in=len(names),
        results_out=readable,
        lost=len(names) - done + (len(names) - readable),
        dead_lettered=len(dead),
        recover_s=round(recover_s, 1),
        seconds=round(time.monotonic() - started, 1),
        notes=(
            f"{outages} outage(s) of {down_s:.0f} s (SIGINT to HSDS, restarted on the same storage), "
            f"2 index_file workers, seed {seed}; {scen.evidence_note(evidence)}"
        ),
        extra={"processes": len(procs), "writes": evidence},
    )
    result.set_duplicates(counts)
    result.add_reasons(
        str(m.get("MessageAttributes", {}).get("FailureReason", {}).get("StringValue", "exceeded max receives"))
        for m in dead
    )
    return result


def test_hsds_outage_loses_nothing(own_env: LocalEnvironment, tmp_path: Path) -> None:
    r = hsds_outage(own_env, tmp_path, files=3, outages=1, seed=3)
    record_scenario(r)
    update_doc()
    assert r.faults == 1
    assert r.lost == 0 and r.duplicated == 0 and r.dead_lettered == 0, (r, r.extra["writes"])
