"""The embedded environment: env file, moto through AWS_ENDPOINT_URL, real HSDS, up/down by PID."""

from __future__ import annotations

import concurrent.futures
import json
import os
import posixpath
import signal
import socket
import stat
import textwrap
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import h5pyd
import numpy as np
import psutil
import pytest
import requests_unixsocket
from typer.testing import CliRunner

from carousel.launcher import LaunchRequest, job_definitions
from datacarousel import aws, contract, hsds, hsds_accounts
from datacarousel.hsds_accounts import HsdsRole
from datacarousel.work_queues import WorkQueues
from stack_template.hsds import HSDS_SERVER_CONFIG
from workbench.cli import app
from workbench.local import environment, hsds_server, process
from workbench.local.errors import PortInUse, StackFailed
from workbench.local.launcher import LocalLauncher
from workbench.local.state_dir import Paths

# --- unit: env file, outputs, template parameters ----------------------------------------


def test_env_file_round_trip_and_mode(tmp_path: Path) -> None:
    env = {"A": "plain", "B": "with space", "C": "quo'te\"s $HOME", "D": "", "HS_ENDPOINT": "http+unix://%2Ftmp%2Fx"}
    path = tmp_path / "env"
    environment.write_env_file(path, env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert environment.read_env_file(path) == env
    assert environment.export_lines({"B": "with space"}) == ["export B='with space'"]


def test_malformed_env_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "env"
    path.write_text("A=1\nthis is not an assignment\n")
    with pytest.raises(environment.LocalEnvironmentError, match=r"env:2: not a KEY=VALUE line"):
        environment.read_env_file(path)


def test_resource_env_maps_outputs_and_names_missing_ones() -> None:
    outputs = {r.output: f"value-of-{r.output}" for r in contract.SHARED_RESOURCES[1:]}
    env, missing = environment.resource_env(outputs)
    first = contract.SHARED_RESOURCES[0]
    assert missing == (first.output,)
    assert first.env not in env
    for resource in contract.SHARED_RESOURCES[1:]:
        assert env[resource.env] == f"value-of-{resource.output}"


def test_empty_template_creates_no_stack() -> None:
    module = ModuleType("empty_stack")
    module.build_template = lambda: {"Resources": {}}  # type: ignore[attr-defined]
    # No CloudFormation call may happen for an empty template: None would fail if used.
    no_client: Any = None
    assert environment.create_stack(no_client, no_client, "s", module) == ("EMPTY_TEMPLATE", {})


def test_local_parameters_get_the_ec2_client_when_they_take_one() -> None:
    module = ModuleType("stack_with_params")
    module.build_template = lambda: {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}  # type: ignore[attr-defined]
    module.local_parameters = lambda ec2: {"Client": ec2, "N": 3}  # type: ignore[attr-defined]
    ec2: Any = "the-ec2-client"  # passed through to local_parameters, never called
    body, params = environment._template_body(module, ec2)
    assert json.loads(body)["Resources"]["Q"]["Type"] == "AWS::SQS::Queue"
    assert params == {"Client": "the-ec2-client", "N": "3"}


def test_status_of_an_unknown_state_dir_is_none(tmp_path: Path) -> None:
    assert environment.status(tmp_path) is None
    assert environment.down(tmp_path / "never-used") == []
    with pytest.raises(environment.NotRunning, match="datacarousel up"):
        environment.require_env(tmp_path)


# --- integration: the shared session environment --------------------------------------


def _hsds_nodes_of(env: environment.LocalEnvironment) -> list[psutil.Process]:
    """hsds-node processes serving this environment's sockets (found by command line, for counting only)."""
    sock_dir = json.loads((env.state_dir / "run" / "state.json").read_text())["socket_dir"]
    nodes = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if "hsds-node" in cmdline and sock_dir.replace("/", "%2F") in cmdline:
            nodes.append(proc)
    return nodes


@pytest.mark.integration
def test_env_file_holds_the_interface_variables(local_env: Any) -> None:
    env = environment.read_env_file(local_env.env_file)
    assert env == local_env.env
    assert stat.S_IMODE(local_env.env_file.stat().st_mode) == 0o600
    for name in environment.BASE_VARIABLES:
        assert env[name], name
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert env["HS_ENDPOINT"].startswith("http+unix://")
    admin_user = hsds_accounts.username(HsdsRole.ADMIN, env["HS_USERNAME"])
    assert env["HS_USERNAME"] != admin_user
    assert env["DC_HSDS_FOLDER"] == contract.DEFAULT_HSDS_FOLDER.format(user=env["HS_USERNAME"])
    password_file = local_env.state_dir / "hsds" / "passwd"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    users = dict(line.split(":", 1) for line in password_file.read_text().splitlines())
    assert users[env["HS_USERNAME"]] == env["HS_PASSWORD"]
    assert users[admin_user] not in (admin_user, env["HS_PASSWORD"])
    # Every shared resource of the contract comes from the stack's outputs.
    missing = [r.env for r in contract.SHARED_RESOURCES if not env.get(r.env)]
    assert missing == [], f"stack outputs missing for {missing} (stack status {local_env.stack_status})"


@pytest.mark.integration
def test_moto_s3_sqs_dynamodb_through_aws_endpoint_url(local_env: Any) -> None:
    s3, sqs, ddb = aws.client("s3"), aws.client("sqs"), aws.client("dynamodb")
    for client in (s3, sqs, ddb):
        assert client.meta.endpoint_url == local_env.env["AWS_ENDPOINT_URL"]
    suffix = uuid.uuid4().hex[:10]
    bucket = f"dc-env-{suffix}"
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": local_env.env["AWS_DEFAULT_REGION"]}
    )
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"hello"
    queue_url = sqs.create_queue(QueueName=f"dc-env-{suffix}")["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="m1")
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in messages] == ["m1"]
    table = f"dc-env-{suffix}"
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName=table, Item={"k": {"S": "a"}, "v": {"N": "1"}})
    assert ddb.get_item(TableName=table, Key={"k": {"S": "a"}})["Item"]["v"] == {"N": "1"}


