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

Rooms: `specs` (what the images are), `engine` (Docker or podman, and what it says about an image),
`debian_base` (the locally made base), `build` (building and listing), `push` (to ECR) and
`running` (a command in an image). Their public names are importable from here:
`from workbench import images; images.build_images()`.
"""

from __future__ import annotations

from workbench.images.build import (
    HOST_CA_BUNDLE,
    PIP_CA_SECRET,
    BuildResult,
    build_image,
    build_images,
    default_base_image,
    list_images,
    stage_context,
)
from workbench.images.debian_base import (
    DEBIAN_MIRROR,
    DEBIAN_SUITE,
    LOCAL_DEBIAN_IMAGE,
    PUBLIC_BASE_IMAGE,
    ensure_debian_base,
)
from workbench.images.engine import (
    DEFAULT_TAG,
    PODMAN_ULIMITS,
    Engine,
    ImageError,
    check_output,
    detect_engine,
    image_config,
    image_exists,
    image_size,
)
from workbench.images.push import (
    ecr_login_password,
    push_images,
    registry_uri,
)
from workbench.images.running import (
    CONTAINER_GID,
    CONTAINER_UID,
    HOST_ONLY_VARIABLES,
    ImageRunner,
    Mount,
    container_variables,
    grant_container_access,
    local_images,
    run_environment,
    run_in_image,
    unix_socket_paths,
)
from workbench.images.specs import (
    ANALYSIS_MODULES,
    ANALYSIS_REQUIREMENTS,
    BASE,
    CAROUSEL_PACKAGES,
    HSDS_TEMPLATE_PARAMETER,
    IMAGES,
    KERNEL,
    REPO_ROOT,
    SDK,
    WORKER_IMAGES,
    ImageSpec,
    select,
)

__all__ = [
    "ANALYSIS_MODULES",
    "ANALYSIS_REQUIREMENTS",
    "BASE",
    "CAROUSEL_PACKAGES",
    "CONTAINER_GID",
    "CONTAINER_UID",
    "DEBIAN_MIRROR",
    "DEBIAN_SUITE",
    "DEFAULT_TAG",
    "HOST_CA_BUNDLE",
    "HOST_ONLY_VARIABLES",
    "HSDS_TEMPLATE_PARAMETER",
    "IMAGES",
    "KERNEL",
    "LOCAL_DEBIAN_IMAGE",
    "PIP_CA_SECRET",
    "PODMAN_ULIMITS",
    "PUBLIC_BASE_IMAGE",
    "REPO_ROOT",
    "SDK",
    "WORKER_IMAGES",
    "BuildResult",
    "Engine",
    "ImageError",
    "ImageRunner",
    "ImageSpec",
    "Mount",
    "build_image",
    "build_images",
    "check_output",
    "container_variables",
    "default_base_image",
    "detect_engine",
    "ecr_login_password",
    "ensure_debian_base",
    "grant_container_access",
    "image_config",
    "image_exists",
    "image_size",
    "list_images",
    "local_images",
    "push_images",
    "registry_uri",
    "run_environment",
    "run_in_image",
    "select",
    "stage_context",
    "unix_socket_paths",
]
