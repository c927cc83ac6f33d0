"""Tables and a results bucket in moto's in-process fakes, reached by the CLI through the environment."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner

from carousel.store import Tables, iso_seconds
from datacarousel.contract import (
    FILES_TABLE,
    JOB_FILES_TABLE,
    JOBS_TABLE,
    Env,
    FileAttr,
    FileState,
    JobAttr,
    JobFileAttr,
    JobFileState,
    JobState,
)
from datacarousel.naming import BasicFusionName
from workbench.cli import app

RESULTS = "dc-results"


@dataclass
class CliWorld:
    tables: Tables
    s3: Any

    def file(self, name: BasicFusionName, state: FileState = FileState.ARCHIVED, error: str = "") -> None:
        self.tables.files.ddb.put_item(
            TableName=self.tables.files.table,
            Item={
                FileAttr.FILE_NAME: {"S": name.file_name},
                FileAttr.ORBIT: {"N": str(name.orbit)},
                FileAttr.YEAR_MONTH: {"S": name.year_month},
                FileAttr.STATE: {"S": state.value},
                FileAttr.STATE_VERSION: {"N": "1"},
                FileAttr.SIZE: {"N": "1000"},
                **({FileAttr.ERROR: {"S": error}} if error else {}),
            },
        )

    def job(
        self,
        job_id: str,
        files: dict[BasicFusionName, tuple[JobFileState, str]],
        state: JobState,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.tables.job_files.put_new(
            [
                {
                    JobFileAttr.JOB_ID: job_id,
                    JobFileAttr.FILE_NAME: name.file_name,
                    JobFileAttr.STATE: jf_state.value,
                    JobFileAttr.ORBIT: name.orbit,
                    **({JobFileAttr.ERROR: error} if error else {}),
                }
                for name, (jf_state, error) in files.items()
            ]
        )
        assert self.tables.jobs.create(
            {
                JobAttr.JOB_ID: job_id,
                JobAttr.OWNER: "alice",
                JobAttr.DEFINITION: "ComputeRadiance",
                JobAttr.STATE: state.value,
                JobAttr.SUBMITTED_AT: iso_seconds(time.time() - 3600),
                **(attrs or {}),
            }
        )

    def state(self, name: BasicFusionName) -> str:
        item = self.tables.files.get(name.file_name)
        assert item is not None
        return str(item[FileAttr.STATE])


def make_world(fake_aws: Any, monkeypatch: pytest.MonkeyPatch) -> CliWorld:
    fake_aws.s3.create_bucket(Bucket=RESULTS)
    for schema, env in (
        (FILES_TABLE, Env.FILES_TABLE),
        (JOBS_TABLE, Env.JOBS_TABLE),
        (JOB_FILES_TABLE, Env.JOB_FILES_TABLE),
    ):
        monkeypatch.setenv(env, fake_aws.table(schema))
    monkeypatch.setenv(Env.RESULTS_BUCKET, RESULTS)
    monkeypatch.setenv("COLUMNS", "250")  # rich's tables: room for file names and reasons
    tables = Tables.from_names(fake_aws.ddb, FILES_TABLE.table_name, JOBS_TABLE.table_name, JOB_FILES_TABLE.table_name)
    return CliWorld(tables, fake_aws.s3)


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def one_line_error(result: Any) -> str:
    """The error line on stderr, checking there is exactly one and no traceback."""
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, result.stderr
    assert "Traceback" not in result.output, result.output
    return str(err)