@pytest.mark.integration
def test_stack_resources_are_usable(local_env: Any) -> None:
    env = local_env.env
    assert local_env.stack_status == "CREATE_COMPLETE"
    s3, sqs, ddb = aws.client("s3"), aws.client("sqs"), aws.client("dynamodb")
    for name in (contract.Env.ARCHIVE_BUCKET, contract.Env.RESULTS_BUCKET):
        s3.head_bucket(Bucket=env[name])
    urls = [env[name] for name in (contract.Env.INDEX_QUEUE_URL, contract.Env.RESTORE_EVENTS_QUEUE_URL)]
    radiance = WorkQueues(sqs, env[contract.Env.STACK_NAME]).of("ComputeRadiance")  # found by name
    for url in (*urls, radiance.url, radiance.dead_letter_url):
        assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for name in (contract.Env.FILES_TABLE, contract.Env.JOBS_TABLE, contract.Env.JOB_FILES_TABLE):
        assert ddb.describe_table(TableName=env[name])["Table"]["TableStatus"] == "ACTIVE"


@pytest.mark.integration
def test_h5pyd_write_read_round_trip(local_env: Any) -> None:
    domain = f"{local_env.env['DC_HSDS_FOLDER']}roundtrip-{uuid.uuid4().hex[:8]}.h5"
    data = np.random.default_rng(7).random((50, 30)).astype(np.float32)
    with h5pyd.File(domain, "w") as f:
        dset = f.create_dataset("g/data", data=data, chunks=(10, 30))
        dset.attrs["units"] = "K"
        f.attrs["orbit"] = 40110
    hsds.flush_domain(domain)
    with h5pyd.File(domain, "r") as f:
        assert np.array_equal(f["g/data"][()], data)
        assert f["g/data"].attrs["units"] == "K"
        assert f.attrs["orbit"] == 40110
        assert f.owner == local_env.env["HS_USERNAME"]


