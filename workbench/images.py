"""Container images of the workers: build them, list them, push them to ECR, run a command in one.

One image per worker and one for the radiance job, all built FROM one shared dependency image
(`docker/base.Dockerfile`: Python 3.11, a virtual environment with the runtime requirements, the
non-root user 10001), so the slow pip layer is built once and cached apart from the code.

The engine is Docker when a Docker engine answers, else podman with the flags this kind of
machine needs (the `runc` runtime, host network for builds, explicit ulimits). Where no registry
serves the public Python image, the base is a local Debian bookworm image made with
`debootstrap --variant=minbase` and `podman import`; its python3 is 3.11 as well.

Build contexts are staged: only the files an image copies (the requirements file, the code
packages) go to the engine, never the working tree's virtual environment or data.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datacarousel import registry
from datacarousel.contract import HSDS_IMAGE_PARAMETER, JobDefinitionName, WorkerImage
from datacarousel.contract import WORKER_IMAGES as CONTRACT_IMAGES
from datacarousel.definitions import JobDefinition
from datacarousel.errors import DataCarouselError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TAG = "local"
# The public base (AWS CodeBuild, a laptop with Docker Hub) and the locally made one.
PUBLIC_BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
LOCAL_DEBIAN_IMAGE = "localhost/datacarousel-debian:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# The user and group every image runs as (USER 10001:10001 in the Dockerfiles).
CONTAINER_UID = 10001
CONTAINER_GID = 10001
# A CA bundle handed to pip as the build secret `pip-ca` (machines behind a TLS-inspecting proxy).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PIP_CA_SECRET = "pip-ca"
# Limits this kind of machine needs for podman builds and runs (see docs/images.md).
PODMAN_ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")
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


class ImageError(DataCarouselError):
    """An image cannot be built, pushed or run (the message says why and what to do)."""


@dataclass(frozen=True)
class ImageSpec:
    """One image: its Dockerfile, the code packages it copies, and the command it runs."""

    name: str
    dockerfile: str  # relative to the repository root
    packages: tuple[str, ...] = ()  # the worker's own package(s): the image is built once they exist
    command: tuple[str, ...] = ()  # the image's CMD: the job definition's command with its defaults
    help_command: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()  # modules an import check of the image loads
    job_definition: str = ""
    template_parameter: str = ""  # the stack parameter that takes this image's URI
    requirements: tuple[str, ...] = ()  # requirement files the image installs (relative to the root)

    @property
    def is_base(self) -> bool:
        return not self.packages

    def context_files(self) -> tuple[str, ...]:
        """What the build context must hold (paths relative to the repository root)."""
        return (*self.requirements, *(dict.fromkeys((KERNEL, *self.packages)) if self.packages else ()))

    def missing_packages(self, root: Path = REPO_ROOT) -> list[str]:
        """Own packages not (yet) in the tree (a directory without Python files does not count)."""
        return [p for p in dict.fromkeys((KERNEL, *self.packages)) if not _is_package(root / p)]


def _is_package(path: Path) -> bool:
    """A directory with Python code in it (regular or namespace package)."""
    return path.is_dir() and any(path.glob("*.py"))


# Every worker image carries the kernel and its own package only: the workers, the carousel and the
# analyses import none of each other (import-linter's layers contract, pyproject.toml).
KERNEL = "datacarousel"
# The carousel reads the built-in analyses' descriptions (batch_jobs/*/definition.toml), not their code.
CAROUSEL_PACKAGES = ("carousel", "batch_jobs")


BASE = ImageSpec(
    name="datacarousel-base",
    dockerfile="docker/base.Dockerfile",
    requirements=("docker/requirements-runtime.txt",),
    modules=("boto3", "botocore", "h5py", "h5pyd", "h5json", "numpy", "s3fs", "requests_unixsocket", "typer"),
)


def _worker(
    definition: JobDefinitionName,
    package: str,
    command: Sequence[str],
    *,
    module: str = "",
    also: tuple[str, ...] = (),
    requirements: tuple[str, ...] = (),
    modules: tuple[str, ...] = (),
) -> ImageSpec:
    """A pipeline worker's image; its name and template parameter come from `contract.WORKER_IMAGES`."""
    (entry,) = [e for e in CONTRACT_IMAGES if e.job_definition == definition.value]
    return _image(
        entry, package, command, module=module or package, also=also, requirements=requirements, modules=modules
    )


def _image(
    entry: WorkerImage,
    package: str,
    command: Sequence[str],
    *,
    module: str,
    also: tuple[str, ...] = (),
    requirements: tuple[str, ...] = (),
    modules: tuple[str, ...] = (),
) -> ImageSpec:
    return ImageSpec(
        name=entry.image,
        dockerfile=f"docker/{entry.image.removeprefix('datacarousel-')}.Dockerfile",
        packages=(package, *also),
        command=tuple(command),
        help_command=("python", "-m", module, "--help"),
        modules=("datacarousel", "datacarousel.contract", package, f"{module}.__main__", *modules),
        job_definition=entry.job_definition,
        template_parameter=entry.parameter,
        requirements=requirements,
    )


