"""The carousel settings `up` writes to the env file: seconds-scale probing for moto, AWS defaults untouched."""

from __future__ import annotations

from pathlib import Path

from carousel import runtime
from datacarousel import contract
from datacarousel.config import Settings
from datacarousel.contract import Env
from workbench.demo.plan import DemoOptions, carousel_environment
from workbench.local import environment
from workbench.local.carousel_settings import LOCAL_INDEX_RETRY_S, LOCAL_PROBE_AFTER_S, local_carousel_env
from workbench.local.state_dir import Paths


def _env_file_contents(tmp_path: Path) -> dict[str, str]:
    return environment._worker_env(
        Paths(tmp_path),
        aws_env={Env.AWS_ENDPOINT_URL: "http://127.0.0.1:5000", Env.AWS_REGION: "us-west-2"},
        hs_env={Env.HS_ENDPOINT: "http+unix://%2Ftmp%2Fx%2Fsn_1.sock"},
        stack_name="datacarousel",
        folder="/home/datacarousel/basicfusion/",
        dc_env={Env.ARCHIVE_BUCKET: "archive"},
    )


def test_the_env_file_carries_the_local_carousel_settings(tmp_path: Path) -> None:
    env = _env_file_contents(tmp_path)
    assert env[Env.PROBE_AFTER_S] == "5"
    assert env[Env.INDEX_RETRY_S] == "120"
    assert env[Env.ARCHIVE_BUCKET] == "archive" and env[Env.LAUNCHER] == "local"
    # What `datacarousel step` makes of them: a restore is looked at after seconds, and again as often.
    settings = Settings.from_env(need=(), environ=env)
    assert settings.probe_after_s == LOCAL_PROBE_AFTER_S == 5.0
    assert settings.index_retry_s == LOCAL_INDEX_RETRY_S
    config = runtime.planner_config(settings)
    assert config.probe_after_s == config.probe_every_s == LOCAL_PROBE_AFTER_S


def test_aws_defaults_stay_hours() -> None:
    config = runtime.planner_config(Settings.from_env(need=(), environ={}))
    assert config.probe_after_s == contract.DEFAULT_PROBE_AFTER_S == 6 * 3600
    assert config.index_retry_s == contract.DEFAULT_INDEX_RETRY_S == 3600


def test_the_demo_uses_the_same_settings_with_its_own_probe() -> None:
    demo = carousel_environment(DemoOptions(restore_delay_s=8.0), file_count=3)
    assert demo[Env.INDEX_RETRY_S] == local_carousel_env()[Env.INDEX_RETRY_S]
    assert demo[Env.PROBE_AFTER_S] == "2"  # half the demo's 8 s restore delay, at most 2 s
    assert local_carousel_env(probe_after_s=1.5) == {Env.PROBE_AFTER_S: "1.5", Env.INDEX_RETRY_S: "120"}
