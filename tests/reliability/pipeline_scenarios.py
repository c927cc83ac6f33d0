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
    JobAttr,
    JobDefinitionName,
    JobFileAttr,
    JobFileState,
    JobState,
)
from datacarousel.messages import IndexRequest, WorkItem
from datacarousel.work_queues import WorkQueues
from tests.reliability.reliability_harness import (
    RESTORES_TWICE,
    ROOT,
    SENDS_TWICE,
    FaultKit,
    RecordedWrites,
    ScenarioResult,
    delete_messages,
    drain_messages,
    hsds_domains,
    list_keys,
    make_orbits,
    peek_messages,
    sigkill,
    start_worker,
    stop_all,
    wait_until,
)
from workbench.local.launcher import local_launcher_from_env

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
    from workbench.local.environment import template_dict  # noqa: PLC0415

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
    per round (real `datacarousel step` processes — the embedded environment's step, with its local
    launcher: several workers of each kind)."""
    started = time.monotonic()
    writes = RecordedWrites.start(env)
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
                        [sys.executable, "-m", "workbench", "step"],  # `datacarousel step`
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
    domain_names = {d.rsplit("/", 1)[-1] for d in domains}
    lost_domains = [n for n in names if n not in domain_names]
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
    counts, evidence = writes.duplicates(
        result_prefixes=[f"{naming.RESULTS_PREFIX}/{job_id}/" for job_id in expected],
        names=names,
        domains_of=names,
        linked=sorted(domain_names),
    )
    # Restores and releases: recorded RestoreObject / SendMessage calls (and the items' restore counts).
    restored_twice = sorted(
        {n for n, c in restores.items() if c > 1}
        | {str(k).rsplit("/", 1)[-1] for k, c in restore_calls.items() if c > 1}
    )
    counts[RESTORES_TWICE] = len(restored_twice)
    counts[SENDS_TWICE] = sum(1 for c in work_sends.values() if c > 1)

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
        seconds=round(elapsed, 1),
        source=source,
        notes=(
            f"{files} files, jobs of {len(expected[job_a])} and {len(expected[job_b])} files (shared restores), "
            f"{racing_steps} racing steps/round, {rounds} rounds, peak workers {dict(peak)}; "
            + ", ".join(f"{k} {v['files']} in {v['span_s']} s ({v['per_s']}/s)" for k, v in stages.items())
            + f"; {evidence_note(evidence)}, {sum(restore_calls.values())} RestoreObject, "
            f"{sum(work_sends.values())} work items sent"
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
            "restored_twice": restored_twice,
            "lost_domains": lost_domains,
            "lost_results": lost_results,
            # Result objects no work item asked for (under another key): checked apart, not a duplicate.
            "extra_results": extra_results,
            "wrong_state": wrong_state,
            "jobs": list(expected),
            "workers_still_active": still_active,
            "writes": evidence,
        },
    )
    result.set_duplicates(counts)
    return result


def _rate(times: Sequence[float], since: float) -> dict[str, Any]:
    if not times:
        return {"files": 0, "span_s": 0.0, "per_s": 0.0}
    span = max(times[-1] - min(times[0], since), 1.0)  # the items' timestamps are whole seconds
    return {"files": len(times), "span_s": round(span, 1), "per_s": round(len(times) / span, 2)}


# --- bad input: index queue, work queue, queries ---------------------------------------------------------


def run_step(env: Mapping[str, str], log: Path) -> None:
    """One real `python -m carousel step --no-launch` (reads the dead-letter queues, records what they say;
    starts no worker: the scenario starts its own)."""
    with log.open("wb") as out:
        code = subprocess.run(
            [sys.executable, "-m", "carousel", "step", "--no-launch"],
            check=False,
            env=dict(env),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=STEP_TIMEOUT_S,
        ).returncode
    assert code == 0, f"carousel step failed ({code}): {log.read_text()[-3000:]}"


def bad_input(
    env: Mapping[str, str], work: Path, kit: FaultKit, *, first_orbit: int, source: str = "pytest"
) -> ScenarioResult:
    """Good and bad index requests and work items side by side, through the real loader, index_file,
    ComputeRadiance and carousel step processes. Each bad message must end in its DLQ with a reason. The
    dead letters are then left to the carousel (the scenario only looks at them, never takes them): a
    bad file ends FAILED with the reason of its dead letter and so do its job-files, while the good files
    of the same job stay INDEXED (their state version advanced once) and their job-files end DONE."""
    started = time.monotonic()
    writes = RecordedWrites.start(env)
    s3, sqs = aws.client("s3"), aws.client("sqs")
    ctx = Context.from_env()
    archive = env[Env.ARCHIVE_BUCKET]
    from workbench.synthetic.generator import generate_orbit  # noqa: PLC0415

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
    # The archive's files are in the files table (inventory), as in production: that is how the carousel
    # tells a dead letter of one of its files from a stray one. (The bad-name file is no BasicFusion file.)
    inventory.run(s3, ctx.tables.files, bucket=archive, prefix=prefix, now=time.time())
    bad_names = sorted(
        [naming.BasicFusionName.parse(bad_paths[d].name).file_name for d in ("truncated", "not_hdf5")]
        + list(vanish_key)
    )

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
    sent_by_hand: list[str] = []
    refused_by_sqs: list[str] = []
    for label, body in hand_made.items():
        try:
            sqs.send_message(QueueUrl=index_url, MessageBody=body)
            sent_by_hand.append(body)
        except Exception as exc:  # SQS itself refuses > 256 KiB bodies: the bad input never enters
            refused_by_sqs.append(f"{label}: {type(exc).__name__}")

    def ours(message: Mapping[str, Any], *needles: str) -> bool:
        body = str(message.get("Body", ""))
        return body in sent_by_hand or any(n in body for n in needles)

    # One job over the good and the bad files (not the still-archived one): its good files must not suffer.
    job_id = jobs.submit(
        ctx.tables,
        ctx.config,
        owner="mallory",
        definition=registry.get("ComputeRadiance"),
        query=JobQuery(orbit_min=first_orbit, orbit_max=first_orbit + 20),
    ).job_id
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
    # Looked at, not taken: every dead letter stays for the carousel.
    index_dead = [m for m in peek_messages(sqs, index_dlq) if ours(m, prefix)]
    index_reasons = [_reason(m) for m in index_dead]
    reason_of_file: dict[str, str] = {}
    for m in index_dead:
        try:
            request = IndexRequest.from_json(m.get("Body", ""))
            reason_of_file[naming.BasicFusionName.parse(request.key).file_name] = _reason(m)
        except Exception:  # a dead letter that names no file
            continue

    # The carousel reads the index dead letters (bad files FAILED, and their job-files) and releases the
    # job's good files (WorkItems on ComputeRadiance's queue).
    step_env = kit.env(env)
    run_step(step_env, work / "step-1.log")
    # Next to the released work: bad work items (a truncated file, a non-HDF5 file, a deleted object, a
    # malformed body), for a job that does not exist.
    stray_job = f"rel-bad-{uuid.uuid4().hex[:8]}"
    radiance = WorkQueues(sqs, env[Env.STACK_NAME]).of("ComputeRadiance")
    work_url, work_dlq = radiance.url, radiance.dead_letter_url
    good_name = good_names[0]
    bad_items = [
        WorkItem(stray_job, "ComputeRadiance", bad_paths["truncated"].name, archive, bad_keys["truncated"]).to_json(),
        WorkItem(stray_job, "ComputeRadiance", bad_paths["not_hdf5"].name, archive, bad_keys["not_hdf5"]).to_json(),
        WorkItem(stray_job, "ComputeRadiance", good_name, archive, prefix + "deleted/" + good_name).to_json(),
        json.dumps({"kind": "work-item", "job_id": stray_job, "file_name": 7}),
    ]
    for body in bad_items:
        sqs.send_message(QueueUrl=work_url, MessageBody=body)
    radiance_argv = ["batch_jobs.compute_radiance", "queue", "--resolution", "0.5", "--vza-max", "18"]

    def drain_radiance(log: str) -> None:
        proc = start_worker(radiance_argv, wenv, work / log)
        try:
            proc.wait(timeout=600)
        finally:
            stop_all([proc])

    drain_radiance("radiance.log")
    work_dead = [m for m in peek_messages(sqs, work_dlq) if ours(m, stray_job)]
    work_reasons = [_reason(m) for m in work_dead]
    # The carousel reads the work dead letters and the results (good job-files DONE); the job complete,
    # its ReduceRequest goes to the definition's workers, then the job is COMPLETE.
    run_step(step_env, work / "step-2.log")
    drain_radiance("radiance-reduce.log")
    run_step(step_env, work / "step-3.log")
    # What the carousel left unread (it reads every dead letter it can: none of ours may be left).
    unread = [m for m in peek_messages(sqs, index_dlq) if ours(m, prefix)]
    unread += [m for m in peek_messages(sqs, work_dlq) if ours(m, stray_job)]

    items_now = ctx.tables.files.get_many(good_names + bad_names)
    lost_good = [n for n in good_names if items_now.get(n, {}).get(FileAttr.STATE) != FileState.INDEXED.value]
    bad_files = {
        n: {
            "state": items_now.get(n, {}).get(FileAttr.STATE),
            "error": str(items_now.get(n, {}).get(FileAttr.ERROR, "")),
            "dead_letter_reason": reason_of_file.get(n, ""),
        }
        for n in bad_names
    }
    job_files = {
        str(row[JobFileAttr.FILE_NAME]): {
            "state": str(row[JobFileAttr.STATE]),
            "error": str(row.get(JobFileAttr.ERROR, "")),
        }
        for row in ctx.tables.job_files.of_job(job_id)
    }
    job_state = (ctx.tables.jobs.get(job_id) or {}).get(JobAttr.STATE)
    result_prefix = f"{naming.RESULTS_PREFIX}/{job_id}/"
    want = {naming.result_key(job_id, naming.BasicFusionName.parse(n)) for n in good_names}
    results = sorted(want & set(list_keys(s3, env[Env.RESULTS_BUCKET], result_prefix)))
    stray_results = list_keys(s3, env[Env.RESULTS_BUCKET], f"{naming.RESULTS_PREFIX}/{stray_job}/")
    not_done = [n for n in good_names if job_files.get(n, {}).get("state") != JobFileState.DONE.value]
    counts, evidence = writes.duplicates(
        result_prefixes=[result_prefix, f"{naming.RESULTS_PREFIX}/{stray_job}/"],
        names=good_names + bad_names,
        domains_of=good_names,
        linked=good_names,
    )
    advances = {n: dict(c) for n, c in writes.state_advances(good_names + bad_names).items()}
    # The bad-name file is never queued (the loader skips it and says so): the other bad files are.
    bad_index_in = len(bad_keys) - 1 + len(vanish_key) + len(sent_by_hand)
    released = sum(
        1
        for c in kit.calls()
        if c["op"] == "SendMessage" and c.get("job_id") == job_id and c.get("file_name") in set(good_names)
    )
    result = ScenarioResult(
        scenario="bad input: index + work queues",
        runs=1,
        faults=bad_index_in + len(bad_items),
        messages_in=len(good_names) + bad_index_in + released + len(bad_items),
        results_out=len(good_names) - len(lost_good) + len(results),
        lost=len(lost_good)
        + len(not_done)
        + max(0, bad_index_in - len(index_dead))
        + max(0, len(bad_items) - len(work_dead)),
        dead_lettered=len(index_dead) + len(work_dead),
        seconds=round(time.monotonic() - started, 1),
        source=source,
        notes=(
            f"loader queued {loader_report['queued']} (skipped {loader_report['skipped']}); "
            f"refused by SQS before entering: {refused_by_sqs or 'none'}; the carousel read every dead letter "
            f"({len(unread)} left unread): {sum(1 for v in bad_files.values() if v['state'] == 'FAILED')} of "
            f"{len(bad_files)} bad files FAILED with their dead letter's reason, job {job_state} with "
            f"{len(results)} results; {evidence_note(evidence)}"
        ),
        extra={
            "index_reasons": index_reasons,
            "work_reasons": work_reasons,
            "results": results,
            "stray_results": sorted(stray_results),
            "loader": loader_report,
            "sent_by_hand": len(sent_by_hand),
            "bad_index_in": bad_index_in,
            "released": released,
            "bad_files": bad_files,
            "good_files": {n: items_now.get(n, {}).get(FileAttr.STATE) for n in good_names},
            "job_files": job_files,
            "job_state": job_state,
            "state_advances": advances,
            "unread_dead_letters": [str(m.get("Body", ""))[:200] for m in unread],
            "writes": evidence,
        },
    )
    result.set_duplicates(counts)
    result.add_reasons(index_reasons + work_reasons)
    return result


def _reason(message: Mapping[str, Any]) -> str:
    attr = message.get("MessageAttributes", {}).get(FAILURE_REASON_ATTRIBUTE, {})
    return str(attr.get("StringValue") or "exceeded max receives (no reason attribute)")


# --- SIGKILL of workers in the middle of their work ------------------------------------------------------


def busy_worker(
    kit: FaultKit,
    procs: Sequence[subprocess.Popen[bytes]],
    rng: random.Random,
    *,
    timeout: float = 30.0,
    pause: float = 0.2,
) -> tuple[subprocess.Popen[bytes], list[str]] | None:
    """A running worker that holds a message (by its recorded calls: received, not yet deleted), chosen at
    random among those that do; waits up to `timeout` for one. None when none did (the backlog is done)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in procs if p.poll() is None]
        busy = [(p, held) for p in alive if (held := kit.holding(p.pid))]
        if busy:
            return busy[rng.randrange(len(busy))]
        if not alive or time.monotonic() > deadline:
            return None
        time.sleep(pause)


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
    """`workers` drainers of one kind on `files` messages; `kills` times, after a random pause (fixed seed),
    a random worker *holding a message* gets SIGKILL and a fresh one replaces it. Each kill is checked
    from the dead worker's complete call record: it had received a message and not deleted it (in flight).
    Then: every message's work is in the resources, nothing dead-lettered, and nothing written twice
    (result PUTs, completed domain links, state versions; `RecordedWrites`)."""
    rng = random.Random(seed)
    started = time.monotonic()
    writes = RecordedWrites.start(env)
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
    result_prefix = f"{naming.RESULTS_PREFIX}/{job_id}/"

    def outputs() -> set[str]:
        if worker == "index_file":
            items = ctx.tables.files.get_many(names)
            return {n for n in names if items.get(n, {}).get(FileAttr.STATE) == FileState.INDEXED.value}
        return {k.rsplit("/", 1)[-1] for k in list_keys(s3, results_bucket, result_prefix)}

    procs: list[subprocess.Popen[bytes]] = []
    serial = 0

    def spawn() -> None:
        nonlocal serial
        serial += 1
        procs.append(start_worker(argv, wenv, work / f"{worker}-{serial}.log"))

    for _ in range(workers):
        spawn()
    kill_records: list[dict[str, Any]] = []
    last_fault = time.monotonic()
    try:
        while len(kill_records) < kills and len(outputs()) < len(names):
            time.sleep(rng.uniform(0.5, 3.0))
            if not [p for p in procs if p.poll() is None]:
                spawn()
                continue
            chosen = busy_worker(kit, procs, rng)
            if chosen is None:  # no worker picked a message up: the backlog is done
                continue
            victim, seen = chosen
            if not sigkill(victim):
                continue
            # The dead worker's record is complete now: what it held when it died.
            kill_records.append({"pid": victim.pid, "seen_holding": seen, "held_at_death": kit.holding(victim.pid)})
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

        wait_until(finished, timeout=600, pause=1.0, what=f"{worker} backlog done after kills")
        recover_s = time.monotonic() - last_fault
        for p in procs:
            p.wait(timeout=120)
    finally:
        stop_all(procs)
    dead = [m for m in drain_messages(sqs, dlq) if prefix in m.get("Body", "") or job_id in m.get("Body", "")]
    delete_messages(sqs, dlq, dead)
    done = outputs()
    # Each held message came back and was received again by another worker (it was in flight when its
    # worker died: SQS made it visible again once its visibility lapsed).
    receivers = kit.receivers()
    for record in kill_records:
        record["redelivered"] = [
            i for i in record["held_at_death"] if any(pid != record["pid"] for pid in receivers.get(i, []))
        ]
    in_flight = sum(1 for r in kill_records if r["held_at_death"])
    if worker == "index_file":
        linked = [n for n in names if n in done]
        counts, evidence = writes.duplicates(names=names, domains_of=names, linked=linked)
        domains = [
            d for d in hsds_domains(env[Env.HSDS_FOLDER], **hs_kwargs(env)) if d.rsplit("/", 1)[-1] in set(names)
        ]
        produced = len({d.rsplit("/", 1)[-1] for d in domains})
        staging = _staging_leftovers(env)
    else:
        counts, evidence = writes.duplicates(result_prefixes=[result_prefix], names=names)
        produced = len(done)
        staging = 0
    result = ScenarioResult(
        scenario=f"SIGKILL {worker} mid-work",
        runs=1,
        faults=len(kill_records),
        messages_in=len(names),
        results_out=produced,
        lost=len(names) - len(done),
        dead_lettered=len(dead),
        recover_s=round(recover_s, 1),
        seconds=round(time.monotonic() - started, 1),
        source=source,
        notes=(
            f"{workers} workers, visibility {visibility} s, seed {seed}; {in_flight} of {len(kill_records)} kills "
            f"hit a worker holding a message; {serial} processes started in all; "
            f"staging domains left by killed links: {staging}; {evidence_note(evidence)}"
        ),
        extra={
            "staging_leftovers": staging,
            "processes": serial,
            "kills": kill_records,
            "killed_in_flight": in_flight,
            "redelivered": sum(1 for r in kill_records if r["held_at_death"] and r["redelivered"]),
            "writes": evidence,
        },
    )
    result.set_duplicates(counts)
    result.add_reasons(_reason(m) for m in dead)
    return result


def evidence_note(evidence: Mapping[str, Any]) -> str:
    """The recorded writes behind the duplicate counts, in a few words."""
    parts = []
    if evidence.get("result_puts"):
        parts.append(f"{evidence['result_puts']} result PUTs")
    if evidence.get("domain_links_seen") or evidence.get("domains_completed"):
        relinked = sum(evidence.get("relinked_incomplete", {}).values())
        parts.append(
            f"{evidence['domain_links_seen']} domain links, {evidence['domains_completed']} completed"
            + (f" ({relinked} root(s) left without a marker and linked again)" if relinked else "")
        )
    if evidence.get("state_advances"):
        parts.append(f"{evidence['state_advances']} state-version advances")
    return "recorded writes: " + (", ".join(parts) or "none")


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