# What every built-in analysis's image adds to the base: NetCDF output and quick-look maps.
ANALYSIS_REQUIREMENTS = ("docker/requirements-analyses.txt",)
ANALYSIS_MODULES = ("matplotlib.pyplot", "xarray", "h5netcdf")


def _analysis(described: JobDefinition) -> ImageSpec:
    """A built-in analysis's image, all from its description: name, template parameter, command, module.

    Its command is the job definition's with the Batch parameter defaults filled in.
    """
    defaults = {f"Ref::{key}": value for key, value in described.batch_parameters().items()}
    command = tuple(defaults.get(part, part) for part in described.batch_command())
    module = command[command.index("-m") + 1] if "-m" in command else described.name
    return _image(
        WorkerImage(described.name, described.image, described.image_parameter),
        module.split(".", 1)[0],
        command,
        module=module,
        requirements=ANALYSIS_REQUIREMENTS,
        modules=ANALYSIS_MODULES,
    )


# The commands are the job definitions' (stack.py workers()).
WORKER_IMAGES: tuple[ImageSpec, ...] = (
    _worker(JobDefinitionName.LOADER, "loader", ("python", "-m", "loader")),
    _worker(JobDefinitionName.INDEX_FILE, "index_file", ("python", "-m", "index_file")),
    _worker(JobDefinitionName.RECORD_METADATA, "record_metadata", ("python", "-m", "record_metadata")),
    _worker(JobDefinitionName.CAROUSEL, "carousel", ("python", "-m", "carousel", "step"), also=CAROUSEL_PACKAGES[1:]),
    *(_analysis(described) for described in registry.builtin().values()),
)
# What a research group's own analysis builds FROM (examples/): the base, the analyses' dependencies
# and the kernel with the job SDK. Not a worker: no job definition runs it as it is.
SDK = ImageSpec(
    name="datacarousel-sdk",
    dockerfile="docker/sdk.Dockerfile",
    packages=("datacarousel",),
    command=(
        "python",
        "-c",
        "import datacarousel.job; print('the Data Carousel job SDK: build your analysis FROM this image')",
    ),
    help_command=("python", "-c", "import datacarousel.job"),
    modules=("datacarousel.job", "datacarousel.orbit", *ANALYSIS_MODULES),
    requirements=ANALYSIS_REQUIREMENTS,
)
IMAGES: dict[str, ImageSpec] = {spec.name: spec for spec in (BASE, SDK, *WORKER_IMAGES)}
# The HSDS service on ECS runs the HDF Group's public image (or a mirror of it): not built here.
HSDS_TEMPLATE_PARAMETER = HSDS_IMAGE_PARAMETER


def select(names: Iterable[str] | None = None) -> list[ImageSpec]:
    """Images by name (short names such as `loader` work too), base first; all when `names` is empty."""
    wanted = list(names or [])
    if not wanted:
        return [BASE, *WORKER_IMAGES]
    chosen: list[ImageSpec] = []
    for name in wanted:
        full = name if name.startswith("datacarousel-") else f"datacarousel-{name}"
        if full not in IMAGES:
            raise ImageError(f"unknown image {name!r}: choose from {', '.join(IMAGES)}")
        chosen.append(IMAGES[full])
    return sorted(set(chosen), key=lambda s: list(IMAGES).index(s.name))


# --- Engines ---------------------------------------------------------------------------


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
        history = json.loads(_check_output(engine.cli("history", "--format", "json", ref)))
        return sum(int(layer.get("size", 0)) for layer in history)
    out = _check_output(engine.cli("image", "inspect", "--format", "{{.Size}}", ref))
    return int(out.strip())


def image_config(engine: Engine, ref: str) -> dict[str, Any]:
    """The image's config (User, Env, Cmd, Entrypoint, WorkingDir, Labels) as the engine reports it."""
    out = _check_output(engine.cli("image", "inspect", "--format", "{{json .Config}}", ref))
    config = json.loads(out)
    return config if isinstance(config, dict) else {}


def _check_output(argv: Sequence[str], *, input_bytes: bytes | None = None, timeout: float = 120) -> str:
    result = subprocess.run(argv, capture_output=True, input=input_bytes, timeout=timeout, check=False)
    if result.returncode != 0:
        raise ImageError(f"`{' '.join(argv[:4])} ...` failed ({result.returncode}): {result.stderr.decode()[-2000:]}")
    return result.stdout.decode()


# --- The local Debian base --------------------------------------------------------------

