"""Pure parts of the carousel's adapters: time conversions, parameter and owner checks, snapshot edits."""

from __future__ import annotations

import dataclasses

import pytest

from carousel.jobs import validate_owner
from carousel.model import Snapshot
from carousel.planner import Policy
from carousel.runtime import planner_config
from carousel.step import with_job_file_states
from carousel.store import iso_seconds, to_seconds
from datacarousel.config import Settings
from datacarousel.contract import JobFileState
from datacarousel.errors import BadInput, ConfigError
from tests.carousel.carousel_builders import file, job, wants


def test_times_round_trip_to_whole_seconds() -> None:
    assert iso_seconds(1_767_225_600.9) == "2026-01-01T00:00:00Z"
    assert to_seconds("2026-01-01T00:00:00Z") == 1_767_225_600.0
    assert to_seconds(1_767_225_600) == 1_767_225_600.0
    assert to_seconds(None) is None and to_seconds("") is None
    assert to_seconds("garbage") is None


@pytest.mark.parametrize("owner", ["", "Alice", "a b", "x" * 70, "-lead", "a;drop", "alice\n"])
def test_bad_owners_are_refused(owner: str) -> None:
    with pytest.raises(BadInput, match="owner must match"):
        validate_owner(owner)


def test_job_file_state_edits_touch_only_the_named_rows() -> None:
    snap = Snapshot.from_records(
        [file(1000), file(1001)], [job("a"), job("b")], [*wants("a", [1000, 1001]), *wants("b", [1001])]
    )
    names = snap.files.names
    edited = with_job_file_states(snap, {("a", names[1]): JobFileState.DONE, ("zz", names[0]): JobFileState.DONE})
    assert edited.job_file_states("a") == {names[0]: JobFileState.WAITING, names[1]: JobFileState.DONE}
    assert edited.job_file_states("b") == {names[1]: JobFileState.WAITING}
    assert snap.job_file_states("a")[names[1]] is JobFileState.WAITING  # the original is unchanged


def test_the_settings_read_the_carousel_variables_and_name_every_bad_one() -> None:
    env = {"DC_PROBE_AFTER_S": "5", "DC_CAROUSEL_POLICY": "rotation", "DC_MAX_JOB_WORKERS": "3"}
    settings = Settings.from_env(need=[], environ=env)
    assert (settings.probe_after_s, settings.carousel_policy, settings.max_job_workers) == (5.0, "rotation", 3)
    assert planner_config(settings).policy is Policy.ROTATION
    # Unset, the defaults: the same planner as one made from Settings() by hand.
    assert planner_config(Settings.from_env(need=[], environ={})) == planner_config(Settings())
    with pytest.raises(ConfigError) as err:
        Settings.from_env(
            need=[],
            environ={"DC_PROBE_AFTER_S": "-1", "DC_MAX_INDEX_WORKERS": "many", "DC_CAROUSEL_POLICY": "random"},
        )
    text = str(err.value)
    assert "DC_PROBE_AFTER_S" in text and "DC_MAX_INDEX_WORKERS" in text and "DC_CAROUSEL_POLICY" in text


def test_planner_config_follows_the_shared_settings() -> None:
    settings = Settings.from_env(need=[], environ={"DC_RESTORE_DAYS": "1", "DC_WINDOW_FILES": "10"})
    config = planner_config(dataclasses.replace(settings, probe_after_s=30.0))
    assert (config.lease_days, config.window_files, config.probe_after_s) == (1, 10, 30.0)
    assert config.renew_margin_s < 86_400 and config.probe_every_s <= 30.0
