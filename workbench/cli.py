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
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


_register_all()
