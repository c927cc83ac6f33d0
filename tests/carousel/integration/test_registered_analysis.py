"""Bring your own analysis: a research group's project (examples/misr_block_brightness) registered with
the running stack, submitted like a built-in, run by the carousel to per-orbit results and its reduction.

In the embedded environment the stack's Batch is moto's: `definitions register` creates the
definition's queues and registers its Batch job definition there, as on AWS; the carousel's local
launcher finds it there and runs its command as a local process with the project's code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from carousel.step import Step
from datacarousel import aws, contract, naming, registry
from datacarousel.contract import JobState
from datacarousel.work_queues import WorkQueues
from tests.carousel.integration.carousel_world import JUNE_2014, World, job_state, steps_until
from workbench.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "misr_block_brightness"
ORBITS = (JUNE_2014 + 90, JUNE_2014 + 91)  # its own: other tests leave +70 RESTORED
PREFIX = "carousel-it/registered/"


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_a_registered_analysis_runs_like_a_built_in(world: World, launcher: Any, tmp_path: Path) -> None:
    out = cli("definitions", "register", str(EXAMPLE), "--json")
    assert out.exit_code == 0, out.output
    registered = json.loads(out.output)
    assert registered["name"] == "MisrBlockBrightness" and registered["revision"] >= 1
    stack = world.env[contract.Env.STACK_NAME]
    queues = WorkQueues(world.sqs, stack).of("MisrBlockBrightness")  # found by name, as the carousel finds it
    assert queues.url == registered["queue_url"]
    # Registered as the template registers an analysis: tagged with the stack, its description aboard,
    # the researchers' role, a read-only root filesystem.
    batch = aws.client("batch")
    (entry,) = [
        e
        for e in batch.describe_job_definitions(jobDefinitionName="MisrBlockBrightness", status="ACTIVE")[
            "jobDefinitions"
        ]
        if e["revision"] == registered["revision"]
    ]
    assert entry["tags"][contract.STACK_TAG] == stack
    assert entry["containerProperties"]["readonlyRootFilesystem"] is True
    assert "ResearcherJobRole" in entry["containerProperties"]["jobRoleArn"]
    assert registry.registered(batch, stack)["MisrBlockBrightness"].result_suffix == ".csv"
    # Listed and described like a built-in; registering again is a new revision, the queues kept.
    listed = cli("definitions", "list", "--json")
    assert listed.exit_code == 0 and "MisrBlockBrightness" in json.loads(listed.output)
    again = json.loads(cli("definitions", "register", str(EXAMPLE / "definition.toml"), "--json").output)
    assert again["revision"] == registered["revision"] + 1 and again["queue_url"] == queues.url
    # A built-in's name is refused, in one line.
    clash = tmp_definition(EXAMPLE, tmp_path, name="RegionExtract")
    refused = cli("definitions", "register", str(clash))
    assert refused.exit_code == 2 and "built-in" in refused.output

    names = world.stage(ORBITS, PREFIX, storage_class="STANDARD")
    ctx = world.context()
    world.inventory(ctx, PREFIX)
    bad = cli("submit", "--owner", "carol", "--definition", "MisrBlockBrightness", "--param", "band=UV",
              "--orbit-min", str(ORBITS[0]), "--orbit-max", str(ORBITS[1]))  # fmt: skip
    assert bad.exit_code == 2 and "band must be one of" in bad.output
    submitted = cli("submit", "--owner", "carol", "--definition", "MisrBlockBrightness", "--param", "band=NIR",
                    "--orbit-min", str(ORBITS[0]), "--orbit-max", str(ORBITS[1]), "--json")  # fmt: skip
    assert submitted.exit_code == 0, submitted.output
    job_id = json.loads(submitted.output)["job_id"]

    steps_until(
        [Step(ctx, launcher=launcher)], lambda: job_state(ctx, job_id) is JobState.COMPLETE, timeout=300, pause=1.0
    )
    described = registry.registered(batch, stack)["MisrBlockBrightness"]
    for name in names:
        key = described.result_key(job_id, naming.BasicFusionName.parse(name))
        assert key.endswith(".csv") and "/MISR_BRIGHTNESS_O" in key
        rows = world.s3.get_object(Bucket=world.results, Key=key)["Body"].read().decode().splitlines()
        assert rows[0].startswith("orbit,block,time") and len(rows) > 10
    item = ctx.tables.jobs.get(job_id)
    assert item is not None and item["composite_key"] == [f"results/{job_id}/brightness.csv"]
    joined = world.s3.get_object(Bucket=world.results, Key=item["composite_key"][0])["Body"].read().decode()
    orbits = {line.split(",")[0] for line in joined.splitlines()[1:]}
    assert orbits == {str(o) for o in ORBITS}


def tmp_definition(example: Path, folder: Path, *, name: str) -> Path:
    """A copy of the example's description under another name, in a scratch folder."""
    text = (example / "definition.toml").read_text().replace('name = "MisrBlockBrightness"', f'name = "{name}"')
    (folder / "definition.toml").write_text(text)
    return folder
