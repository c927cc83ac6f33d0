"""Fixtures of the container tests: an engine (podman installed when missing) and the built images.

`built_images` runs the real build of every image whose code is in the tree, under the tag `test`.
On a fresh machine that is a cold build (the Debian base is made with debootstrap first); later
runs reuse the engine's layer cache, which is keyed by each layer's inputs (Dockerfile step,
copied files), so a changed requirement or package is always rebuilt. `DC_IMAGES_NO_CACHE=1`
forces every layer to be rebuilt; `bench/bench_images.py` measures cold and warm builds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from workbench import images

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_TAG = "test"


@pytest.fixture(scope="session")
def container_engine() -> images.Engine:
    """Docker when an engine answers, else podman (installed with scripts/install-podman.sh if missing)."""
    if shutil.which("podman") is None or shutil.which("runc") is None or shutil.which("debootstrap") is None:
        subprocess.run([str(REPO_ROOT / "scripts" / "install-podman.sh")], check=True, timeout=900)
    return images.detect_engine()


@pytest.fixture(scope="session")
def built_images(container_engine: images.Engine) -> dict[str, images.BuildResult]:
    """{image name: build result} of the base and of every worker image whose packages exist."""
    buildable = [spec.name for spec in images.WORKER_IMAGES if not spec.missing_packages()]
    cold = os.environ.get("DC_IMAGES_NO_CACHE", "") == "1"
    results = images.build_images(buildable or [images.BASE.name], engine=container_engine, tag=TEST_TAG, no_cache=cold)
    return {result.name: result for result in results}


@pytest.fixture(scope="session")
def image_ref(built_images: dict[str, images.BuildResult]) -> Callable[[images.ImageSpec], str]:
    """`image_ref(spec)`: the built reference, or a skip naming the package not in the tree yet."""

    def ref(spec: images.ImageSpec) -> str:
        if spec.name not in built_images:
            pytest.skip(f"{spec.name}: package(s) {', '.join(spec.missing_packages())} not in the tree yet")
        return built_images[spec.name].ref

    return ref
