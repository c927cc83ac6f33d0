"""Pushing the worker images to ECR: log in with ECR's token, tag, push, return their URIs."""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from workbench.images.engine import (
    DEFAULT_TAG,
    Engine,
    ImageError,
    check_output,
    detect_engine,
)
from workbench.images.specs import select

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

log = logging.getLogger(__name__)


def ecr_login_password(ecr: ECRClient) -> tuple[str, str]:
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
    ecr: ECRClient,
    engine: Engine | None = None,
    names: Iterable[str] | None = None,
    local_tag: str = DEFAULT_TAG,
    create_repositories: bool = False,
) -> dict[str, str]:
    """Log in to ECR, tag and push the worker images; return {template parameter: image URI}."""
    engine = engine or detect_engine()
    specs = [s for s in select(names) if not s.is_base]
    user, password = ecr_login_password(ecr)
    check_output(engine.cli("login", "--username", user, "--password-stdin", registry), input_bytes=password.encode())
    uris: dict[str, str] = {}
    for spec in specs:
        if create_repositories:
            _ensure_repository(ecr, spec.name)
        uri = registry_uri(registry, spec.name, tag)
        check_output(engine.cli("tag", engine.image_ref(spec.name, local_tag), uri))
        check_output(engine.cli("push", uri), timeout=3600)
        log.info("pushed %s", uri)
        uris[spec.template_parameter] = uri
    return uris


def _ensure_repository(ecr: ECRClient, name: str) -> None:
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(
            repositoryName=name,
            imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
            encryptionConfiguration={"encryptionType": "AES256"},
        )
