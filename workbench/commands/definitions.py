"""`datacarousel definitions list|show`: the analyses a researcher can submit, from their descriptions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from datacarousel import aws, definitions, registry
from datacarousel.config import Settings
from datacarousel.contract import Env
from datacarousel.errors import BadInput, ConfigError, DataCarouselError, outcome
from workbench import registration

definitions_app = typer.Typer(help="The job definitions (analyses) researchers can submit.", no_args_is_help=True)


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


@definitions_app.command("list")
def list_definitions(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """One line per job definition: its name, what it does, its size and whether it reduces."""
    try:
        known = registry.known(registry.registered_from_env())
    except ConfigError as exc:
        raise _fail(exc) from exc
    if as_json:
        print(json.dumps({name: d.to_dict() for name, d in known.items()}, indent=2))  # noqa: T201
        return
    table = Table("definition", "does", "vCPU", "memory", "reducer", box=None)
    for d in known.values():
        table.add_row(d.name, d.summary, str(d.vcpus), f"{d.memory_mib} MiB", "yes" if d.reducer else "no")
    Console(width=160).print(table)


@definitions_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The job definition, e.g. ComputeRadiance.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A job definition's parameters with their types, defaults and allowed values."""
    try:
        definition = registry.get(name, registry.registered_from_env())
    except (BadInput, ConfigError) as exc:
        raise _fail(exc) from exc
    if as_json:
        print(json.dumps(definition.to_dict(), indent=2))  # noqa: T201
        return
    print(definition.help_text())  # noqa: T201


@definitions_app.command("register")
def register_definition(
    path: Annotated[Path, typer.Argument(help="The analysis's folder (with definition.toml) or its definition.toml.")],
    image: Annotated[
        str | None,
        typer.Option("--image", help="Image URI the job runs (default in the embedded environment: the local build)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Register a research group's analysis with the stack: its queues and its Batch job definition."""
    description = path / registry.DESCRIPTION_FILE if path.is_dir() else path
    try:
        definition = definitions.load(description)
        settings = Settings.from_env(need=["stack_name"])
        local = os.environ.get(Env.LAUNCHER) == "local"
        if image is None and not local:
            raise BadInput("--image is required on AWS: the URI of the analysis's pushed image")
        region = os.environ.get(Env.AWS_REGION) or os.environ.get("AWS_REGION") or aws.client("sts").meta.region_name
        done = registration.register(
            definition,
            cfn=aws.client("cloudformation"),
            sqs=aws.client("sqs"),
            batch=aws.client("batch"),
            stack=settings.require("stack_name"),
            region=str(region),
            image=image or f"localhost/{definition.image}:local",
            local_code=description.parent if local else None,
        )
    except (BadInput, ConfigError) as exc:
        raise _fail(exc) from exc
    except DataCarouselError as exc:  # TransientError: retry later; one caused by missing credentials: exit 2
        ended = outcome(exc)
        typer.secho(ended.line, err=True, fg=typer.colors.RED)
        raise typer.Exit(code=ended.code) from exc
    if as_json:
        print(json.dumps(done.as_dict(), indent=2))  # noqa: T201
        return
    print(  # noqa: T201
        f"registered {done.name} (revision {done.revision}); work queue {done.queue_url}\n"
        f"submit with: datacarousel submit --definition {done.name} --owner <you> ..."
    )


def register(app: typer.Typer) -> None:
    app.add_typer(definitions_app, name="definitions")
