"""`datacarousel images build|list|push`: the workers' container images (see docs/images.md)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from datacarousel import aws
from datacarousel.errors import one_line
from workbench import images

images_app = typer.Typer(help="Build, list and push the workers' container images.", no_args_is_help=True)

_ENGINE_HELP = "docker or podman; default: docker when a Docker engine answers, else podman."
EngineOption = Annotated[str | None, typer.Option("--engine", help=_ENGINE_HELP)]


def _console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=200)


def _image_error(exc: images.ImageError) -> typer.Exit:
    """A build or push that failed: one line on stderr (the engine's own output is above it), exit 1."""
    typer.secho(f"error: {one_line(exc)}", err=True, fg=typer.colors.RED)
    return typer.Exit(1)


def _engine(name: str | None) -> images.Engine:
    try:
        return images.detect_engine(name)
    except images.ImageError as exc:
        raise typer.BadParameter(str(exc), param_hint="--engine") from exc


@images_app.command("build")
def build(
    *,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Image to build (repeatable; `loader` or `datacarousel-loader`). Default: all."),
    ] = None,
    engine: EngineOption = None,
    tag: Annotated[str, typer.Option("--tag", help="Tag of the built images.")] = images.DEFAULT_TAG,
    base_image: Annotated[
        str | None,
        typer.Option(
            "--base-image",
            help=f"Start of the dependency image. Default: {images.PUBLIC_BASE_IMAGE} with docker, "
            f"{images.LOCAL_DEBIAN_IMAGE} (made with debootstrap when missing) with podman.",
        ),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every layer.")] = False,
) -> None:
    """Build the shared dependency image, then the chosen worker images."""
    chosen = _engine(engine)
    try:
        results = images.build_images(
            only, engine=chosen, tag=tag, base_image=base_image, no_cache=no_cache, output=sys.stderr
        )
    except images.ImageError as exc:
        raise _image_error(exc) from exc
    table = Table("image", "reference", "build s", "size MB")
    for result in results:
        table.add_row(result.name, result.ref, f"{result.seconds:.1f}", f"{result.size_bytes / 1e6:.0f}")
    _console().print(table)


@images_app.command("list")
def list_(
    *,
    engine: EngineOption = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only this tag.")] = None,
) -> None:
    """The project's images this engine holds, with their sizes and template parameters."""
    rows = images.list_images(_engine(engine), tag)
    table = Table("image", "reference", "id", "size MB", "template parameter")
    for row in rows:
        spec = images.IMAGES[row["name"]]
        table.add_row(
            row["name"], row["ref"], row["id"], f"{row['size_bytes'] / 1e6:.0f}", spec.template_parameter or "-"
        )
    _console().print(table)


@images_app.command("push")
def push(
    *,
    registry: Annotated[str, typer.Option("--registry", help="<account>.dkr.ecr.<region>.amazonaws.com")],
    tag: Annotated[str, typer.Option("--tag", help="Tag in the registry (never reuse one: tags are immutable).")],
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Image to push (repeatable). Default: every worker image.")
    ] = None,
    engine: EngineOption = None,
    local_tag: Annotated[
        str, typer.Option("--local-tag", help="Tag of the local images to push.")
    ] = images.DEFAULT_TAG,
    create_repositories: Annotated[
        bool,
        typer.Option("--create-repositories", help="Create missing ECR repositories (scan on push, encrypted)."),
    ] = False,
) -> None:
    """Log in to ECR (boto3 get_authorization_token), tag and push; print the stack parameters."""
    chosen = _engine(engine) if engine else None  # a bad --engine is refused before AWS is asked anything
    parts = registry.split(".")
    region = parts[3] if len(parts) >= 6 and parts[1:3] == ["dkr", "ecr"] else None
    ecr = aws.client("ecr", region_name=region) if region else aws.client("ecr")
    aws.check_credentials()  # before the engine logs in, tags and pushes anything
    try:
        uris = images.push_images(
            registry,
            tag,
            ecr=ecr,
            engine=chosen or _engine(None),
            names=only,
            local_tag=local_tag,
            create_repositories=create_repositories,
        )
    except images.ImageError as exc:
        raise _image_error(exc) from exc
    for parameter, uri in uris.items():
        print(f"{parameter}={uri}")  # noqa: T201  (the command's output: stack parameters)


def register(app: typer.Typer) -> None:
    app.add_typer(images_app, name="images")
