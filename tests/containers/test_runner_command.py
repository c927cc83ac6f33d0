"""How `ImageRunner` turns a job's command and environment into an engine command (no engine needed)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import quote

from workbench import images

PODMAN = images.Engine("podman", "/usr/bin/podman", runtime="runc")


def test_values_stay_off_the_command_line_and_host_variables_stay_out() -> None:
    env = {"AWS_SECRET_ACCESS_KEY": "s3cr3t-value", "DC_INDEX_QUEUE_URL": "http://127.0.0.1:1/q", "PATH": "/host/bin"}

    argv = images.ImageRunner(engine=PODMAN).command("img:1", ["python", "-m", "loader"], env)

    assert not any("s3cr3t-value" in a or "127.0.0.1:1" in a for a in argv)
    names = [argv[i + 1] for i, a in enumerate(argv) if a == "--env"]
    assert names == ["AWS_SECRET_ACCESS_KEY", "DC_INDEX_QUEUE_URL"]
    assert argv[-4:] == ["img:1", "python", "-m", "loader"]
    assert argv[:3] == ["/usr/bin/podman", "--runtime", "runc"]
    for option in ("--network=host", "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges", "--rm"):
        assert option in argv


def test_the_engine_process_gets_the_values_and_the_host_path() -> None:
    env = images.run_environment({"HS_PASSWORD": "pw", "PATH": "/ignored"})
    assert env["HS_PASSWORD"] == "pw"
    assert env["PATH"] == os.environ["PATH"]


def test_an_hsds_unix_socket_is_mounted_and_opened_to_the_containers_group(tmp_path: Path) -> None:
    private = tmp_path / "dc-hsds-x"
    private.mkdir(mode=0o700)
    socket = private / "sn_1.sock"
    socket.write_bytes(b"")  # the mode bits matter here, not the file type
    socket.chmod(0o755)
    endpoint = "http+unix://" + quote(str(socket), safe="")

    argv = images.ImageRunner(engine=PODMAN).command("img:1", ["true"], {"HS_ENDPOINT": endpoint})

    assert f"{private}:{private}" in argv
    assert images.unix_socket_paths({"HS_ENDPOINT": endpoint}) == [socket]
    for path, bits in ((private, stat.S_IXGRP), (socket, stat.S_IRGRP | stat.S_IWGRP)):
        info = path.stat()
        assert info.st_gid == images.CONTAINER_GID
        assert info.st_mode & bits == bits
    assert private.stat().st_mode & (stat.S_IRGRP | stat.S_IRWXO) == 0  # no listing, nothing for others


def test_plain_http_endpoints_mount_nothing() -> None:
    argv = images.ImageRunner(engine=PODMAN).command("img:1", ["true"], {"HS_ENDPOINT": "http://127.0.0.1:5101"})
    assert "-v" not in argv
