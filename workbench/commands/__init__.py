"""CLI command modules. Each module defines `register(app: typer.Typer) -> None`.

`workbench.cli` discovers every module in this package, so a part of the
project adds its commands by adding a module here, without editing the CLI.
"""
