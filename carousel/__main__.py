"""`python -m carousel step [--loop --interval S]`: the carousel's regular process (the Batch job definition runs it).

Exit codes: 0 done, 1 a service failed (retry at the next schedule), 2 configuration error.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import typer
from botocore.exceptions import BotoCoreError, ClientError

from carousel.runtime import Context
from carousel.step import Step
from datacarousel import aws
from datacarousel.errors import ConfigError, DataCarouselError
from datacarousel.launcher import launcher_from_env

log = logging.getLogger("carousel")

app = typer.Typer(
    name="carousel", add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True, help=__doc__
)


def template_dict() -> dict[str, Any]:
    """The stack template (its job definitions are what the launcher runs)."""
    from datacarousel.local.environment import load_stack_module  # noqa: PLC0415 - only the local launcher needs it

    template = load_stack_module().build_template()
    return dict(template.to_dict())


def build_step(with_launcher: bool = True) -> Step:
    ctx = Context.from_env()
    launcher = launcher_from_env(aws.client("batch"), template_dict) if with_launcher else None
    return Step(ctx, launcher=launcher)


def run_steps(*, loop: bool, interval: float, launch: bool, max_steps: int | None = None) -> None:
    try:
        step = build_step(with_launcher=launch)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    count = 0
    while True:
        began = time.monotonic()
        try:
            report = step.run()
        except (ClientError, BotoCoreError, DataCarouselError) as exc:
            # Nothing is lost: every effect recorded so far stays, the next step redoes the rest.
            log.error("carousel step failed: %s: %s", type(exc).__name__, exc)
            if not loop:
                raise typer.Exit(1) from exc
        else:
            print(json.dumps(report.as_dict()), flush=True)  # noqa: T201 - the report is this program's output
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
    app()
