"""`python -m carousel step [--loop --interval S]`: the carousel's regular process (the Batch job definition runs it).

Exit codes: 0 done, 1 a service failed (retry at the next schedule), 2 configuration error.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

import typer
from botocore.exceptions import BotoCoreError, ClientError

from carousel.launcher import Launcher, batch_launcher_from_env
from carousel.runtime import Context
from carousel.step import Step
from datacarousel import aws
from datacarousel.errors import EXIT_USAGE, ConfigError, DataCarouselError, outcome, run_one_line

log = logging.getLogger("carousel")

app = typer.Typer(
    name="carousel", add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True, help=__doc__
)


LauncherFactory = Callable[[], Launcher]


def batch_launcher() -> Launcher:
    return batch_launcher_from_env(aws.client("batch"))


def build_step(launcher: LauncherFactory | None = batch_launcher) -> Step:
    """The step over the settings in the environment; `launcher` None: a step that starts no workers."""
    ctx = Context.from_env()
    return Step(ctx, launcher=launcher() if launcher is not None else None)


def run_steps(
    *,
    loop: bool,
    interval: float,
    launch: bool,
    max_steps: int | None = None,
    until_done: bool = False,
    launcher: LauncherFactory = batch_launcher,
) -> None:
    """Step after step (or one); `launcher` builds where workers run (Batch here; the workbench passes its own).
    `until_done`: the loop ends after a step that leaves no job open (a researcher's session on the embedded
    environment; on AWS a schedule runs the step and never needs it)."""
    try:
        step = build_step(launcher if launch else None)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    count = 0
    while True:
        began = time.monotonic()
        try:
            report = step.run()
        except (ClientError, BotoCoreError, DataCarouselError) as exc:
            if isinstance(exc, ConfigError | ClientError | BotoCoreError) and outcome(exc).code == EXIT_USAGE:
                raise  # no credentials, no region, a table not there: no next step fixes it (one line at the edge)
            # Nothing is lost: every effect recorded so far stays, the next step redoes the rest.
            log.error("carousel step failed: %s: %s", type(exc).__name__, exc)
            if not loop:
                raise typer.Exit(1) from exc
        else:
            print(json.dumps(report.as_dict()), flush=True)  # noqa: T201 - the report is this program's output
            if until_done and report.open_jobs == 0:
                log.info("no job is open: the carousel loop ends (--until-done)")
                return
        count += 1
        if not loop or (max_steps is not None and count >= max_steps):
            return
        time.sleep(max(0.0, interval - (time.monotonic() - began)))


@app.callback()
def main(log_level: str = typer.Option("INFO", "--log-level", envvar="DC_LOG_LEVEL")) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def step(
    loop: bool = typer.Option(False, "--loop", help="Run step after step."),
    interval: float = typer.Option(60.0, "--interval", min=0.0, help="Seconds from one step's start to the next."),
    launch: bool = typer.Option(True, "--launch/--no-launch", help="Start workers for the backlogs."),
    max_steps: int = typer.Option(None, "--max-steps", min=1, help="With --loop: stop after this many steps."),
) -> None:
    """One carousel step: restore events, plan, apply, launch workers."""
    run_steps(loop=loop, interval=interval, launch=launch, max_steps=max_steps)


if __name__ == "__main__":
    # Every failure ends in one line on stderr and its exit code (2: no retry fixes it), never a traceback.
    sys.exit(run_one_line(lambda: typer.main.get_command(app).main(standalone_mode=False)))
