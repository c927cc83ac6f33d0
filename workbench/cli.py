"""The `datacarousel` command line: every subcommand is registered from `workbench.commands`."""

from __future__ import annotations

import importlib
import logging
import pkgutil

import typer

from workbench import commands

app = typer.Typer(
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
