"""Running a command in an image, as the local launcher runs a job definition in its container.

Host network (moto and HSDS on loopback), the image's non-root user, no capabilities, a
read-only root filesystem with a private /tmp; environment values never on the command line.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workbench.images.engine import (
    DEFAULT_TAG,
    Engine,
    ImageError,
    detect_engine,
)
from workbench.images.specs import WORKER_IMAGES

log = logging.getLogger(__name__)

# The user and group every image runs as (USER 10001:10001 in the Dockerfiles).
CONTAINER_UID = 10001
CONTAINER_GID = 10001
# Host-only variables never passed into a container: they describe the host's filesystem.
HOST_ONLY_VARIABLES = frozenset(
    {
        "PATH",
        "HOME",
        "PWD",
        "OLDPWD",
        "SHELL",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "PYTHONHOME",
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",
    }
)


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool = True

    def option(self) -> str:
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


def unix_socket_paths(env: Mapping[str, str]) -> list[Path]:
    """Unix sockets named by `http+unix://` endpoints in `env` (the embedded HSDS listens on one)."""
    paths = []
    for value in env.values():
        if value.startswith("http+unix://"):
            location = urllib.parse.unquote(value[len("http+unix://") :].split("/", 1)[0])
            paths.append(Path(location))
    return paths


def grant_container_access(socket: Path, gid: int = CONTAINER_GID) -> None:
    """Let the containers' group (and nobody else new) connect to a Unix socket of the host.

    The embedded HSDS listens in a private directory of the user who started it; a container
    runs as uid/gid 10001. The directory gets group traversal only (no listing), the socket
    group read/write, both for the group 10001. Idempotent.
    """
    for path, extra in ((socket.parent, stat.S_IXGRP), (socket, stat.S_IRGRP | stat.S_IWGRP)):
        try:
            info = path.stat()
            if info.st_gid != gid:
                os.chown(path, -1, gid)
            if (info.st_mode & extra) != extra:
                path.chmod(stat.S_IMODE(info.st_mode) | extra)
        except OSError as exc:
            raise ImageError(
                f"cannot let the containers' group {gid} reach {path} ({exc}): "
                f"run as its owner with membership of group {gid}, or as root"
            ) from exc


@dataclass
class ImageRunner:
    """Runs commands in images: host network (moto and HSDS on loopback), the image's non-root user,
    no capabilities, a read-only root filesystem with a private /tmp.

    Environment values never appear on the command line: the engine is given the variable names
    and takes the values from its own environment (`run_environment`). An `http+unix://` endpoint
    in the environment gets its socket's directory bind-mounted at the same path.
    `command()` fits `workbench.local.launcher.ContainerRunner`.
    """

    engine: Engine | None = None
    mounts: tuple[Mount, ...] = ()
    extra_options: tuple[str, ...] = ()
    _engine: Engine | None = field(default=None, init=False, repr=False)

    def resolved_engine(self) -> Engine:
        if self._engine is None:
            self._engine = self.engine or detect_engine()
        return self._engine

    def command(self, image: str, command: Sequence[str], env: Mapping[str, str]) -> list[str]:
        engine = self.resolved_engine()
        argv = engine.cli("run", "--rm", *engine.run_options())
        argv += ["--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev", "--cap-drop=ALL", "--security-opt=no-new-privileges"]
        for name in sorted(container_variables(env)):
            argv += ["--env", name]
        mounts = list(self.mounts)
        for socket in unix_socket_paths(env):
            grant_container_access(socket)
            mounts.append(Mount(socket.parent, str(socket.parent), read_only=False))
        for mount in mounts:
            argv += ["-v", mount.option()]
        argv += list(self.extra_options)
        return [*argv, image, *command]


def container_variables(env: Mapping[str, str]) -> dict[str, str]:
    """The part of `env` a container receives: everything but the host-only variables."""
    return {k: v for k, v in env.items() if k not in HOST_ONLY_VARIABLES}


def run_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment of the engine process itself: the host's PATH etc. plus the container's values."""
    base = {k: v for k, v in os.environ.items() if k in HOST_ONLY_VARIABLES or k.startswith(("XDG_", "CONTAINERS_"))}
    return {**base, **container_variables(env)}


def run_in_image(
    image: str,
    command: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    engine: Engine | None = None,
    mounts: Sequence[Mount] = (),
    timeout: float | None = None,
    extra_options: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run `command` in `image` with `env` (a job definition's command and environment); capture output."""
    env = dict(env or {})
    runner = ImageRunner(engine=engine, mounts=tuple(mounts), extra_options=tuple(extra_options))
    argv = runner.command(image, command, env)
    log.info("running %s in %s", " ".join(command), image)
    return subprocess.run(
        argv,
        env=run_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def local_images(engine: Engine | None = None, tag: str = DEFAULT_TAG) -> dict[str, str]:
    """{template parameter: local image reference}: what a local launcher runs for each job definition."""
    engine = engine or detect_engine()
    return {s.template_parameter: engine.image_ref(s.name, tag) for s in WORKER_IMAGES}
