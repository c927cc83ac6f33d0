"""Settings from the environment: every missing or malformed variable is named in one error."""

from __future__ import annotations

import pytest

from datacarousel.config import Settings, setting_env_names
from datacarousel.contract import Env
from datacarousel.errors import ConfigError

FULL = {
    Env.ARCHIVE_BUCKET: "archive",
    Env.INDEX_QUEUE_URL: "http://127.0.0.1:5000/123456789012/index.fifo",
    Env.HS_ENDPOINT: "http+unix://%2Ftmp%2Fs%2Fsn_1.sock",
    Env.HSDS_FOLDER: "/home/u/basicfusion/",
    Env.FILES_TABLE: "BasicFusionFiles",
}


def test_reads_what_is_needed() -> None:
    settings = Settings.from_env(["archive_bucket", "index_queue_url", "hs_endpoint", "hsds_folder"], FULL)
    assert settings.archive_bucket == "archive"
    assert settings.index_queue_url == FULL[Env.INDEX_QUEUE_URL]
    assert settings.hs_endpoint.startswith("http+unix://")  # type: ignore[union-attr]
    assert settings.hsds_folder == "/home/u/basicfusion/"
    assert settings.files_table is None  # present but not needed: not read


def test_defaults() -> None:
    settings = Settings.from_env([], {})
    assert settings.stack_name == "datacarousel"
    assert settings.window_files == 2000
    assert settings.restore_tier == "Bulk"
    assert settings.restore_days == 7
    assert settings.log_level == "INFO"
    assert settings.archive_bucket is None


def test_all_missing_variables_are_named_at_once() -> None:
    need = ["archive_bucket", "results_bucket", "index_queue_url", "files_table", "hs_password"]
    with pytest.raises(ConfigError) as info:
        Settings.from_env(need, {})
    text = str(info.value)
    for env in (Env.ARCHIVE_BUCKET, Env.RESULTS_BUCKET, Env.INDEX_QUEUE_URL, Env.FILES_TABLE, Env.HS_PASSWORD):
        assert f"{env} is not set" in text


def test_empty_values_count_as_missing() -> None:
    with pytest.raises(ConfigError, match=f"{Env.ARCHIVE_BUCKET} is not set"):
        Settings.from_env(["archive_bucket"], {Env.ARCHIVE_BUCKET: ""})


def test_malformed_values_are_named_with_the_reason() -> None:
    env = {
        Env.INDEX_QUEUE_URL: "ftp://queue",
        Env.HSDS_FOLDER: "home/u",
        Env.WINDOW_FILES: "-3",
        Env.RESTORE_DAYS: "seven",
        Env.RESTORE_TIER: "Fast",
    }
    with pytest.raises(ConfigError) as info:
        Settings.from_env(["index_queue_url", "hsds_folder"], env)
    text = str(info.value)
    assert f"{Env.INDEX_QUEUE_URL}='ftp://queue' is malformed: must be an http(s) URL" in text
    assert f"{Env.HSDS_FOLDER}='home/u' is malformed: must start and end with '/'" in text
    # Settings with defaults are checked whenever they are set, needed or not.
    assert f"{Env.WINDOW_FILES}='-3' is malformed: must be a positive integer" in text
    assert f"{Env.RESTORE_DAYS}='seven' is malformed" in text
    assert f"{Env.RESTORE_TIER}='Fast' is malformed" in text


def test_missing_and_malformed_together() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(["archive_bucket", "index_queue_url"], {Env.INDEX_QUEUE_URL: "queue"})
    assert f"{Env.ARCHIVE_BUCKET} is not set" in str(info.value)
    assert f"{Env.INDEX_QUEUE_URL}='queue' is malformed" in str(info.value)


def test_unknown_setting_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown setting"):
        Settings.from_env(["archive_bucket", "no_such_setting"], FULL)


def test_require() -> None:
    settings = Settings.from_env(["archive_bucket"], FULL)
    assert settings.require("archive_bucket") == "archive"
    with pytest.raises(ConfigError, match=f"{Env.RESULTS_BUCKET} is not set"):
        settings.require("results_bucket")


def test_every_setting_has_an_environment_variable() -> None:
    names = setting_env_names()
    assert names["hs_endpoint"] == "HS_ENDPOINT"
    assert all(env.startswith(("DC_", "HS_")) for env in names.values())
    assert len(set(names.values())) == len(names)


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(Env.ARCHIVE_BUCKET, "from-os")
    assert Settings.from_env(["archive_bucket"]).archive_bucket == "from-os"
