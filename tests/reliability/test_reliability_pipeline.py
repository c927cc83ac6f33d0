"""Load, bad input, SIGKILL and throttling against the shared embedded environment, checked in the
resources; and least privilege: each worker's recorded AWS calls against its role in the template.

Every scenario writes its row to var/reliability/results.json (docs/reliability.md renders it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pipeline_scenarios as scen
import pytest
from reliability_harness import FaultKit, ScenarioResult, actions_by_worker, record_scenario, update_doc

from datacarousel.contract import JobDefinitionName, JobFileState
from datacarousel.local.environment import load_stack_module

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Orbits of early 2004 (no other test uses them); each scenario takes its own range.
LOAD_ORBIT = 30500
BAD_ORBIT = 30600
KILL_INDEX_ORBIT = 30700
KILL_RADIANCE_ORBIT = 30720
THROTTLE_ORBIT = 30800
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
    assert r.duplicated == 0, extra
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
    assert r.duplicated == 0
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
    assert len(extra["results"]) == 1, extra["results"]
    assert "bad_name" not in work_reasons  # (the bad-name file was never released as work)
    assert extra["loader"]["skipped"].get("not-a-basicfusion-name") == 1, extra["loader"]


# Actions a role may hold without a recorded call, each with its reason.
JUSTIFIED_UNUSED: dict[str, dict[str, str]] = {
    "*": {
        "kms:Decrypt": "SSE-KMS queues and tables: AWS calls KMS on the worker's behalf (moto does not)",
        "kms:GenerateDataKey": "SSE-KMS queues and tables: AWS calls KMS on the worker's behalf (moto does not)",
        "dynamodb:DescribeTable": "shared table read set (stack._TABLE_READ)",
        "dynamodb:ConditionCheckItem": "shared table write set (stack._TABLE_WRITE), for transactions",
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
    stack = load_stack_module()
    template = stack.build_template().to_dict()
    out: dict[str, set[str]] = {}
    for definition in EXERCISED:
        role = template["Resources"][f"{stack.role_prefix(definition)}JobRole"]
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
    assert r.faults >= 1, r
    assert r.lost == 0 and r.duplicated == 0 and r.dead_lettered == 0, r


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
    assert r.faults >= 1, r
    assert r.lost == 0 and r.duplicated == 0 and r.dead_lettered == 0, r


def test_throttling_at_the_client_loses_and_duplicates_nothing(local_env: Any, tmp_path: Path) -> None:
    r = scen.throttled_pipeline(local_env.env, tmp_path, rate=0.15, files=2, first_orbit=THROTTLE_ORBIT, seed=5)
    record_scenario(r)
    update_doc()
    assert r.faults > 10, "the throttling hook did not fire"
    assert r.lost == 0 and r.duplicated == 0, r.extra
