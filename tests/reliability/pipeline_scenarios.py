"""The scenarios themselves, parameterised by size and repetitions, shared by the test suite (small) and
bench/bench_reliability.py (long). Each returns a `ScenarioResult` measured from the resources."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from reliability_harness import (
    ROOT,
    FaultKit,
    ScenarioResult,
    delete_messages,
    drain_messages,
    hsds_domains,
    list_keys,
    make_orbits,
    sigkill,
    start_worker,
    stop_all,
    wait_until,
)

from carousel import inventory, jobs
from carousel.query import JobQuery
from carousel.runtime import TABLE_SETTINGS, Context
from carousel.step import queue_backlog
from carousel.store import to_seconds
from datacarousel import aws, naming, registry, work_queues
from datacarousel.contract import (
    FAILURE_REASON_ATTRIBUTE,
    Env,
    FileAttr,
    FileState,
    JobDefinitionName,
    JobFileAttr,
    JobState,
)
from datacarousel.launcher import local_launcher_from_env
from datacarousel.messages import IndexRequest, WorkItem
from datacarousel.work_queues import WorkQueues

STEP_TIMEOUT_S = 1200.0  # seconds a `carousel step` process may take before the run fails


def hs_kwargs(env: Mapping[str, str]) -> dict[str, str]:
    return {"endpoint": env[Env.HS_ENDPOINT], "username": env[Env.HS_USERNAME], "password": env[Env.HS_PASSWORD]}


def upload(s3: Any, bucket: str, paths: Sequence[Path], prefix: str, storage_class: str) -> dict[str, str]:
    """file name -> key."""
    keys = {}
    for path in paths:
        name = naming.BasicFusionName.parse(path.name)
        key = naming.archive_key(name, prefix)
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), StorageClass=storage_class)
        keys[name.file_name] = key
    return keys


def _template() -> dict[str, Any]:
    from carousel.__main__ import template_dict  # noqa: PLC0415

    return template_dict()


# --- load: inventory -> restore -> index -> record -> two jobs ------------------------------------------


def load_pipeline(
    env: Mapping[str, str],
    work: Path,
    kit: FaultKit,
    *,
    files: int,
    first_orbit: int,
    racing_steps: int = 2,
    max_workers: int = 3,
    timeout: float = 600.0,
    round_pause_s: float = 3.0,
    scenario: str = "load: inventory→restore→index→record→2 jobs",
    source: str = "pytest",
) -> ScenarioResult:
    """`files` generated orbits in Deep Archive, two overlapping jobs, `racing_steps` carousel steps at once
    per round (real `python -m carousel step` processes, local launcher: several workers of each kind)."""
    started = time.monotonic()
    ctx = Context.from_env()
    s3 = ctx.s3
    orbits = list(range(first_orbit, first_orbit + files))
    paths = make_orbits(orbits, work / "orbits")
    prefix = f"reliability/load-{uuid.uuid4().hex[:8]}/"
    keys = upload(s3, env[Env.ARCHIVE_BUCKET], list(paths.values()), prefix, "DEEP_ARCHIVE")
    names = sorted(keys)
    inventory.run(s3, ctx.tables.files, bucket=env[Env.ARCHIVE_BUCKET], prefix=prefix, now=time.time())
    job_a = jobs.submit(
        ctx.tables,
        ctx.config,
        owner="alice",
        definition=registry.get("ComputeRadiance"),
        query=JobQuery(orbit_min=orbits[0], orbit_max=orbits[-1]),
    ).job_id
    half = orbits[len(orbits) // 2]
    job_b = jobs.submit(
        ctx.tables,
        ctx.config,
        owner="bob",
        definition=registry.get("ComputeRadiance"),
        query=JobQuery(orbit_min=half, orbit_max=orbits[-1]),
    ).job_id
    expected = {job_a: names, job_b: [n for n in names if naming.BasicFusionName.parse(n).orbit >= half]}
    submitted = time.time()

    step_env = kit.env(env)
    step_env.update(
        {
            Env.PROBE_AFTER_S: "1",
            Env.INDEX_RETRY_S: "120",
            Env.MAX_INDEX_WORKERS: str(max_workers),
            Env.MAX_JOB_WORKERS: str(max_workers),
        }
    )
    launcher = local_launcher_from_env(_template(), step_env)
    peak: Counter[str] = Counter()

    def done() -> bool:
        for d in (JobDefinitionName.INDEX_FILE.value, JobDefinitionName.RECORD_METADATA.value, "ComputeRadiance"):
            peak[d] = max(peak[d], launcher.active(d))
        states = [(ctx.tables.jobs.get(j) or {}).get("state") for j in expected]
        if states != [JobState.COMPLETE.value] * len(expected):
            return False
        items = ctx.tables.files.get_many(names)
        return all(items.get(n, {}).get(FileAttr.METADATA_AT) for n in names)

    rounds = 0
    step_logs = work / "logs"
    step_logs.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(max_workers=racing_steps) as pool:
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"load not finished after {rounds} rounds ({timeout:.0f} s)")
            rounds += 1

            def one_step(i: int, r: int = rounds) -> int:
                with (step_logs / f"step-{r}-{i}.log").open("wb") as out:
                    return subprocess.run(
                        [sys.executable, "-m", "carousel", "step"],
                        check=False,
                        env=step_env,
                        cwd=ROOT,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        # A step composes at least one month of a completed job: ~440 orbit results take
                        # 1-8 min here, quiet or busy. Its Batch timeout is 1 h.
                        timeout=STEP_TIMEOUT_S,
                    ).returncode

            list(pool.map(one_step, range(racing_steps)))
            time.sleep(round_pause_s)  # let the workers run a little between steps
    # The workers drain and exit by themselves; the resources below are what counts, so a worker still
    # running (another backlog of the shared environment) is noted, not waited for forever.
    try:
        wait_until(lambda: all(launcher.active(d.value) == 0 for d in JobDefinitionName), timeout=60, what="exit")
        still_active: dict[str, int] = {}
    except AssertionError:
        still_active = {d.value: launcher.active(d.value) for d in JobDefinitionName if launcher.active(d.value)}
    elapsed = time.monotonic() - started

    # --- the resources ---
    items = ctx.tables.files.get_many(names)
    folder = env[Env.HSDS_FOLDER]
    domains = [d for d in hsds_domains(folder, **hs_kwargs(env)) if d.rsplit("/", 1)[-1] in set(names)]
    domain_counts = Counter(d.rsplit("/", 1)[-1] for d in domains)
    lost_domains = [n for n in names if domain_counts[n] == 0]
    extra_domains = sum(c - 1 for c in domain_counts.values() if c > 1)
    wrong_state = [n for n in names if items.get(n, {}).get(FileAttr.STATE) != FileState.INDEXED.value]
    restores = {n: int(items.get(n, {}).get(FileAttr.RESTORE_COUNT, 0)) for n in names}
    results_bucket = env[Env.RESULTS_BUCKET]
    lost_results: list[str] = []
    extra_results: list[str] = []
    job_file_states: Counter[str] = Counter()
    result_times: list[float] = []
    for job_id, job_names in expected.items():
        want = {naming.result_key(job_id, naming.BasicFusionName.parse(n)) for n in job_names}
        reduced = {naming.reduced_marker_key(job_id)}  # the reducer's marker: not an orbit result
        have = {
            k
            for k in list_keys(s3, results_bucket, f"{naming.RESULTS_PREFIX}/{job_id}/")
            if "/composites/" not in k and k not in reduced
        }
        lost_results += sorted(want - have)
        extra_results += sorted(have - want)
        for k in want & have:
            head = s3.head_object(Bucket=results_bucket, Key=k)
            result_times.append(head["LastModified"].timestamp())
        for row in ctx.tables.job_files.of_job(job_id):
            job_file_states[str(row[JobFileAttr.STATE])] += 1
    calls = kit.calls()
    restore_calls = Counter(
        c.get("key") for c in calls if c["op"] == "RestoreObject" and str(c.get("key", "")).startswith(prefix)
    )
    # Work items sent for this scenario's jobs, per (job, file): the shared environment may hold other
    # tests' open jobs, whose releases these steps send too.
    work_queue = work_queues.queue_name(env[Env.STACK_NAME], "ComputeRadiance")
    work_sends = Counter(
        (c.get("job_id"), c.get("file_name"))
        for c in calls
        if c["op"] == "SendMessage"
        and c.get("queue", "") == work_queue
        and c.get("job_id") in expected
        and c.get("file_name")  # a ReduceRequest names no file
    )
    work_items = sum(len(v) for v in expected.values())

    def stage(attr: str) -> dict[str, Any]:
        times = sorted(t for t in (to_seconds(items.get(n, {}).get(attr)) for n in names) if t is not None)
        return _rate(times, submitted)

    stages = {
        "restore requested": stage(FileAttr.RESTORE_REQUESTED_AT),
        "indexed": stage(FileAttr.INDEXED_AT),
        "metadata recorded": stage(FileAttr.METADATA_AT),
        "job results": _rate(sorted(result_times), submitted),
    }
    result = ScenarioResult(
        scenario=scenario,
        runs=1,
        faults=0,
        messages_in=len(names) + work_items,
        results_out=len(names) - len(lost_domains) + work_items - len(lost_results),
        lost=len(lost_domains) + len(lost_results) + len(wrong_state),
        duplicated=extra_domains
        + len(extra_results)
        + sum(max(0, c - 1) for c in restores.values())
        + sum(max(0, c - 1) for c in restore_calls.values())
        + sum(c - 1 for c in work_sends.values()),
        seconds=round(elapsed, 1),
        source=source,
        notes=(
            f"{files} files, jobs of {len(expected[job_a])} and {len(expected[job_b])} files (shared restores), "
            f"{racing_steps} racing steps/round, {rounds} rounds, peak workers {dict(peak)}; "
            + ", ".join(f"{k} {v['files']} in {v['span_s']} s ({v['per_s']}/s)" for k, v in stages.items())
        ),
        extra={
            "stages": stages,
            "rounds": rounds,
            "peak_workers": dict(peak),
            "worker_caps": {
                JobDefinitionName.INDEX_FILE.value: max_workers,
                JobDefinitionName.RECORD_METADATA.value: 1,
                "ComputeRadiance": max_workers,
            },
            "job_file_states": dict(job_file_states),
            "restore_counts": {str(k): v for k, v in Counter(restores.values()).items()},
            "restore_calls": len(restore_calls),
            "work_sends": sum(work_sends.values()),
            "work_items_sent_twice": sorted(f"{j}/{f}" for (j, f), c in work_sends.items() if c > 1),
            "lost_domains": lost_domains,
            "lost_results": lost_results,
            "extra_results": extra_results,
            "wrong_state": wrong_state,
            "jobs": list(expected),
            "workers_still_active": still_active,
        },
    )
    return result


def _rate(times: Sequence[float], since: float) -> dict[str, Any]:
    if not times:
        return {"files": 0, "span_s": 0.0, "per_s": 0.0}
    span = max(times[-1] - min(times[0], since), 1.0)  # the items' timestamps are whole seconds
    return {"files": len(times), "span_s": round(span, 1), "per_s": round(len(times) / span, 2)}


# --- bad input: index queue, work queue, queries ---------------------------------------------------------


def bad_input(
    env: Mapping[str, str], work: Path, kit: FaultKit, *, first_orbit: int, source: str = "pytest"
) -> ScenarioResult:
    """Good and bad index requests and work items side by side, through the real loader, index_file and
    ComputeRadiance processes. Each bad one must end in its DLQ with a reason; every good one completes."""
    started = time.monotonic()
    s3, sqs = aws.client("s3"), aws.client("sqs")
    archive = env[Env.ARCHIVE_BUCKET]
    from datacarousel.synthetic.generator import generate_orbit  # noqa: PLC0415

    good_orbits = [first_orbit, first_orbit + 1, first_orbit + 2]
    good = make_orbits(good_orbits, work / "good")
    bad_dir = work / "bad"
    bad_paths = {
        d: generate_orbit(first_orbit + 10 + i, bad_dir / d, preset="tiny", seed=3, defects=(d,))
        for i, d in enumerate(("truncated", "not_hdf5", "bad_name"))
    }
    prefix = f"reliability/bad-{uuid.uuid4().hex[:8]}/"
    # Readable objects (STANDARD), so the real loader queues them.
    good_keys = upload(s3, archive, list(good.values()), prefix, "STANDARD")
    bad_keys: dict[str, str] = {}
    for defect, path in bad_paths.items():
        key = f"{prefix}{path.name}"
        s3.put_object(Bucket=archive, Key=key, Body=path.read_bytes(), StorageClass="STANDARD")
        bad_keys[defect] = key
    # Deleted between listing and indexing: the loader lists it, then it disappears.
    vanishing = make_orbits([first_orbit + 20], work / "vanish")[first_orbit + 20]
    vanish_key = upload(s3, archive, [vanishing], prefix, "STANDARD")
    # Still archived: the loader lists it, looks at it (HeadObject) and leaves it out. (Queued by hand it
    # is no bad input either: index_file leaves its request on the queue for later, tests/index_file.
    # Requests naming anything but an archive object are: "results bucket" below.)
    archived = make_orbits([first_orbit + 21], work / "archived")[first_orbit + 21]
    upload(s3, archive, [archived], prefix + "cold/", "DEEP_ARCHIVE")

    index_url, index_dlq = env[Env.INDEX_QUEUE_URL], env[Env.INDEX_DLQ_URL]
    wenv = kit.env(env)
    loader = subprocess.run(
        [sys.executable, "-m", "loader", "--prefix", prefix],
        check=False,
        env=wenv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loader.returncode == 0, loader.stderr[-3000:]
    loader_report = json.loads(loader.stdout)
    for key in vanish_key.values():
        s3.delete_object(Bucket=archive, Key=key)
    hand_made = {
        "malformed JSON": "{not json",
        "wrong types": json.dumps({"kind": "index-request", "bucket": archive, "key": 5, "size": "big"}),
        "unknown keys": json.dumps({"kind": "index-request", "bucket": archive, "key": "x.h5", "exec": "rm -rf /"}),
        "oversized": json.dumps({"kind": "index-request", "bucket": archive, "key": "k" * 300_000}),
        "empty body": " ",
        "injection in key": IndexRequest(bucket=archive, key="../../etc/passwd' OR '1'='1").to_json(),
        "results bucket": IndexRequest(bucket=env[Env.RESULTS_BUCKET], key=next(iter(good_keys.values()))).to_json(),
        "no such bucket": IndexRequest(
            bucket="no-such-bucket-" + uuid.uuid4().hex[:6], key=next(iter(good_keys.values()))
        ).to_json(),
    }
    sent_by_hand = 0
    refused_by_sqs: list[str] = []
    for label, body in hand_made.items():
        try:
            sqs.send_message(QueueUrl=index_url, MessageBody=body)
            sent_by_hand += 1
        except Exception as exc:  # SQS itself refuses > 256 KiB bodies: the bad input never enters
            refused_by_sqs.append(f"{label}: {type(exc).__name__}")

    expected_good = set(good_keys.values())
    ctx = Context.from_env(need=TABLE_SETTINGS)
    good_names = sorted(good_keys)
    procs = [
        start_worker(["index_file", "--visibility-timeout", "20", "--wait-seconds", "1"], wenv, work / f"index-{i}.log")
        for i in range(2)
    ]

    def good_indexed() -> bool:
        items = ctx.tables.files.get_many(good_names)
        return all(items.get(n, {}).get(FileAttr.STATE) == FileState.INDEXED.value for n in good_names)

    try:
        wait_until(good_indexed, timeout=300, what="good files indexed")
        for p in procs:
            p.wait(timeout=300)
    finally:
        stop_all(procs)
    index_dead = [m for m in drain_messages(sqs, index_dlq) if _mentions(m, prefix, archive)]
    index_reasons = [_reason(m) for m in index_dead]

    # Work items: a good one, and bad ones, through ComputeRadiance's queue worker.
    job_id = f"rel-bad-{uuid.uuid4().hex[:8]}"
    radiance = WorkQueues(sqs, env[Env.STACK_NAME]).of("ComputeRadiance")
    work_url, work_dlq = radiance.url, radiance.dead_letter_url
    good_name = good_names[0]
    items = [
        WorkItem(job_id, "ComputeRadiance", good_name, archive, good_keys[good_name]).to_json(),
        WorkItem(job_id, "ComputeRadiance", bad_paths["truncated"].name, archive, bad_keys["truncated"]).to_json(),
        WorkItem(job_id, "ComputeRadiance", bad_paths["not_hdf5"].name, archive, bad_keys["not_hdf5"]).to_json(),
        WorkItem(job_id, "ComputeRadiance", good_name, archive, prefix + "deleted/" + good_name).to_json(),
        json.dumps({"kind": "work-item", "job_id": job_id, "file_name": 7}),
    ]
    for body in items:
        sqs.send_message(QueueUrl=work_url, MessageBody=body)
    proc = start_worker(
        ["batch_jobs.compute_radiance", "queue", "--resolution", "0.5", "--vza-max", "18"], wenv, work / "radiance.log"
    )
    try:
        proc.wait(timeout=600)
    finally:
        stop_all([proc])
    results = list_keys(s3, env[Env.RESULTS_BUCKET], f"{naming.RESULTS_PREFIX}/{job_id}/")
    work_dead = [m for m in drain_messages(sqs, work_dlq) if job_id in m.get("Body", "")]
    work_reasons = [_reason(m) for m in work_dead]
    # Leave the dead letters for nobody else to trip over (the carousel would record them).
    delete_messages(sqs, index_dlq, index_dead)
    delete_messages(sqs, work_dlq, work_dead)

    items_now = ctx.tables.files.get_many(good_names)
    lost_good = [n for n in good_names if items_now.get(n, {}).get(FileAttr.STATE) != FileState.INDEXED.value]
    # The bad-name file is never queued (the loader skips it and says so): the other bad files are.
    bad_index_in = len(bad_keys) - 1 + len(vanish_key) + sent_by_hand
    result = ScenarioResult(
        scenario="bad input: index + work queues",
        runs=1,
        faults=bad_index_in + 4,
        messages_in=len(expected_good) + bad_index_in + len(items),
        results_out=len(expected_good) - len(lost_good) + len(results),
        lost=len(lost_good) + (1 - len(results)) + max(0, bad_index_in - len(index_dead)) + max(0, 4 - len(work_dead)),
        duplicated=max(0, len(results) - 1),
        dead_lettered=len(index_dead) + len(work_dead),
        seconds=round(time.monotonic() - started, 1),
        source=source,
        notes=(
            f"loader queued {loader_report['queued']} (skipped {loader_report['skipped']}); "
            f"refused by SQS before entering: {refused_by_sqs or 'none'}"
        ),
        extra={
            "index_reasons": index_reasons,
            "work_reasons": work_reasons,
            "results": results,
            "loader": loader_report,
            "sent_by_hand": sent_by_hand,
            "bad_index_in": bad_index_in,
        },
    )
    result.add_reasons(index_reasons + work_reasons)
    return result


def _reason(message: Mapping[str, Any]) -> str:
    attr = message.get("MessageAttributes", {}).get(FAILURE_REASON_ATTRIBUTE, {})
    return str(attr.get("StringValue") or "exceeded max receives (no reason attribute)")


def _mentions(message: Mapping[str, Any], *needles: str) -> bool:
    body = message.get("Body", "")
    return any(n in body for n in needles) or body.startswith("{not json") or body.strip() in ("", "(empty body)")


# --- SIGKILL of workers in the middle of their work ------------------------------------------------------


def kill_workers(
    env: Mapping[str, str],
    work: Path,
    kit: FaultKit,
    *,
    worker: str,
    files: int,
    first_orbit: int,
    kills: int,
    seed: int,
    workers: int = 3,
    visibility: int = 6,
    source: str = "pytest",
) -> ScenarioResult:
    """`workers` drainers of one kind on `files` messages; `kills` times, at a random moment (fixed seed),
    a random busy worker gets SIGKILL and a fresh one replaces it. Then: every message's work is done
    exactly once in the resources (one domain per file / one result per item), nothing dead-lettered."""
    rng = random.Random(seed)
    started = time.monotonic()
    s3, sqs = aws.client("s3"), aws.client("sqs")
    archive = env[Env.ARCHIVE_BUCKET]
    orbits = list(range(first_orbit, first_orbit + files))
    paths = make_orbits(orbits, work / "orbits")
    prefix = f"reliability/kill-{uuid.uuid4().hex[:8]}/"
    keys = upload(s3, archive, list(paths.values()), prefix, "STANDARD")
    names = sorted(keys)
    wenv = kit.env(env)
    job_id = f"rel-kill-{uuid.uuid4().hex[:8]}"
    if worker == "index_file":
        url, dlq = env[Env.INDEX_QUEUE_URL], env[Env.INDEX_DLQ_URL]
        bodies = [IndexRequest(bucket=archive, key=keys[n]).to_json() for n in names]
        argv = ["index_file", "--visibility-timeout", str(visibility), "--wait-seconds", "1"]
    else:
        radiance = WorkQueues(sqs, env[Env.STACK_NAME]).of("ComputeRadiance")
        url, dlq = radiance.url, radiance.dead_letter_url
        bodies = [WorkItem(job_id, "ComputeRadiance", n, archive, keys[n]).to_json() for n in names]
        argv = ["batch_jobs.compute_radiance", "queue", "--visibility-timeout", str(visibility)]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    ctx = Context.from_env(need=TABLE_SETTINGS)
    results_bucket = env[Env.RESULTS_BUCKET]

    def outputs() -> set[str]:
        if worker == "index_file":
            items = ctx.tables.files.get_many(names)
            return {n for n in names if items.get(n, {}).get(FileAttr.STATE) == FileState.INDEXED.value}
        return {k.rsplit("/", 1)[-1] for k in list_keys(s3, results_bucket, f"{naming.RESULTS_PREFIX}/{job_id}/")}

    procs: list[subprocess.Popen[bytes]] = []
    serial = 0

    def spawn() -> None:
        nonlocal serial
        serial += 1
        procs.append(start_worker(argv, wenv, work / f"{worker}-{serial}.log"))

    for _ in range(workers):
        spawn()
    killed = 0
    last_fault = time.monotonic()
    try:
        while killed < kills and len(outputs()) < len(names):
            time.sleep(rng.uniform(0.5, 3.0))
            alive = [p for p in procs if p.poll() is None]
            if not alive:
                spawn()
                continue
            if sigkill(rng.choice(alive)):
                killed += 1
                last_fault = time.monotonic()
                spawn()

        # Replace drainers that exited on an empty queue while killed messages were still invisible.
        def finished() -> bool:
            # Done when the queue holds nothing (visible or in flight): the work is in the resources,
            # or its message went to the dead-letter queue (counted below).
            if queue_backlog(sqs, url) == 0:
                return True
            if not [p for p in procs if p.poll() is None]:
                spawn()
            return False

        recover = wait_until(finished, timeout=600, pause=1.0, what=f"{worker} backlog done after kills")
        recover_s = time.monotonic() - last_fault
        del recover
        for p in procs:
            p.wait(timeout=120)
    finally:
        stop_all(procs)
    dead = [m for m in drain_messages(sqs, dlq) if prefix in m.get("Body", "") or job_id in m.get("Body", "")]
    delete_messages(sqs, dlq, dead)
    done = outputs()
    duplicated = 0
    if worker == "index_file":
        domains = [
            d for d in hsds_domains(env[Env.HSDS_FOLDER], **hs_kwargs(env)) if d.rsplit("/", 1)[-1] in set(names)
        ]
        counts = Counter(d.rsplit("/", 1)[-1] for d in domains)
        duplicated = sum(c - 1 for c in counts.values() if c > 1)
        produced = len(counts)
        staging = _staging_leftovers(env)
    else:
        produced = len(done)
        staging = 0
    result = ScenarioResult(
        scenario=f"SIGKILL {worker} mid-work",
        runs=1,
        faults=killed,
        messages_in=len(names),
        results_out=produced,
        lost=len(names) - len(done),
        duplicated=duplicated,
        dead_lettered=len(dead),
        recover_s=round(recover_s, 1),
        seconds=round(time.monotonic() - started, 1),
        source=source,
        notes=(
            f"{workers} workers, visibility {visibility} s, seed {seed}; "
            f"{serial} processes started in all; staging domains left by killed links: {staging}"
        ),
        extra={"staging_leftovers": staging, "processes": serial},
    )
    result.add_reasons(_reason(m) for m in dead)
    return result


def _staging_leftovers(env: Mapping[str, str]) -> int:
    from datacarousel import hsds  # noqa: PLC0415

    folder = hsds.staging_folder(env[Env.HSDS_FOLDER] + "x.h5")
    try:
        return len(hsds_domains(folder, **hs_kwargs(env)))
    except Exception:  # no staging folder at all
        return 0


# --- throttling at the client ------------------------------------------------------------------------------


def throttled_pipeline(
    env: Mapping[str, str],
    work: Path,
    *,
    rate: float,
    files: int,
    first_orbit: int,
    seed: int,
    source: str = "pytest",
) -> ScenarioResult:
    """The load pipeline with a fraction `rate` of every worker's and step's S3/SQS/DynamoDB requests answered
    with a throttling error (503 SlowDown / 400 ThrottlingException)."""
    kit = FaultKit(work / "kit", throttle_rate=rate, seed=seed)
    result = load_pipeline(
        env,
        work,
        kit,
        files=files,
        first_orbit=first_orbit,
        racing_steps=1,
        max_workers=2,
        scenario=f"throttling {int(rate * 100)}% of AWS requests",
        source=source,
    )
    result.faults = kit.throttles()
    result.notes = f"seed {seed}; " + result.notes
    return result
