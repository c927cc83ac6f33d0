"""The local Debian bookworm base, for where no registry serves the public Python image.

Made with `debootstrap --variant=minbase` and `podman import`, trimmed as the official slim images
are; its python3 is 3.11 as well.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from workbench.images.engine import Engine, ImageError, check_output, image_exists

log = logging.getLogger(__name__)

# The public base (AWS CodeBuild, a laptop with Docker Hub) and the locally made one.
PUBLIC_BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
LOCAL_DEBIAN_IMAGE = "localhost/datacarousel-debian:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"

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
        check_output([debootstrap, "--variant=minbase", DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR], timeout=900)
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