# What dpkg leaves out of every later install (as the official slim images do).
_DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
"""


def ensure_debian_base(engine: Engine, ref: str = LOCAL_DEBIAN_IMAGE, *, rebuild: bool = False) -> float:
    """Make the local Debian bookworm base image if it is missing; return the seconds it took (0 if present)."""
    if not rebuild and image_exists(engine, ref):
        return 0.0
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ImageError("debootstrap is not installed: run scripts/install-podman.sh")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dc-debootstrap-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log.info("debootstrap %s into %s", DEBIAN_SUITE, rootfs)
        _check_output([debootstrap, "--variant=minbase", DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR], timeout=900)
        _trim_rootfs(rootfs)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            imported = subprocess.run(
                engine.cli("import", "-", ref), stdin=tar.stdout, capture_output=True, timeout=600, check=False
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise ImageError(f"importing the Debian base failed: {imported.stderr.decode()[-2000:]}")
    seconds = time.monotonic() - start
    log.info("made %s in %.1f s", ref, seconds)
    return seconds


def _trim_rootfs(rootfs: Path) -> None:
    """Drop caches and docs from the debootstrapped tree and add the security and update suites."""
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info"):
        for child in (rootfs / sub).glob("*"):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            elif child.name not in ("lock", "partial"):
                child.unlink()
    locale = rootfs / "usr/share/locale"
    if locale.is_dir():
        shutil.rmtree(locale)
        locale.mkdir()
    (rootfs / "etc/dpkg/dpkg.cfg.d/excludes").write_text(_DPKG_EXCLUDES)
    (rootfs / "etc/apt/sources.list").write_text(
        f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n"
        f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE}-updates main\n"
        f"deb http://deb.debian.org/debian-security {DEBIAN_SUITE}-security main\n"
    )


# --- Building -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildResult:
    name: str
    ref: str
    seconds: float
    size_bytes: int


def stage_context(spec: ImageSpec, destination: Path, root: Path = REPO_ROOT) -> Path:
    """Copy exactly what `spec`'s Dockerfile needs into `destination`, laid out as in the repository."""
    missing = spec.missing_packages(root) if not spec.is_base else []
    if missing:
        raise ImageError(f"{spec.name}: package(s) {', '.join(missing)} not in {root} yet: cannot build it")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".mypy_cache", ".pytest_cache")
    for relative in spec.context_files():
        source, target = root / relative, destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    dockerfile = destination / spec.dockerfile
    dockerfile.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / spec.dockerfile, dockerfile)
    return destination


def build_image(
    spec: ImageSpec,
    *,
    engine: Engine,
    tag: str = DEFAULT_TAG,
    base_image: str,
    root: Path = REPO_ROOT,
    no_cache: bool = False,
    output: Any = None,
) -> BuildResult:
    """Build one image; `base_image` is the BASE_IMAGE build argument (a Python/Debian base or ours)."""
    ref = engine.image_ref(spec.name, tag)
    with tempfile.TemporaryDirectory(prefix=f"dc-context-{spec.name}-") as tmp:
        context = stage_context(spec, Path(tmp), root)
        argv = engine.cli("build", *engine.build_options())
        if spec.requirements and HOST_CA_BUNDLE.is_file():
            argv += ["--secret", f"id={PIP_CA_SECRET},src={HOST_CA_BUNDLE}"]
        if no_cache:
            argv.append("--no-cache")
        argv += [
            "--build-arg",
            f"BASE_IMAGE={base_image}",
            "--label",
            f"org.opencontainers.image.title={spec.name}",
            "-f",
            str(context / spec.dockerfile),
            "-t",
            ref,
            str(context),
        ]
        env = dict(os.environ)
        if engine.name == "docker":
            env.setdefault("DOCKER_BUILDKIT", "1")  # RUN --mount=type=secret needs BuildKit
        start = time.monotonic()
        log.info("building %s from %s", ref, spec.dockerfile)
        result = subprocess.run(
            argv,
            env=env,
            stdout=output if output is not None else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
        )
        seconds = time.monotonic() - start
    if result.returncode != 0:
        tail = result.stdout.decode(errors="replace")[-3000:] if result.stdout else "(see the build output above)"
        raise ImageError(f"building {spec.name} failed ({result.returncode}):\n{tail}")
    size = image_size(engine, ref)
    log.info("built %s in %.1f s, %.0f MB", ref, seconds, size / 1e6)
    return BuildResult(spec.name, ref, seconds, size)


def default_base_image(engine: Engine) -> str:
    """The public Python image for Docker, the local Debian base for podman (no registry needed)."""
    return PUBLIC_BASE_IMAGE if engine.name == "docker" else LOCAL_DEBIAN_IMAGE