@pytest.mark.integration
def test_wrong_or_missing_credentials_are_refused(local_env: Any) -> None:
    env = local_env.env
    about = f"{env['HS_ENDPOINT']}/about"
    domain = f"{env['DC_HSDS_FOLDER']}secret-{uuid.uuid4().hex[:8]}.h5"
    with h5pyd.File(domain, "w") as f:
        f.attrs["x"] = 1
    with requests_unixsocket.Session() as session:
        assert (
            session.get(about, auth=(env["HS_USERNAME"], env["HS_PASSWORD"])).json()["username"] == env["HS_USERNAME"]
        )
        assert session.get(about, auth=(env["HS_USERNAME"], "wrong")).status_code == 401
        assert session.get(about, auth=("admin", "admin")).status_code == 401
        anonymous = session.get(f"{env['HS_ENDPOINT']}/", params={"domain": domain})
        assert anonymous.status_code in (401, 403)
    with pytest.raises(OSError) as info:
        h5pyd.File(domain, "r", username=env["HS_USERNAME"], password="wrong")
    assert info.value.errno in (401, 403)


@pytest.mark.integration
def test_the_server_runs_the_template_settings_and_refuses_anonymous_listing_and_reading(local_env: Any) -> None:
    """The embedded server reads the template's HSDS settings (`HSDS_SERVER_CONFIG`): no request
    without credentials lists a folder or reads a domain, and no folder on the way to the domains
    has a `default` (any user) ACL."""
    env = local_env.env
    folder = env["DC_HSDS_FOLDER"]
    written = json.loads(Paths(local_env.state_dir).override_file.read_text().split("\n", 1)[1])
    assert {key: written[key] for key in HSDS_SERVER_CONFIG} == dict(HSDS_SERVER_CONFIG)
    domain = f"{folder}anon-{uuid.uuid4().hex[:8]}.h5"
    with h5pyd.File(domain, "w") as f:
        f.attrs["x"] = 1
    user = (env["HS_USERNAME"], env["HS_PASSWORD"])
    with requests_unixsocket.Session() as session:
        endpoint = env["HS_ENDPOINT"]
        assert session.get(f"{endpoint}/domains", params={"domain": folder}, auth=user).status_code == 200
        assert session.get(f"{endpoint}/domains", params={"domain": folder}).status_code in (401, 403)
        assert session.get(f"{endpoint}/", params={"domain": domain}).status_code in (401, 403)
        assert session.get(f"{endpoint}/acls", params={"domain": domain}).status_code in (401, 403)
        users = dict(line.split(":", 1) for line in Paths(local_env.state_dir).password_file.read_text().splitlines())
        admin_user = hsds_accounts.username(HsdsRole.ADMIN, env["HS_USERNAME"])
        admin = (admin_user, users[admin_user])  # only the admin reads a folder's ACLs
        parts = folder.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            path = "/" + "/".join(parts[:depth])
            acls = session.get(f"{endpoint}/acls", params={"domain": path}, auth=admin).json()["acls"]
            default = [acl for acl in acls if acl["userName"] == "default"]
            assert all(not any(acl[key] for key in hsds_accounts.ACL_KEYS) for acl in default), (path, default)
        # A domain made in the folder inherits no public ACL either (default_public: false).
        acls = session.get(f"{endpoint}/acls", params={"domain": domain}, auth=user).json()["acls"]
        assert "default" not in {acl["userName"] for acl in acls if acl.get("read")}


