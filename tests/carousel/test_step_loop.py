"""`run_steps`, the loop of `python -m carousel step --loop` and `datacarousel step --loop --until-done`."""

from __future__ import annotations

import json
from typing import Any

import pytest

import carousel.__main__ as carousel_main
from carousel.step_report import StepReport


class _Steps:
    """A step whose reports leave `open_jobs[i]` jobs open after its i-th run."""

    def __init__(self, open_jobs: list[int]) -> None:
        self.open_jobs = open_jobs
        self.runs = 0

    def run(self) -> StepReport:
        report = StepReport(started_at=0.0, open_jobs=self.open_jobs[min(self.runs, len(self.open_jobs) - 1)])
        self.runs += 1
        return report


@pytest.fixture()
def steps(monkeypatch: pytest.MonkeyPatch) -> _Steps:
    fake = _Steps([2, 1, 0, 0, 0])
    monkeypatch.setattr(carousel_main, "build_step", lambda launcher=None: fake)
    return fake


def test_until_done_ends_the_loop_after_the_first_step_that_leaves_no_job_open(
    steps: _Steps, capsys: pytest.CaptureFixture[str]
) -> None:
    carousel_main.run_steps(loop=True, interval=0.0, launch=False, until_done=True)
    assert steps.runs == 3
    reports: list[dict[str, Any]] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["open_jobs"] for r in reports] == [2, 1, 0]


def test_without_until_done_the_loop_goes_on_while_no_job_is_open(steps: _Steps) -> None:
    carousel_main.run_steps(loop=True, interval=0.0, launch=False, max_steps=5)
    assert steps.runs == 5
