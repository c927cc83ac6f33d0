"""The container engine: Docker when a Docker engine answers, else podman, and what it says about images.

podman gets the flags this kind of machine needs (the `runc` runtime, host network for builds,
explicit ulimits). `check_output` runs an engine command and raises `ImageError` with its output
when it fails.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datacarousel.errors import DataCarouselError

log = logging.getLogger(__name__)

DEFAULT_TAG = "local"
# Limits this kind of machine needs for podman builds and runs (see docs/images.md).
PODMAN_ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")


class ImageError(DataCarouselError):
    """An image cannot be built, pushed or run (the message says why and what to do)."""


@dataclass(frozen=True)
class Engine:
    """A container engine's command line: `docker`, or `podman` (with runc where it is installed)."""

    name: str  # "docker" | "podman"
    executable: str
    runtime: str | None = None  # podman's OCI runtime (`--runtime`); crun fails on cgroups-hybrid hosts

    def cli(self, *args: str) -> list[str]:
        argv = [self.executable]
        if self.name == "podman" and self.runtime:
            argv += ["--runtime", self.runtime]
        return [*argv, *args]

    def image_ref(self, name: str, tag: str = DEFAULT_TAG) -> str:
        """The local reference of an image (podman stores unqualified names under `localhost/`)."""
        return f"localhost/{name}:{tag}" if self.name == "podman" else f"{name}:{tag}"

    def build_options(self) -> list[str]:
        if self.name == "podman":
            return ["--network=host", *PODMAN_ULIMITS]
        return ["--network=host"]

    def run_options(self) -> list[str]:
        options = ["--network=host"]
        if self.name == "docker" or _podman_init_available():
            options.append("--init")  # a PID 1 that forwards signals: `stop` reaches the worker
        if self.name == "podman":
            options += list(PODMAN_ULIMITS)
        return options


def _podman_init_available() -> bool:
    """podman's `--init` runs catatonit from its init_path (Debian's catatonit package puts it there)."""
    return Path("/usr/libexec/podman/catatonit").exists()


def _runs(argv: Sequence[str], timeout: float = 20) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=timeout, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def detect_engine(preferred: str | None = None) -> Engine:
    """Docker when a Docker engine answers, else podman; `preferred` forces one ("docker"/"podman")."""
    if preferred not in (None, "", "docker", "podman"):
        raise ImageError(f"unknown engine {preferred!r}: choose docker or podman")
    docker = shutil.which("docker")
    if preferred in (None, "", "docker") and docker and _runs([docker, "info", "--format", "{{.ServerVersion}}"]):
        return Engine("docker", docker)
    if preferred == "docker":
        raise ImageError("no Docker engine answers `docker info`: start one, or use --engine podman")
    podman = shutil.which("podman")
    if podman is None:
        raise ImageError("neither a Docker engine nor podman found: run scripts/install-podman.sh")
    return Engine("podman", podman, runtime="runc" if shutil.which("runc") else None)


def image_exists(engine: Engine, ref: str) -> bool:
    return _runs(engine.cli("image", "inspect", "--format", "{{.Id}}", ref))


def image_size(engine: Engine, ref: str) -> int:
    """Uncompressed size of an image: the sum of its layers, in bytes.

    podman 4.3's own `Size` counts the newest layer twice, so the layers are summed from `history`.
    """
    if engine.name == "podman":
        history = json.loads(check_output(engine.cli("history", "--format", "json", ref)))
        return sum(int(layer.get("size", 0)) for layer in history)
    out = check_output(engine.cli("image", "inspect", "--format", "{{.Size}}", ref))
    return int(out.strip())


def image_config(engine: Engine, ref: str) -> dict[str, Any]:
    """The image's config (User, Env, Cmd, Entrypoint, WorkingDir, Labels) as the engine reports it."""
    out = check_output(engine.cli("image", "inspect", "--format", "{{json .Config}}", ref))
    config = json.loads(out)
    return config if isinstance(config, dict) else {}


def check_output(argv: Sequence[str], *, input_bytes: bytes | None = None, timeout: float = 120) -> str:
    result = subprocess.run(argv, capture_output=True, input=input_bytes, timeout=timeout, check=False)
    if result.returncode != 0:
        raise ImageError(f"`{' '.join(argv[:4])} ...` failed ({result.returncode}): {result.stderr.decode()[-2000:]}")
    return result.stdout.decode()