@pytest.mark.integration
def test_the_analyses_user_reads_only_and_the_writer_touches_no_acl_and_no_other_folder(local_env: Any) -> None:
    """Per-role HSDS identities: the reader (analyses) reads the writer's domains and can neither write
    nor delete; the writer (index_file, record_metadata, the carousel) writes and deletes its domains
    but cannot read or change the folder's ACLs, nor create anything outside the domains' folder."""
    env = local_env.env
    folder = env["DC_HSDS_FOLDER"]
    endpoint = env["HS_ENDPOINT"]
    writer = (env["HS_USERNAME"], env["HS_PASSWORD"])
    reader = hsds_server.reader_of(Paths(local_env.state_dir).password_file, writer[0])
    assert reader is not None
    assert reader[0] != writer[0] and reader[0] != hsds_accounts.username(HsdsRole.ADMIN, writer[0])
    domain = f"{folder}roles-{uuid.uuid4().hex[:8]}.h5"
    with h5pyd.File(domain, "w") as f:
        f.attrs["x"] = 1
    refused = (401, 403)
    with requests_unixsocket.Session() as session:

        def call(method: str, path: str, auth: tuple[str, str], domain_: str, **kw: Any) -> int:
            return int(
                session.request(method, f"{endpoint}{path}", params={"domain": domain_}, auth=auth, **kw).status_code
            )

        root = session.get(f"{endpoint}/", params={"domain": domain}, auth=reader).json()["root"]
        with h5pyd.File(domain, "r", username=reader[0], password=reader[1]) as f:
            assert f.attrs["x"] == 1
        attribute = {"type": "H5T_STD_I32LE", "shape": [], "value": 2}
        assert call("PUT", f"/groups/{root}/attributes/y", reader, domain, json=attribute) in refused
        assert call("DELETE", "/", reader, domain) in refused
        assert call("PUT", "/", reader, f"{folder}by-reader.h5", json={}) in refused
        assert call("PUT", "/acls/" + reader[0], reader, domain, json={"update": True}) in refused
        # The writer: its own domains, nothing of the folder's ACLs, no folder elsewhere.
        assert call("PUT", f"/groups/{root}/attributes/y", writer, domain, json=attribute) == 201
        for path in ("/home", posixpath.dirname(folder.rstrip("/")), folder.rstrip("/")):
            assert call("GET", "/acls", writer, path) in refused, path
            assert call("PUT", "/acls/" + writer[0], writer, path, json={"updateACL": True}) in refused, path
            assert call("PUT", "/acls/default", writer, path, json={"read": True}) in refused, path
        assert call("PUT", "/", writer, f"/home/elsewhere-{uuid.uuid4().hex[:6]}", json={"folder": True}) in refused
        sibling = f"{posixpath.dirname(folder.rstrip('/'))}/other-{uuid.uuid4().hex[:6]}"
        assert call("PUT", "/", writer, sibling, json={"folder": True}) in refused
        assert call("DELETE", "/", writer, domain) == 200
        assert call("GET", "/", reader, domain) in (404, 410)


@pytest.mark.integration
def test_up_twice_reports_the_running_set(local_env: Any) -> None:
    again = environment.up(local_env.state_dir)
    assert not again.started
    assert again.env == local_env.env
    assert again.pids() == local_env.pids()
    assert len(_hsds_nodes_of(again)) == 3  # one service node and two data nodes, not a second set
    result = CliRunner().invoke(app, ["up", "--state-dir", str(local_env.state_dir)])
    assert result.exit_code == 0, result.output
    assert "already running" in result.output
    assert environment.status(local_env.state_dir).pids() == local_env.pids()  # type: ignore[union-attr]


@pytest.mark.integration
def test_cli_services_and_env(local_env: Any) -> None:
    runner = CliRunner()
    services = runner.invoke(app, ["services", "--state-dir", str(local_env.state_dir)])
    assert services.exit_code == 0, services.output
    assert services.output.count("running") >= 2
    printed = runner.invoke(app, ["env", "--state-dir", str(local_env.state_dir)])
    assert printed.exit_code == 0, printed.output
    lines = printed.output.splitlines()
    assert f"export HS_USERNAME={local_env.env['HS_USERNAME']}" in lines
    assert f"export AWS_ENDPOINT_URL={local_env.env['AWS_ENDPOINT_URL']}" in lines


# --- integration: environments of their own (lifecycle) ---------------------------------


@pytest.fixture()
def own_state(tmp_path: Path) -> Iterator[Path]:
    """A state directory for one test's own environment; always brought down."""
    state = tmp_path / "state"
    yield state
    environment.down(state)


def _all_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.05)
    return alive


