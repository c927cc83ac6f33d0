"""The carousel's failure semantics as a model-based test (the machine: `carousel_model.py`).

`make test` runs a bounded, derandomized profile (the same examples every run); the bench runs
thousands: `python bench/bench_carousel_model.py --examples 2000 --seed N` (or
`DC_MODEL_EXAMPLES=2000 pytest tests/carousel/integration/test_carousel_model.py --hypothesis-seed=N`).
"""

from __future__ import annotations

import logging
import os
import socket
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.carousel.integration.carousel_model import RESTORE_READS, CarouselMachine

pytestmark = [pytest.mark.integration]

EXAMPLES = int(os.environ.get("DC_MODEL_EXAMPLES", "8"))
STEPS = int(os.environ.get("DC_MODEL_STEPS", "25"))


@pytest.fixture()
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's server of this test's own (reset before each example), reached through AWS_ENDPOINT_URL;
    its S3 clock follows the model's."""
    from moto.moto_api import state_manager  # noqa: PLC0415 - moto's server only for this test
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer  # noqa: PLC0415
    from moto.s3 import models as s3_models  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "model")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "model")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    real_restore = s3_models.FakeKey.restore

    def restore_like_aws(key: Any, days: int) -> None:
        """S3 rounds a restored copy's expiry up to the next midnight UTC (the carousel counts on it); moto does not."""
        real_restore(key, days)
        expiry = key._expiry
        midnight = expiry.replace(hour=0, minute=0, second=0, microsecond=0)
        key._expiry = midnight if midnight == expiry else midnight + timedelta(days=1)

    monkeypatch.setattr(s3_models.FakeKey, "restore", restore_like_aws)
    real_utcnow = s3_models.utcnow
    monkeypatch.setattr(s3_models, "utcnow", lambda: real_utcnow() + timedelta(seconds=CarouselMachine.clock_offset[0]))

    def reset() -> None:
        request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:  # loopback moto only
            assert response.status == 200
        state_manager.set_transition(
            model_name="s3::keyrestore", transition={"progression": "manual", "times": RESTORE_READS}
        )

    CarouselMachine.install_hsds_stand_in(monkeypatch.setattr)
    CarouselMachine.endpoint = endpoint
    CarouselMachine.reset = staticmethod(reset)
    try:
        yield endpoint
    finally:
        server.stop()
        state_manager.unset_transition("s3::keyrestore")


def test_no_good_file_fails_and_every_job_ends(moto_server: str) -> None:
    run_state_machine_as_test(
        CarouselMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize="DC_MODEL_EXAMPLES" not in os.environ,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        ),
    )
