"""The job SDK's pure parts and its command line's one-line errors (no server: local files only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from datacarousel import job
from datacarousel.definitions import JobDefinition, load
from datacarousel.errors import BadInput, ConfigError, NotReadable
from workbench import registration
from workbench.synthetic.generator import generate_orbit

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "misr_block_brightness"


@pytest.fixture(scope="module")
def orbit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_orbit(77306, tmp_path_factory.mktemp("sdk-orbit"), preset="tiny")


def example() -> JobDefinition:
    return load(EXAMPLE / "definition.toml")


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE)}
    return subprocess.run(
        [sys.executable, "-m", "misr_block_brightness", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_describe_finds_the_description_in_or_beside_the_package(tmp_path: Path) -> None:
    assert job.describe(str(EXAMPLE / "misr_block_brightness" / "__main__.py")).name == "MisrBlockBrightness"
    assert job.describe(str(ROOT / "batch_jobs" / "region_extract" / "__main__.py")).name == "RegionExtract"
    with pytest.raises(ConfigError, match=r"no definition\.toml"):
        job.describe(str(tmp_path / "pkg" / "__main__.py"))


def test_a_console_item_names_one_archive_object() -> None:
    item = job.console_item(example(), "s3://archive/P022/TERRA_BF_L1B_O77306_20140630214253_F000_V001.h5", {})
    assert (item.job_id, item.bucket, item.file_name) == ("console", "archive", item.key.rsplit("/", 1)[-1])
    for bad in ("archive/x.h5", "s3://archive/", "s3://archive/P022/not-an-orbit.h5"):
        with pytest.raises(BadInput):
            job.console_item(example(), bad, {})


def test_the_digest_changes_with_any_parameter_and_the_definition() -> None:
    d = example()
    base = job.parameters_digest(d, d.defaults())
    assert job.parameters_digest(d, {**d.defaults(), "band": "NIR"}) != base
    assert job.parameters_digest(load(ROOT / "batch_jobs/region_extract/definition.toml"), d.defaults()) != base


class _HeadOnly:
    """An S3 client that answers HeadObject with one fixed answer."""

    def __init__(self, head: dict[str, Any]) -> None:
        self.head = head

    def head_object(self, **_: Any) -> dict[str, Any]:
        return self.head


ORBIT_URL = "s3://archive/P022/TERRA_BF_L1B_O77306_20140630214253_F000_V001.h5"


@pytest.mark.parametrize(
    ("restore", "readable"),
    [
        ('ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"', False),  # its copy expired
        ('ongoing-request="false", expiry-date="Fri, 21 Dec 2125 00:00:00 GMT"', True),
        ('ongoing-request="true"', False),
        (None, False),
    ],
)
def test_the_source_of_a_work_item_is_readable_only_while_its_restored_copy_has_not_expired(
    restore: str | None, readable: bool
) -> None:
    head = {"StorageClass": "DEEP_ARCHIVE", "ETag": '"e1"', **({"Restore": restore} if restore else {})}
    s3: Any = _HeadOnly(head)  # a fake where an S3Client is expected
    handler = job.Handler(example(), lambda work: job.Result(b""), s3=s3, results_bucket="results")
    item = job.console_item(example(), ORBIT_URL, {})
    if readable:
        assert handler.source_etag(item) == "e1"
    else:
        with pytest.raises(NotReadable, match="not restored"):
            handler.source_etag(item)


def test_run_writes_one_orbit_and_every_error_is_one_line(orbit: Path, tmp_path: Path) -> None:
    done = run_example("run", "--file", str(orbit), "--out", str(tmp_path) + "/", "--band", "NIR")
    assert done.returncode == 0, done.stderr
    written = Path(json.loads(done.stdout)["result"])
    assert written.name.startswith("MISR_BRIGHTNESS_O77306") and written.read_text().startswith("orbit,block")
    for args, message in (
        (["run", "--file", str(orbit), "--out", str(tmp_path), "--band", "UV"], "band must be one of"),
        (["run", "--file", str(tmp_path / "TERRA_BF_L1B_O77306_20140630214253_F000_V001.h5"), "--out", "x"], "error"),
        (["run", "--file", str(orbit), "--out", "/proc/no/such/dir/"], "cannot write"),
        (["queue", "--object", "not-a-url"], "error"),
    ):
        failed = run_example(*args)
        lines = failed.stderr.strip().splitlines()
        assert failed.returncode == 2, (args, failed.stderr)
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in failed.stderr, (args, failed.stderr)


def test_a_registered_job_definition_is_shaped_as_the_templates() -> None:
    outputs = {
        "ResearcherJobRoleArn": "arn:aws:iam::1:role/researcher",
        "AnalysisExecutionRoleArn": "arn:aws:iam::1:role/exec",
        "HsdsReaderSecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:hsds",
        "ResultsBucketName": "results",
        "HsdsEndpoint": "http://hsds:5101",
    }
    request = registration.job_definition_request(
        example(), outputs, stack="dc", region="us-east-1", image="registry/misr:1"
    )
    container = request["containerProperties"]
    assert request["tags"] == {"datacarousel:stack": "dc"} and request["jobDefinitionName"] == "MisrBlockBrightness"
    assert container["readonlyRootFilesystem"] is True and container["privileged"] is False
    assert container["linuxParameters"]["tmpfs"] == [  # a writable /tmp under the read-only root, as the template's
        {"containerPath": "/tmp", "size": 512, "mountOptions": ["rw", "nosuid", "nodev"]}
    ]
    assert container["jobRoleArn"].endswith("researcher") and container["command"] == example().batch_command()
    assert {s["name"] for s in container["secrets"]} == {"HS_USERNAME", "HS_PASSWORD"}
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["DC_STACK_NAME"] == "dc" and env["DC_RESULTS_BUCKET"] == "results" and "PYTHONPATH" not in env
    assert JobDefinition.from_dict(json.loads(request["parameters"]["dc_description"])) == example()
    assert request["parameters"]["object"] == "none" and request["parameters"]["band"] == "Red"
    with pytest.raises(ConfigError, match="HsdsReaderSecretArn"):
        registration.job_definition_request(
            example(), {k: v for k, v in outputs.items() if "Hsds" not in k}, stack="dc", region="r", image="i"
        )


def test_each_message_hands_its_memory_back_even_when_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[bool] = []

    def release() -> bool:
        released.append(True)
        return True

    monkeypatch.setattr(job.malloc, "release_free_memory", release)
    s3: Any = _HeadOnly({"StorageClass": "DEEP_ARCHIVE", "ETag": '"e1"'})  # archived: the item cannot be read
    handler = job.Handler(example(), lambda work: job.Result(b""), s3=s3, results_bucket="results")
    with pytest.raises(NotReadable):
        handler(job.console_item(example(), ORBIT_URL, {}).to_json())
    assert released == [True]