@pytest.mark.integration
def test_up_comes_up_with_every_core_busy_with_another_process(own_state: Path) -> None:
    """A busy 2-core machine: HSDS's nodes are started and polled for readiness, not given a fixed budget."""
    with process.busy_loops(os.cpu_count() or 1) as pids:
        assert all(psutil.Process(pid).is_running() for pid in pids)
        env = environment.up(own_state, stack_file=_stack_file())
        assert env.started and all(s.running for s in env.services), env.services
        with requests_unixsocket.Session() as session:  # HSDS answers as its workers' user, still under load
            about = session.get(
                f"{env.env['HS_ENDPOINT']}/about", auth=(env.env["HS_USERNAME"], env.env["HS_PASSWORD"])
            )
        assert about.json()["state"] == "READY" and about.json()["username"] == env.env["HS_USERNAME"]
    assert not _all_gone(pids, timeout=5.0)  # the load is stopped by PID with the block


@pytest.mark.integration
def test_up_then_down_leaves_no_process(own_state: Path) -> None:
    # Two concurrent `up`s on one state directory: one starts the set, the other reports it.
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        both = list(pool.map(lambda _: environment.up(own_state, stack_file=_stack_file()), range(2)))
    assert sorted(e.started for e in both) == [False, True]
    assert both[0].pids() == both[1].pids()
    env = both[0]
    pids = env.pids()
    assert len(pids) == 5  # moto, the hsds launcher, its service node and two data nodes
    assert all(psutil.pid_exists(p) for p in pids)
    socket_dir = Path(json.loads((own_state / "run" / "state.json").read_text())["socket_dir"])
    assert socket_dir.exists()

    result = CliRunner().invoke(app, ["down", "--state-dir", str(own_state)])
    assert result.exit_code == 0, result.output
    assert "stopped: hsds, moto" in result.output
    assert _all_gone(pids) == []
    assert list((own_state / "run").iterdir()) == []  # no stale PID file
    assert not (own_state / "env").exists()
    assert not socket_dir.exists()
    assert environment.status(own_state) is None
    assert environment.down(own_state) == []


@pytest.mark.integration
def test_down_stops_nodes_whose_launcher_died(own_state: Path) -> None:
    env = environment.up(own_state, stack_file=_stack_file())
    hsds_service = next(s for s in env.services if s.name == "hsds")
    nodes = [p for p in hsds_service.pids if p != hsds_service.pid]
    assert len(nodes) == 3
    psutil.Process(hsds_service.pid).send_signal(signal.SIGKILL)  # the launcher dies; its nodes live on
    time.sleep(0.3)
    assert all(psutil.pid_exists(p) for p in nodes)
    assert environment.down(own_state) == ["hsds", "moto"]
    assert _all_gone(env.pids()) == []


@pytest.mark.integration
def test_up_restarts_a_partly_running_environment(own_state: Path) -> None:
    first = environment.up(own_state, stack_file=_stack_file())
    moto_pid = next(s.pid for s in first.services if s.name == "moto")
    assert moto_pid is not None
    psutil.Process(moto_pid).kill()  # moto died: the set is no longer whole
    assert _all_gone([moto_pid]) == []
    second = environment.up(own_state, stack_file=_stack_file())
    assert second.started
    assert set(second.pids()).isdisjoint(first.pids())
    assert _all_gone(first.pids()) == []  # the surviving HSDS of the first set was stopped
    assert second.env["HS_PASSWORD"] != first.env["HS_PASSWORD"]
    assert environment.read_env_file(own_state / "env") == second.env


