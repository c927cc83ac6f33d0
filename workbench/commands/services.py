"""`datacarousel up | down | services | env`: the embedded environment (moto + HSDS + the stack) on loopback;
`env --stack NAME`: a deployed stack's variables instead (`workbench/stack_outputs.py`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from datacarousel import contract
from workbench import stack_outputs, transfer
from workbench.local import environment, moto_server
from workbench.local.errors import LocalEnvironmentError

log = logging.getLogger(__name__)

STATE_DIR_OPTION = typer.Option(
    environment.DEFAULT_STATE_DIR,
    "--state-dir",
    envvar="DC_STATE_DIR",
    help="Where the environment keeps PID files, logs, HSDS storage and the env file.",
)


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def _print_status(env: environment.LocalEnvironment) -> None:
    table = Table(title=f"Data Carousel embedded environment ({env.state_dir})")
    for column in ("service", "state", "pid", "all processes"):
        table.add_column(column)
    for service in env.services:
        state = "running" if service.running else "STOPPED"
        table.add_row(service.name, state, str(service.pid or ""), " ".join(map(str, service.pids)))
    console = Console()
    console.print(table)
    for service in env.services:
        console.print(f"{service.name}: {service.endpoint}  (log {service.log_file})", soft_wrap=True)
    stack = env.env.get("DC_STACK_NAME", "")
    console.print(f"stack: {stack or '-'} {env.stack_status or ''}")
    if env.missing_outputs and env.stack_status != "EMPTY_TEMPLATE":
        console.print(f"[yellow]stack outputs missing: {', '.join(env.missing_outputs)}[/yellow]")
    console.print(f'env file: {env.env_file} (load it with: eval "$(datacarousel env)")', soft_wrap=True)


MOTO_PORT_OPTION = typer.Option(None, "--moto-port", help="Port for moto on 127.0.0.1 (default: a free one).")
DN_COUNT_OPTION = typer.Option(2, "--dn-count", min=1, help="Number of HSDS data nodes.")
TIMEOUT_OPTION = typer.Option(60.0, "--timeout", help="Seconds to wait for each service to be ready.")
STACK_FILE_OPTION = typer.Option(
    None, "--stack-file", envvar="DC_STACK_FILE", help="Template module to create instead of ./stack.py."
)


def up(
    state_dir: Path = STATE_DIR_OPTION,
    moto_port: int | None = MOTO_PORT_OPTION,
    dn_count: int = DN_COUNT_OPTION,
    timeout: float = TIMEOUT_OPTION,
    stack_file: Path | None = STACK_FILE_OPTION,
) -> None:
    """Start moto, create the stack in it, start HSDS, and write the env file (or report the running set)."""
    try:
        env = environment.up(state_dir, moto_port=moto_port, dn_count=dn_count, timeout=timeout, stack_file=stack_file)
    except LocalEnvironmentError as exc:
        raise _fail(exc) from exc
    if not env.started:
        typer.echo("already running:")
    _print_status(env)


def _warn_results_will_be_lost(state_dir: Path) -> None:
    """One warning line when moto's results bucket holds results: they go with moto. Never blocks `down`."""
    current = environment.status(state_dir)
    if current is None:
        return
    bucket = current.env.get(contract.Env.RESULTS_BUCKET, "")
    moto_up = any(s.name == moto_server.NAME and s.running for s in current.services)
    if not bucket or not moto_up or not current.env.get(contract.Env.AWS_ENDPOINT_URL):
        return
    try:
        jobs = transfer.jobs_with_results(transfer.environment_s3(current.env), bucket)
    except (BotoCoreError, ClientError) as exc:  # moto not answering: nothing to warn about, stop anyway
        log.debug("could not list %s before stopping: %s", bucket, exc)
        return
    if jobs:
        typer.secho(transfer.loss_warning(bucket, jobs), err=True, fg=typer.colors.YELLOW)


def down(state_dir: Path = STATE_DIR_OPTION) -> None:
    """Stop every process `up` started (HSDS and its nodes, moto), by PID."""
    _warn_results_will_be_lost(state_dir)
    try:
        stopped = environment.down(state_dir)
    except LocalEnvironmentError as exc:
        raise _fail(exc) from exc
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def services(state_dir: Path = STATE_DIR_OPTION) -> None:
    """Show the environment's services, their PIDs, endpoints and logs (exit 1 when not fully running)."""
    env = environment.status(state_dir)
    if env is None:
        typer.echo(f"not running (state directory {Path(state_dir).resolve()}); start it with `datacarousel up`")
        raise typer.Exit(code=1)
    _print_status(env)
    if not all(s.running for s in env.services):
        raise typer.Exit(code=1)


ENV_STACK_OPTION = typer.Option(
    None,
    "--stack",
    help="A deployed stack's name: print its variables (read with your AWS credentials) instead of the "
    "embedded environment's. See docs/researcher-on-aws.md.",
)
ENV_REGION_OPTION = typer.Option(
    None, "--region", help="The stack's region (with --stack; default: AWS_DEFAULT_REGION or your profile's)."
)


def _stack_env(stack: str, region: str | None) -> dict[str, str]:
    """The variables of a deployed stack (`stack_outputs.researcher_env`): one error line and exit 2
    (1 for what the user cannot fix) when it cannot be read."""
    endpoint = os.environ.get(contract.Env.AWS_ENDPOINT_URL)
    if endpoint:  # left over from `eval "$(datacarousel env)"`? Then this reads the embedded environment's stack.
        typer.secho(f"note: reading the stack at AWS_ENDPOINT_URL={endpoint}; unset it to reach AWS", err=True)
    try:
        found = stack_outputs.read_stack(stack, region)
    except stack_outputs.StackReadError as exc:
        typer.secho(f"error: {' '.join(str(exc).split())}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=exc.exit_code) from exc
    if found.missing_outputs:
        typer.secho(
            f"warning: stack {found.stack_name!r} ({found.status}) lacks the outputs "
            f"{', '.join(found.missing_outputs)}: their variables are not set",
            err=True,
            fg=typer.colors.YELLOW,
        )
    return found.env


def env(
    state_dir: Path = STATE_DIR_OPTION,
    stack: str | None = ENV_STACK_OPTION,
    region: str | None = ENV_REGION_OPTION,
) -> None:
    """Print `export K=V` lines for the running environment: eval "$(datacarousel env)"; with --stack NAME, for a
    deployed stack: eval "$(datacarousel env --stack NAME --region R)"."""
    if stack is not None:
        values = _stack_env(stack, region)
    elif region is not None:
        typer.secho(
            "error: --region goes with --stack NAME (the embedded environment has its own)",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(code=2)
    else:
        try:
            values = environment.require_env(state_dir)
        except LocalEnvironmentError as exc:
            raise _fail(exc) from exc
    for line in environment.export_lines(values):
        print(line)  # noqa: T201 - this command's output


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("services")(services)
    app.command("env")(env)
