"""`run_in_image`: a job's command runs in its image with the job's environment, on the host network,
reaching services on loopback TCP (moto) and on a Unix socket in a private directory (HSDS).
"""

from __future__ import annotations

import http.server
import secrets
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from workbench import images
from workbench.local.environment import LocalEnvironment

pytestmark = [pytest.mark.containers, pytest.mark.slow]

TOKEN = secrets.token_hex(8)


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{TOKEN} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):  # type: ignore[no-untyped-def]
        request, _ = super().get_request()
        return request, ("unix", 0)  # BaseHTTPRequestHandler wants a (host, port) client address


@pytest.fixture
def loopback_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def private_unix_endpoint() -> Iterator[str]:
    """An HTTP server on a Unix socket in a 0700 directory, as the embedded HSDS listens."""
    directory = Path(tempfile.mkdtemp(prefix="dc-sock-", dir="/tmp"))
    socket_path = directory / "sn_1.sock"
    server = _UnixHTTPServer(str(socket_path), _TokenHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert oct(directory.stat().st_mode & 0o777) == "0o700"
        yield "http+unix://" + quote(str(socket_path), safe="")
    finally:
        server.shutdown()
        server.server_close()
        socket_path.unlink(missing_ok=True)
        directory.rmdir()


def test_command_gets_its_environment_and_reaches_the_host_loopback(
    image_ref: Callable[[images.ImageSpec], str], container_engine: images.Engine, loopback_url: str
) -> None:
    probe = "import os, urllib.request; print(urllib.request.urlopen(os.environ['PROBE_URL'] + '/q').read().decode())"
    result = images.run_in_image(
        image_ref(images.BASE), ["python", "-c", probe], {"PROBE_URL": loopback_url}, engine=container_engine
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{TOKEN} /q"


def test_command_reaches_a_unix_socket_in_a_private_directory_as_the_non_root_user(
    image_ref: Callable[[images.ImageSpec], str], container_engine: images.Engine, private_unix_endpoint: str
) -> None:
    probe = (
        "import os, requests_unixsocket; "
        "print(os.getuid(), requests_unixsocket.Session().get(os.environ['HS_ENDPOINT'] + '/about').text)"
    )
    result = images.run_in_image(
        image_ref(images.BASE), ["python", "-c", probe], {"HS_ENDPOINT": private_unix_endpoint}, engine=container_engine
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(images.CONTAINER_UID), TOKEN, "/about"]


@pytest.mark.integration
def test_image_reaches_moto_and_hsds_of_the_embedded_environment(
    image_ref: Callable[[images.ImageSpec], str], container_engine: images.Engine, local_env: LocalEnvironment
) -> None:
    """The whole env file goes in; boto3 finds moto through AWS_ENDPOINT_URL, h5pyd HSDS through HS_*."""
    probe = (
        "import os, boto3, h5pyd; "
        "sqs = boto3.client('sqs'); "
        "attrs = sqs.get_queue_attributes(QueueUrl=os.environ['DC_INDEX_QUEUE_URL'], AttributeNames=['QueueArn']); "
        "folder = h5pyd.Folder(os.environ['DC_HSDS_FOLDER'].rstrip('/') + '/'); "
        "print(attrs['Attributes']['QueueArn'].rsplit(':', 1)[-1], folder.domain)"
    )
    env = dict(local_env.env)
    result = images.run_in_image(image_ref(images.BASE), ["python", "-c", probe], env, engine=container_engine)
    assert result.returncode == 0, result.stderr
    queue_name = env["DC_INDEX_QUEUE_URL"].rsplit("/", 1)[-1]
    assert result.stdout.split() == [queue_name, env["DC_HSDS_FOLDER"].rstrip("/") + "/"]
