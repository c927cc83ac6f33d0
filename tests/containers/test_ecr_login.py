"""The ECR half of `datacarousel images push`: the login credentials from get_authorization_token.

Against moto's ECR (the embedded environment); the registry push itself needs a real registry and
is documented in docs/images.md, not exercised here.
"""

from __future__ import annotations

import base64

import pytest

from datacarousel import aws
from workbench import images
from workbench.local.environment import LocalEnvironment

pytestmark = [pytest.mark.integration]


def test_login_credentials_decode_the_authorization_token(local_env: LocalEnvironment) -> None:
    ecr = aws.client("ecr")
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]

    user, password = images.ecr_login_password(ecr)

    assert user == "AWS"
    assert password and f"{user}:{password}" == base64.b64decode(token).decode()


def test_registry_uri_names_each_image_in_the_registry() -> None:
    uri = images.registry_uri("123456789012.dkr.ecr.us-west-2.amazonaws.com/", "datacarousel-loader", "1.0")
    assert uri == "123456789012.dkr.ecr.us-west-2.amazonaws.com/datacarousel-loader:1.0"