def build_images(
    names: Iterable[str] | None = None,
    *,
    engine: Engine | None = None,
    tag: str = DEFAULT_TAG,
    base_image: str | None = None,
    root: Path = REPO_ROOT,
    no_cache: bool = False,
    output: Any = None,
) -> list[BuildResult]:
    """Build the chosen images (all by default); the shared base is built first whenever a worker is chosen.

    `base_image` is where the shared dependency image starts from; by default the public Python
    image with Docker and the local Debian base (made here when missing) with podman.
    """
    engine = engine or detect_engine()
    chosen = select(names)
    if any(not s.is_base for s in chosen) and BASE not in chosen:
        chosen.insert(0, BASE)
    missing = {s.name: s.missing_packages(root) for s in chosen if not s.is_base and s.missing_packages(root)}
    if missing:
        detail = "; ".join(f"{name}: {', '.join(pkgs)}" for name, pkgs in missing.items())
        raise ImageError(f"code packages missing, cannot build: {detail}")
    python_base = base_image or default_base_image(engine)
    if python_base == LOCAL_DEBIAN_IMAGE:
        ensure_debian_base(engine)
    results = []
    for spec in chosen:
        base = python_base if spec.is_base else engine.image_ref(BASE.name, tag)
        results.append(
            build_image(spec, engine=engine, tag=tag, base_image=base, root=root, no_cache=no_cache, output=output)
        )
    return results


def list_images(engine: Engine, tag: str | None = None) -> list[dict[str, Any]]:
    """The project's images the engine holds: name, tag, reference, size."""
    out = _check_output(engine.cli("images", "--format", "json"))
    rows = []
    seen: set[str] = set()
    for item in _parse_image_list(out, engine):
        if item["ref"] in seen:  # podman lists an image with several tags once per tag
            continue
        seen.add(item["ref"])
        repository, _, image_tag = item["ref"].rpartition(":")
        name = repository.rsplit("/", 1)[-1]
        if name in IMAGES and (tag is None or image_tag == tag):
            rows.append({**item, "name": name, "tag": image_tag})
    return sorted(rows, key=lambda r: (list(IMAGES).index(r["name"]), r["tag"]))


def _parse_image_list(out: str, engine: Engine) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    text = out.strip()
    if not text:
        return items
    # podman prints one JSON array; docker prints one JSON object per line.
    records = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]
    for record in records:
        if engine.name == "podman":
            for name in record.get("Names") or []:
                items.append({"ref": name, "id": record["Id"][:12], "size_bytes": image_size(engine, name)})
        else:
            ref = f"{record.get('Repository')}:{record.get('Tag')}"
            items.append({"ref": ref, "id": record.get("ID", ""), "size_bytes": image_size(engine, ref)})
    return items


# --- Pushing to ECR ---------------------------------------------------------------------


def ecr_login_password(ecr: Any) -> tuple[str, str]:
    """(user, password) for `<engine> login` from ECR's authorization token (`AWS:<password>`, base64)."""
    data = ecr.get_authorization_token()["authorizationData"]
    if not data:
        raise ImageError("ECR returned no authorization data")
    user, _, password = base64.b64decode(data[0]["authorizationToken"]).decode().partition(":")
    return user, password


def registry_uri(registry: str, name: str, tag: str) -> str:
    return f"{registry.rstrip('/')}/{name}:{tag}"


def push_images(
    registry: str,
    tag: str,
    *,
    ecr: Any,
    engine: Engine | None = None,
    names: Iterable[str] | None = None,
    local_tag: str = DEFAULT_TAG,
    create_repositories: bool = False,
) -> dict[str, str]:
    """Log in to ECR, tag and push the worker images; return {template parameter: image URI}."""
    engine = engine or detect_engine()
    specs = [s for s in select(names) if not s.is_base]
    user, password = ecr_login_password(ecr)
    _check_output(engine.cli("login", "--username", user, "--password-stdin", registry), input_bytes=password.encode())
    uris: dict[str, str] = {}
    for spec in specs:
        if create_repositories:
            _ensure_repository(ecr, spec.name)
        uri = registry_uri(registry, spec.name, tag)
        _check_output(engine.cli("tag", engine.image_ref(spec.name, local_tag), uri))
        _check_output(engine.cli("push", uri), timeout=3600)
        log.info("pushed %s", uri)
        uris[spec.template_parameter] = uri
    return uris


def _ensure_repository(ecr: Any, name: str) -> None:
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(
            repositoryName=name,
            imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
            encryptionConfiguration={"encryptionType": "AES256"},
        )


# --- Running a command in an image ------------------------------------------------------


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


__all__ = [
    "BASE",
    "IMAGES",
    "WORKER_IMAGES",
    "BuildResult",
    "Engine",
    "ImageError",
    "ImageRunner",
    "ImageSpec",
    "Mount",
    "build_images",
    "detect_engine",
    "push_images",
    "run_in_image",
]
