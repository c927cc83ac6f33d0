"""Each job runs as its own HSDS identity, locally as on AWS (issue 19): the local launcher's share of it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

import stack_template
from carousel.launcher import job_definitions
from datacarousel.contract import JobDefinitionName
from datacarousel.errors import ConfigError
from workbench.local import hsds_server
from workbench.local.launcher import LocalLauncher


def test_each_job_gets_its_own_hsds_identity(tmp_path: Path) -> None:
    """The pipeline runs as the env file's (writer) user, an analysis as the reader (from the file `up`
    wrote), the loader as nobody; without a reader account an analysis does not start."""
    definitions = job_definitions(json.loads(stack_template.template_json()))
    credentials = hsds_server.Credentials.generate("writer")
    hsds_server.write_reader_file(tmp_path, credentials)
    assert stat.S_IMODE((tmp_path / hsds_server.READER_FILE).stat().st_mode) == 0o600
    env = {"PATH": "/usr/bin:/bin", "HS_USERNAME": "writer", "HS_PASSWORD": credentials.password}
    launcher = LocalLauncher(definitions, env, tmp_path)

    def seen(name: str) -> tuple[str | None, str | None]:
        job = launcher.environment_for(definitions[name])
        return job.get("HS_USERNAME"), job.get("HS_PASSWORD")

    for name in (JobDefinitionName.INDEX_FILE, JobDefinitionName.RECORD_METADATA, JobDefinitionName.CAROUSEL):
        assert seen(name.value) == ("writer", credentials.password), name
    for analysis in ("ComputeRadiance", "RegionExtract"):
        assert seen(analysis) == ("writer-reader", credentials.reader_password), analysis
    assert seen(JobDefinitionName.LOADER.value) == (None, None)
    (tmp_path / hsds_server.READER_FILE).unlink()
    with pytest.raises(ConfigError, match="reader"):
        seen("ComputeRadiance")
