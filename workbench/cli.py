"""The `datacarousel` command line: every subcommand is registered from `workbench.commands`."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from datacarousel.errors import run_one_line
from workbench import commands


class OneLineGroup(TyperGroup):
    """The CLI's edge: every failure of every subcommand (a usage error, AWS, a path, a bug) ends in one line on
    stderr and its exit code (2: bad input or configuration; 1: retry later), never a traceback."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        def call() -> Any:
            return TyperGroup.main(self, args, prog_name, complete_var, standalone_mode=False, **extra)

        code = run_one_line(call)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=OneLineGroup,
    name="datacarousel",
    help="Data Carousel: batch analyses over the Terra BasicFusion archive in S3 Glacier Deep Archive.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)


@app.callback()
def main(
    log_level: str = typer.Option("INFO", "--log-level", envvar="DC_LOG_LEVEL", help="Python logging level."),
) -> None:
    """Configure logging once for every subcommand."""
    level = log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries(level)


# The AWS SDK's own INFO lines ("Found credentials in environment variables.", ...) are noise for a researcher.
LIBRARY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")


def quiet_libraries(level: str) -> None:
    """The AWS SDK's loggers at WARNING (or `level` if higher) unless `level` is DEBUG: only the project's lines."""
    if level == "DEBUG":
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        return
    numeric = logging.getLevelName(level)  # e.g. ERROR -> 40: their WARNINGs are off too
    floor = max(logging.WARNING, numeric) if isinstance(numeric, int) else logging.WARNING
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(floor)


_register_all()
