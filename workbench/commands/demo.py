"""`datacarousel demo`: a researcher's month on the embedded default, end to end (see workbench/demo/).

Every option, the job definition and its parameters are checked before anything starts: a bad one
ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from datacarousel import naming, registry
from datacarousel.errors import BadInput, ConfigError, DataCarouselError
from workbench import demo
from workbench.commands import selection
from workbench.commands.carousel import parse_params
from workbench.synthetic.presets import PRESETS

log = logging.getLogger(__name__)

EXIT_SIGNAL_BASE = 128
WIDE_OUTPUT = 200
OUT_OPTION = typer.Option(demo.DEFAULT_OUT_DIR, "--out", help="Where the summary and quick-looks go.")
STATE_DIR_OPTION = typer.Option(
    demo.DEFAULT_STATE_DIR, "--state-dir", help="The environment's state directory (reused if running)."
)


def demo_selection(chosen: selection.Selection) -> tuple[str, tuple[int, ...]]:
    """The demo's month and MISR paths from the selection; BadInput for what one month cannot be."""
    if chosen.orbits is not None:
        first, last = chosen.orbits
        raise BadInput(
            f"--orbits {first}-{last}: the demo runs the orbits of one month; give --year-month YYYY.MM "
            "(and --limit N for at most N of them)"
        )
    months = chosen.month_list()
    if len(months) > 1:
        raise BadInput(f"the demo runs one month, not {len(months)}: give one --year-month YYYY.MM")
    return (months[0] if months else demo.DEFAULT_MONTH), (chosen.paths or demo.DEFAULT_PATHS)


def _legacy_count(orbits: str | None, limit: int | None) -> tuple[str | None, int | None]:
    """`--orbits N` once meant "at most N orbits": a number below the first orbit still does (it is no orbit)."""
    if orbits is not None and orbits.strip().isdigit() and int(orbits) < naming.FIRST_ORBIT and limit is None:
        typer.secho(f"note: --orbits {orbits.strip()} read as --limit {int(orbits)}", err=True)
        return None, int(orbits)
    return orbits, limit


def _known() -> str:
    try:
        return ", ".join(registry.known()) or "none known"
    except ConfigError:
        return "see `datacarousel definitions list`"


def demo_command(  # noqa: PLR0917 - typer maps options to parameters
    year_month: selection.YearMonthOption = None,
    years: selection.YearsOption = None,
    months: selection.MonthsOption = None,
    path: selection.PathOption = None,
    orbits: selection.OrbitsOption = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most this many orbits of the month (default: all).")
    ] = None,
    month: selection.MonthAlias = None,
    paths: selection.PathsAlias = None,
    preset: str = typer.Option(demo.DEFAULT_PRESET, "--preset", help="Synthetic file size: tiny, small, medium."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic orbits."),
    tier: str = typer.Option("Bulk", "--tier", help="Restore tier: Bulk or Standard."),
    window_files: int = typer.Option(
        None, "--window-files", min=1, help="Files in the window (default: every file of the run)."
    ),
    window_bytes: int = typer.Option(None, "--window-bytes", min=1, help="Bytes in the window (default: no limit)."),
    restore_delay: float = typer.Option(
        demo.DEFAULT_RESTORE_DELAY_S, "--restore-delay", min=0.0, help="Seconds a restore takes (moto)."
    ),
    lease_days: int = typer.Option(demo.DEFAULT_LEASE_DAYS, "--lease-days", min=1, help="Days a restored copy lives."),
    definition: str = typer.Option(
        demo.DEFAULT_DEFINITION, "--definition", help=f"Job definition both researchers submit: {_known()}."
    ),
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Job parameter NAME=VALUE; repeat. Unset ones take their defaults "
            "(`datacarousel definitions show NAME`).",
        ),
    ] = None,
    resolution: float = typer.Option(
        None, "--resolution", help="ComputeRadiance only: grid cell size in degrees (= --param resolution=X)."
    ),
    interval: float = typer.Option(demo.DEFAULT_INTERVAL_S, "--interval", min=0.1, help="Seconds between steps."),
    timeout: float = typer.Option(demo.DEFAULT_TIMEOUT_S, "--timeout", min=1.0, help="Give up after this long."),
    keep: bool = typer.Option(False, "--keep", help="Keep the services up afterwards (explore with the CLI)."),
    containers: bool = typer.Option(False, "--containers", help="Run the workers in their container images."),
    out: Path = OUT_OPTION,
    state_dir: Path = STATE_DIR_OPTION,
) -> None:
    """Run a researcher's month end to end on the embedded default: restore, index, compute, summarise."""
    try:
        params = parse_params(param)
        orbits, limit = _legacy_count(orbits, limit)
        chosen = selection.parse_selection(
            year_month=year_month, years=years, months=months, path=path, orbits=orbits, paths=paths, month=month
        )
        chosen_month, chosen_paths = demo_selection(chosen)
    except BadInput as exc:
        raise selection.refuse(exc) from None
    options = demo.DemoOptions(
        month=chosen_month,
        paths=chosen_paths,
        orbits=limit,
        preset=preset,
        seed=seed,
        tier=tier,
        window_files=window_files,
        window_bytes=window_bytes,
        restore_delay_s=restore_delay,
        lease_days=lease_days,
        definition=definition,
        params=params,
        resolution=resolution,
        interval_s=interval,
        timeout_s=timeout,
        keep=keep,
        containers=containers,
        out_dir=out,
        state_dir=state_dir,
    )
    try:
        options.validate()  # the definition and its parameters too: before the environment comes up
        _check_preset_and_out(preset, out)
    except (demo.DemoError, BadInput) as exc:
        raise selection.refuse(exc) from None
    _run(options, out)


def _check_preset_and_out(preset: str, out: Path) -> None:
    """BadInput, before the environment comes up, for an unknown preset or an `--out` that cannot be a directory
    (the summary, the quick-looks and the log go there)."""
    if preset not in PRESETS:
        raise BadInput(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--out {out}: {exc.strerror or exc}") from None


def _console() -> Console:
    console = Console()
    if not console.is_terminal:  # a log or a pipe: wide enough for the summary's tables and S3 locations
        console = Console(width=max(console.width, WIDE_OUTPUT))
    return console


def _run(options: demo.DemoOptions, out: Path) -> None:
    """Run the checked demo; an interruption or a failure ends in its exit code, the details in the log."""
    console = _console()
    log_file = demo.configure_logging(out.resolve())
    try:
        demo.run(options, console)
    except demo.Interrupted as exc:
        console.print(f"[red]interrupted ({exc}): everything the demo started was taken down[/red]")
        raise typer.Exit(EXIT_SIGNAL_BASE + exc.signum) from None
    except (DataCarouselError, OSError) as exc:
        log.error("demo failed: %s", exc)
        console.print(f"[red]error: {exc}[/red]\n(log: {log_file})", soft_wrap=True)
        raise typer.Exit(1) from exc
    except Exception as exc:  # a service failed: say what, the traceback goes to the log
        log.exception("demo failed")
        console.print(f"[red]error: {type(exc).__name__}: {exc}[/red]\n(log: {log_file})", soft_wrap=True)
        raise typer.Exit(1) from exc


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
