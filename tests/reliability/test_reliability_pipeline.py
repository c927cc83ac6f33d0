"""Load, bad input, SIGKILL and throttling against the shared embedded environment, checked in the
resources; and least privilege: each worker's recorded AWS calls against its role in the template.

Every scenario writes its row to var/reliability/results.json (docs/reliability.md renders it).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import stack_template
from carousel.runtime import TABLE_SETTINGS, Context
from datacarousel import aws, hsds, naming
from datacarousel.contract import Env, FileState, JobDefinitionName, JobFileState, JobState
from datacarousel.files_table import iso
from datacarousel.times import utcnow
from index_file.adapters import HsdsTarget, write_marker
from index_file.core import Marker
from tests.reliability import pipeline_scenarios as scen
from tests.reliability.reliability_harness import (
    DOMAINS_TWICE,
    RESULTS_TWICE,
    STATES_TWICE,
    FaultKit,
    RecordedWrites,
    ScenarioResult,
    actions_by_worker,
    record_scenario,
    update_doc,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Orbits of early 2004 (no other test uses them); each scenario takes its own range.
LOAD_ORBIT = 30500
BAD_ORBIT = 30600
KILL_INDEX_ORBIT = 30700
KILL_RADIANCE_ORBIT = 30720
THROTTLE_ORBIT = 30800
PLANTED_ORBIT = 30950
FILES = 4  # the small load (bench/bench_reliability.py runs 1,000)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> FaultKit:
    """One call recorder for every worker process this module starts (the least-privilege test reads it)."""
    return FaultKit(tmp_path_factory.mktemp("reliability-kit"))


@pytest.fixture(scope="module")
def load_result(local_env: Any, kit: FaultKit, tmp_path_factory: pytest.TempPathFactory) -> ScenarioResult:
    result = scen.load_pipeline(
        local_env.env, tmp_path_factory.mktemp("load"), kit, files=FILES, first_orbit=LOAD_ORBIT
    )
    record_scenario(result)
    update_doc()
    return result


@pytest.fixture(scope="module")
def bad_input_result(local_env: Any, kit: FaultKit, tmp_path_factory: pytest.TempPathFactory) -> ScenarioResult:
    result = scen.bad_input(local_env.env, tmp_path_factory.mktemp("bad"), kit, first_orbit=BAD_ORBIT)
    record_scenario(result)
    update_doc()
    return result


def test_load_completes_with_nothing_lost_or_duplicated(load_result: ScenarioResult) -> None:
    r = load_result
    extra = r.extra
    assert r.lost == 0, extra
    # Nothing written twice: result PUTs, completed domain links, state versions, restores, work items.
    assert r.duplicated == 0, (r.duplicates, extra["writes"], extra["restored_twice"], extra["work_items_sent_twice"])
    assert extra["extra_results"] == [], "result objects no work item asked for"
    assert extra["writes"]["result_puts"] >= r.messages_in - FILES  # every result was seen written
    assert extra["writes"]["domains_completed"] == FILES
    assert extra["job_file_states"] == {JobFileState.DONE.value: r.messages_in - FILES}
    # Every work item of the two jobs sent exactly once (counted from the steps' recorded SendMessage calls).
    assert extra["work_sends"] == r.messages_in - FILES, extra["work_items_sent_twice"]
    # Each file restored exactly once although two jobs wanted half of them.
    assert extra["restore_counts"] == {"1": FILES}
    assert extra["restore_calls"] == FILES
    # Several workers of a kind ran at once (the local launcher, as Batch would).
    assert max(extra["peak_workers"].values()) >= 2, extra
    # ... and never more than the cap, although two steps raced every round (the launch lease).
    for worker, cap in extra["worker_caps"].items():
        assert extra["peak_workers"].get(worker, 0) <= cap, (worker, extra["peak_workers"])
    for stage in ("restore requested", "indexed", "metadata recorded", "job results"):
        assert extra["stages"][stage]["files"] > 0, stage


def test_bad_input_is_dead_lettered_with_its_reason_while_good_work_completes(
    bad_input_result: ScenarioResult,
) -> None:
    r = bad_input_result
    extra = r.extra
    assert r.lost == 0, extra
    assert r.duplicated == 0, (r.duplicates, extra["writes"])
    index_reasons = " | ".join(extra["index_reasons"])
    work_reasons = " | ".join(extra["work_reasons"])
    # One reason per kind of bad input, naming what was wrong.
    for needle in (
        "truncated",
        "not an HDF5",
        "not valid JSON",
        "must be str",
        "unknown field",
        "not in the archive bucket",  # another bucket: index requests name archive objects only
        "no such bucket or key",
    ):
        assert needle.lower() in index_reasons.lower(), (needle, extra["index_reasons"])
    assert len(extra["index_reasons"]) == extra["bad_index_in"], extra["index_reasons"]
    assert "exceeded max receives" not in index_reasons, "a bad request went round until redrive instead"
    assert len(extra["work_reasons"]) == 4, extra["work_reasons"]
    assert "bad_name" not in work_reasons  # (the bad-name file was never released as work)
    assert extra["loader"]["skipped"].get("not-a-basicfusion-name") == 1, extra["loader"]
    # The carousel read its dead letters (the scenario only looked at them): none is left unread.
    assert extra["unread_dead_letters"] == [], extra["unread_dead_letters"]
    # Each bad file FAILED with the reason its dead letter carried, and so did its job-file.
    for name, bad in extra["bad_files"].items():
        assert bad["dead_letter_reason"], (name, extra["index_reasons"])
        assert "exceeded max receives" not in bad["dead_letter_reason"], bad
        assert bad["state"] == FileState.FAILED.value, (name, bad)
        assert bad["error"] == f"indexing failed: {bad['dead_letter_reason']}", (name, bad)
        assert extra["job_files"][name] == {"state": JobFileState.FAILED.value, "error": bad["error"]}, name
        assert extra["state_advances"][name] == {FileState.FAILED.value: 1}, (name, extra["state_advances"])
    # The good files of the same job are not affected: INDEXED once (bad requests naming their objects
    # were stray, not theirs), their job-files DONE with a result each, the job COMPLETE.
    assert len(extra["bad_files"]) == 3
    for name, state in extra["good_files"].items():
        assert state == FileState.INDEXED.value, name
        assert extra["state_advances"][name] == {FileState.INDEXED.value: 1}, (name, extra["state_advances"])
        assert extra["job_files"][name]["state"] == JobFileState.DONE.value, (name, extra["job_files"])
    assert len(extra["results"]) == len(extra["good_files"]) == 3, extra["results"]
    assert extra["released"] == 3, "each good file released once"
    assert extra["job_state"] == JobState.COMPLETE.value, extra["job_state"]
    assert extra["stray_results"] == [], "a bad work item gave a result"


# Actions a role may hold without a recorded call, each with its reason.
JUSTIFIED_UNUSED: dict[str, dict[str, str]] = {
    "*": {
        "kms:Decrypt": "SSE-KMS queues and tables: AWS calls KMS on the worker's behalf (moto does not)",
        "kms:GenerateDataKey": "SSE-KMS queues and tables: AWS calls KMS on the worker's behalf (moto does not)",
        "dynamodb:DescribeTable": "shared table read set (stack_template.iam._TABLE_READ)",
        "dynamodb:ConditionCheckItem": "shared table write set (stack_template.iam._TABLE_WRITE), for transactions",
        "sqs:GetQueueAttributes": "shared send/consume sets (queue depth)",
    },
    JobDefinitionName.CAROUSEL.value: {
        "batch:SubmitJob": "starts workers on AWS Batch; locally the launcher runs processes instead",
        "batch:ListJobs": "counts active workers on AWS Batch; locally the launcher counts processes",
        "dynamodb:GetItem": "shared table read set",
        "dynamodb:PutItem": "shared table write set",
    },
    JobDefinitionName.LOADER.value: {
        "dynamodb:GetItem": "shared table read set",
        "dynamodb:Query": "shared table read set",
    },
    JobDefinitionName.INDEX_FILE.value: {
        "s3:ListBucket": "a missing key answers 404, not 403 (index_file tells 'no such key' from 'denied')",
        "sqs:ChangeMessageVisibility": "heartbeat while a long link runs (tiny orbits usually finish first)",
        "dynamodb:Query": "shared table read set",
        "dynamodb:BatchGetItem": "shared table read set",
        "dynamodb:PutItem": "shared table write set",
    },
    JobDefinitionName.RECORD_METADATA.value: {
        "dynamodb:Query": "shared table read set",
        "dynamodb:BatchGetItem": "shared table read set",
        "dynamodb:PutItem": "shared table write set",
    },
    "ComputeRadiance": {
        "s3:ListBucket": "a missing key answers 404, not 403 (the idempotency check heads its result)",
        "sqs:ChangeMessageVisibility": "heartbeat while a long orbit is processed (tiny orbits finish first)",
    },
}


# The job definitions these scenarios run: the pipeline's workers and ComputeRadiance.
EXERCISED = (*(d.value for d in JobDefinitionName), "ComputeRadiance")


def _role_actions() -> dict[str, set[str]]:
    template = stack_template.build_template().to_dict()
    out: dict[str, set[str]] = {}
    for definition in EXERCISED:
        role = template["Resources"][f"{stack_template.role_prefix(definition)}JobRole"]
        actions: set[str] = set()
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                acts = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                actions.update(acts)
        out[definition] = actions
    return out


def test_each_role_grants_what_its_worker_calls_and_little_else(
    load_result: ScenarioResult, bad_input_result: ScenarioResult, kit: FaultKit, tmp_path: Path
) -> None:
    """The calls each worker made (botocore hook in its real process) are a subset of its role's actions;
    every granted action it did not use is on the justified list."""
    used = actions_by_worker(kit.calls())
    granted = _role_actions()
    expected_workers = set(EXERCISED)
    assert set(used) == expected_workers, f"no calls recorded for {expected_workers - set(used)}"
    report = []
    for worker, actions in sorted(used.items()):
        missing = actions - granted[worker]
        assert not missing, f"{worker} calls {sorted(missing)} but its role does not grant them"
        unused = granted[worker] - actions
        allowed = {**JUSTIFIED_UNUSED["*"], **JUSTIFIED_UNUSED.get(worker, {})}
        unjustified = unused - set(allowed)
        assert not unjustified, f"{worker}: role grants {sorted(unjustified)} that it never called"
        report.append(f"{worker}: used {sorted(actions)}; granted, unused: {sorted(unused)}")
    (tmp_path / "least-privilege.txt").write_text("\n".join(report))


def test_kill_index_file_workers_mid_work(local_env: Any, kit: FaultKit, tmp_path: Path) -> None:
    r = scen.kill_workers(
        local_env.env, tmp_path, kit, worker="index_file", files=3, first_orbit=KILL_INDEX_ORBIT, kills=2, seed=10
    )
    record_scenario(r)
    update_doc()
    assert_kills_hit_messages_in_flight(r)
    assert r.lost == 0 and r.duplicated == 0 and r.dead_lettered == 0, (r, r.extra["writes"])


def assert_kills_hit_messages_in_flight(r: ScenarioResult) -> None:
    """Every kill hit a worker holding a message (its complete call record: received, not deleted), and
    each such message came back to another worker."""
    assert r.faults >= 1, r
    assert r.extra["killed_in_flight"] == r.faults, ("a kill hit an idle worker", r.extra["kills"])
    assert r.extra["redelivered"] == r.faults, ("a killed worker's message never came back", r.extra["kills"])


def test_kill_compute_radiance_workers_mid_work(local_env: Any, kit: FaultKit, tmp_path: Path) -> None:
    r = scen.kill_workers(
        local_env.env,
        tmp_path,
        kit,
        worker="compute_radiance",
        files=4,
        first_orbit=KILL_RADIANCE_ORBIT,
        kills=3,
        seed=20,
    )
    record_scenario(r)
    update_doc()
    assert_kills_hit_messages_in_flight(r)
    assert r.lost == 0 and r.duplicated == 0 and r.dead_lettered == 0, (r, r.extra["writes"])


def test_throttling_at_the_client_loses_and_duplicates_nothing(local_env: Any, tmp_path: Path) -> None:
    r = scen.throttled_pipeline(local_env.env, tmp_path, rate=0.15, files=2, first_orbit=THROTTLE_ORBIT, seed=5)
    record_scenario(r)
    update_doc()
    assert r.faults > 10, "the throttling hook did not fire"
    assert r.lost == 0 and r.duplicated == 0, (r.duplicates, r.extra)


def test_the_duplicate_counts_see_a_planted_duplicate(local_env: Any, tmp_path: Path) -> None:
    """Each duplicate count can come out non-zero: a result written twice, a domain linked (and completed)
    twice and a file's state version advanced twice for one index are seen, their single counterparts not."""
    env = local_env.env
    writes = RecordedWrites.start(env)
    s3 = aws.client("s3")
    results, archive, folder = env[Env.RESULTS_BUCKET], env[Env.ARCHIVE_BUCKET], env[Env.HSDS_FOLDER]
    job = f"rel-plant-{uuid.uuid4().hex[:8]}"
    twice, once = f"results/{job}/2005.09/twice.npz", f"results/{job}/2005.09/once.npz"
    for key, body in ((twice, b"first"), (twice, b"second"), (once, b"only")):
        s3.put_object(Bucket=results, Key=key, Body=body)

    # Two small HDF5 files under orbit files' names (a link's cost grows with datasets: these have one).
    import h5py  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    keys: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for orbit in (PLANTED_ORBIT, PLANTED_ORBIT + 1):
        name = naming.BasicFusionName.for_orbit(orbit).file_name
        path = tmp_path / name
        with h5py.File(path, "w") as f:
            f.create_dataset("x", data=np.arange(16, dtype="f4"))
        keys[name] = f"reliability/plant-{job}/{name}"
        sizes[name] = path.stat().st_size
        s3.put_object(Bucket=archive, Key=keys[name], Body=path.read_bytes())
    twice_name, once_name = sorted(keys)
    target = HsdsTarget(hsds.HsdsAccess.resolve(environ=env), folder)
    files = Context.from_env(need=TABLE_SETTINGS).tables.files
    domains = {}
    for name, links in ((twice_name, 2), (once_name, 1)):
        parsed = naming.BasicFusionName.parse(name)
        domain = domains[name] = naming.hsds_domain(folder, parsed)
        source = f"s3://{archive}/{keys[name]}"
        for i in range(links):  # what index_file does per link: link, marker, state INDEXED (a new version)
            linked = hsds.link_file(source, domain, target.access)
            marker = Marker(source, f"etag-{i}", sizes[name], linked.datasets, iso(utcnow()))
            write_marker(target, domain, marker)
            assert files.mark_indexed(
                parsed,
                bucket=archive,
                key=keys[name],
                etag=f"etag-{i}",
                size=marker.size,
                domain=domain,
                now=utcnow(),
                expected_version=None if i == 0 else i,
            )
            time.sleep(0.01)

    counts, evidence = writes.duplicates(
        result_prefixes=[f"results/{job}/"], names=[twice_name, once_name], domains_of=keys, linked=keys
    )
    assert counts == {RESULTS_TWICE: 1, DOMAINS_TWICE: 1, STATES_TWICE: 1}, evidence
    assert evidence["results_written_twice"] == {twice: 2}
    assert evidence["domains_linked_twice"] == {domains[twice_name]: 2}
    assert evidence["states_advanced_twice"] == {f"{twice_name}:{FileState.INDEXED.value}": 2}
    assert evidence["domain_links_seen"] == 3 and evidence["domains_completed"] == 3
    assert evidence["result_puts"] == 3 and evidence["state_advances"] == 3
