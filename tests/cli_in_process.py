"""`datacarousel ARGS` run in the test's own process, as the installed entry point runs it.

Starting the CLI as a new Python costs about a second of imports a run; the commands' failures before
anything starts are the same in process (Typer's runner, the standalone exit code, logging bound to the
run's own stderr so that log lines count as lines).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from typer.testing import CliRunner

from workbench.cli import app

# The variables that point a run at an environment, an account or HSDS: a run sees only those it is given.
SCRUBBED_PREFIXES = ("AWS_", "DC_", "HS_", "BOTO_")


@dataclass(frozen=True)
class Run:
    code: int
    stderr: str
    seconds: float
    escaped: BaseException | None = None  # an exception that got past the CLI's edge (a bug)


def scrubbed(environ: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str | None]:
    """`env` over `environ` with every AWS/Data Carousel/HSDS variable not in `env` removed."""
    gone: dict[str, str | None] = {k: None for k in environ if k.startswith(SCRUBBED_PREFIXES) and k not in env}
    return {**gone, **env}


def run_cli(args: list[str], env: Mapping[str, str]) -> Run:
    """`datacarousel ARGS` with `env`'s variables (and none of the scrubbed others) in this process."""
    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:  # logging.basicConfig binds to *this* run's stderr, so its lines are counted
        root.removeHandler(handler)
    began = time.monotonic()
    try:
        result = CliRunner().invoke(app, args, env=scrubbed(os.environ, env))
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
    escaped = result.exception if not isinstance(result.exception, SystemExit) else None
    return Run(result.exit_code, result.stderr, time.monotonic() - began, escaped)