@pytest.mark.integration
def test_busy_port_is_a_clear_error_and_starts_nothing(own_state: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((process.LOOPBACK, 0))
        sock.listen()
        port = int(sock.getsockname()[1])
        with pytest.raises(PortInUse, match=rf"127\.0\.0\.1:{port} is already in use"):
            environment.up(own_state, moto_port=port, stack_file=_stack_file())
        result = CliRunner().invoke(app, ["up", "--state-dir", str(own_state), "--moto-port", str(port)])
        assert result.exit_code == 1
        assert f"127.0.0.1:{port} is already in use" in result.output
    assert environment.status(own_state) is None
    assert not (own_state / "env").exists()


@pytest.mark.integration
def test_a_failing_stack_stops_everything_it_started(own_state: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad_stack.py"
    bad.write_text(
        textwrap.dedent(
            """
            def build_template():
                # moto refuses a FIFO queue whose name lacks the .fifo suffix.
                queue = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "plain", "FifoQueue": True}}
                return {"Resources": {"Queue": queue}}
            """
        )
    )
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(StackFailed, match=r"refused stack 'datacarousel'.*\.fifo"):
        environment.up(own_state, stack_file=bad)
    assert environment.status(own_state) is None
    leftovers = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert _all_gone(sorted(leftovers)) == []


def _stack_file() -> Path | None:
    """Own environments create the same template as the session's (DC_STACK_FILE, as conftest does)."""
    value = os.environ.get("DC_STACK_FILE")
    return Path(value) if value else None


@pytest.mark.integration
def test_archive_restores_notify_the_restore_events_queue(local_env: environment.LocalEnvironment) -> None:
    """The template's restore-event wiring is applied in moto too: a restore reaches the queue."""
    s3, sqs = aws.client("s3"), aws.client("sqs")
    bucket = local_env.env["DC_ARCHIVE_BUCKET"]
    queue_url = local_env.env["DC_RESTORE_EVENTS_QUEUE_URL"]
    key = "P22/TERRA_BF_L1B_O85079_20151216160910_F000_V001.h5"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x", StorageClass="DEEP_ARCHIVE")
    s3.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 1, "GlacierJobParameters": {"Tier": "Bulk"}})
    s3.get_object(Bucket=bucket, Key=key)["Body"].read()  # moto sends Completed once the object is read
    events: list[str] = []
    for _ in range(10):
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            body = json.loads(message["Body"])
            records = body.get("Records", [])  # S3's first message is a TestEvent without records
            events += [r["eventName"] for r in records if urllib.parse.unquote_plus(r["s3"]["object"]["key"]) == key]
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if any("Completed" in e for e in events):
            break
    assert any(e.startswith("ObjectRestore:") for e in events), events
    s3.delete_object(Bucket=bucket, Key=key)


def test_down_also_stops_the_jobs_the_local_launcher_started(tmp_path: Path) -> None:
    """Workers the carousel launched must not outlive the services they talk to."""
    template = {
        "Resources": {
            "Sleeper": {
                "Type": "AWS::Batch::JobDefinition",
                "Properties": {
                    "JobDefinitionName": "sleeper",
                    "ContainerProperties": {"Command": ["python", "-c", "import time; time.sleep(120)"]},
                },
            }
        }
    }
    launcher = LocalLauncher(job_definitions(template), {"PATH": os.environ["PATH"]}, tmp_path / "jobs")
    launcher.launch(LaunchRequest("sleeper", array_size=2))
    assert launcher.active("sleeper") == 2
    environment.down(tmp_path)
    assert launcher.active("sleeper") == 0


@pytest.mark.integration
def test_running_sets_and_restores_the_environment_and_always_stops(
    own_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`environment.running`: inside, the stack's variables and none that could reach a real AWS
    account; afterwards `os.environ` as before and no process left, also when the block raises."""
    monkeypatch.setenv("AWS_PROFILE", "a-real-account")
    monkeypatch.delenv("DC_FILES_TABLE", raising=False)
    before = dict(os.environ)
    pids: list[int] = []
    with (
        pytest.raises(RuntimeError, match="the block failed"),
        environment.running(own_state, stack_file=_stack_file()) as env,
    ):
        pids = env.pids()
        assert "AWS_PROFILE" not in os.environ
        assert os.environ["AWS_ENDPOINT_URL"] == env.env["AWS_ENDPOINT_URL"]
        assert os.environ["DC_FILES_TABLE"] == env.env["DC_FILES_TABLE"]
        raise RuntimeError("the block failed")
    assert dict(os.environ) == before
    assert pids and _all_gone(pids) == []
    assert environment.status(own_state) is None
