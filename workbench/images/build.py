"""Building the images from staged contexts, and listing the ones the engine holds.

Build contexts are staged: only the files an image copies (the requirements file, the code
packages) go to the engine, never the working tree's virtual environment or data. The shared base
is built first whenever a worker is chosen.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.images.debian_base import LOCAL_DEBIAN_IMAGE, PUBLIC_BASE_IMAGE, ensure_debian_base
from workbench.images.engine import (
    DEFAULT_TAG,
    Engine,
    ImageError,
    check_output,
    detect_engine,
    image_size,
)
from workbench.images.specs import BASE, IMAGES, REPO_ROOT, ImageSpec, select

log = logging.getLogger(__name__)

# A CA bundle handed to pip as the build secret `pip-ca` (machines behind a TLS-inspecting proxy).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PIP_CA_SECRET = "pip-ca"


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
    # Compiled libraries too: an image compiles its own (docker/compute-radiance.Dockerfile), for its own system.
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.so", ".mypy_cache", ".pytest_cache")
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
    out = check_output(engine.cli("images", "--format", "json"))
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
