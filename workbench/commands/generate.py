"""`datacarousel generate` (synthetic orbit files) and `datacarousel catalogue` (the archive's file list)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datacarousel.errors import BadInput
from workbench.commands import selection
from workbench.synthetic.catalogue import archive_catalogue, write_catalogue
from workbench.synthetic.generator import DEFECTS, generate_orbit
from workbench.synthetic.presets import PRESETS
from workbench.synthetic.selection import select_orbits

OutDir = Annotated[Path, typer.Option("--out", help="Directory for the generated files.")]
Orbit = Annotated[list[int] | None, typer.Option("--orbit", hidden=True)]  # old: one orbit (repeatable)
Limit = Annotated[int | None, typer.Option("--limit", min=1, help="Generate at most this many orbits.")]
PresetName = Annotated[str, typer.Option("--preset", help=f"Size preset: {', '.join(PRESETS)}.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed: the same orbit, preset and seed give identical bytes.")]
Defects = Annotated[
    list[str] | None, typer.Option("--defect", help=f"Inject a defect (repeatable): {', '.join(DEFECTS)}.")
]
CatalogueOut = Annotated[Path, typer.Option("--out", help="Output file: .csv or .json.")]
SizeSeed = Annotated[int, typer.Option("--seed", help="Seed of the file sizes.")]
Prefix = Annotated[str, typer.Option("--prefix", help="Key prefix in the archive bucket.")]


def generate(
    *,
    out: OutDir,
    year_month: selection.YearMonthOption = None,
    years: selection.YearsOption = None,
    months: selection.MonthsOption = None,
    path: selection.PathOption = None,
    orbits: selection.OrbitsOption = None,
    paths: selection.PathsAlias = None,
    orbit: Orbit = None,
    limit: Limit = None,
    preset: PresetName = "small",
    seed: Seed = 0,
    defect: Defects = None,
) -> None:
    """Write synthetic BasicFusion orbit files in the real layout (docs/synthetic-data.md)."""
    if preset not in PRESETS:
        raise typer.BadParameter(f"choose one of {', '.join(PRESETS)}", param_hint="--preset")
    defects = defect or []
    bad = sorted(set(defects) - set(DEFECTS))
    if bad:
        raise typer.BadParameter(f"unknown {bad}; choose from {', '.join(DEFECTS)}", param_hint="--defect")
    try:
        chosen = selection.parse_selection(
            year_month=year_month, years=years, months=months, path=path, orbits=orbits, paths=paths
        )
        numbers = orbits_of(chosen, [selection.check_orbit("--orbit", o) for o in orbit or []])
    except (BadInput, ValueError) as exc:
        raise selection.refuse(exc) from None
    if limit is not None:
        numbers = numbers[:limit]
    if not numbers:
        raise selection.refuse(ValueError("no orbit selected: give --orbits FIRST-LAST or --year-month (and --path)"))
    for number in numbers:
        written = generate_orbit(number, out, preset=preset, seed=seed, defects=defects)
        typer.echo(f"{written}\t{written.stat().st_size}")


def orbits_of(chosen: selection.Selection, extra: list[int]) -> list[int]:
    """The orbits a selection means (the months', within the range, on the paths) and the old `--orbit`s."""
    paths = list(chosen.paths)
    numbers: set[int] = set(select_orbits(extra, paths=paths)) if extra else set()
    if chosen.by_month:
        for year_month in chosen.month_list():
            numbers.update(o for o in select_orbits(year_month=year_month, paths=paths) if chosen.keeps(o))
    elif chosen.orbits is not None:
        first, last = chosen.orbits
        numbers.update(select_orbits(orbit_range=f"{first}-{last}", paths=paths))
    return sorted(numbers)


def catalogue(*, out: CatalogueOut, seed: SizeSeed = 0, prefix: Prefix = "") -> None:
    """Write the archive catalogue: every orbit 1000..85302 with name, key, times, MISR path and size."""
    if out.suffix not in (".csv", ".json"):
        raise typer.BadParameter("the file must end in .csv or .json", param_hint="--out")
    entries = archive_catalogue(seed, prefix=prefix)
    write_catalogue(entries, out)
    total = sum(e.size_bytes for e in entries)
    typer.echo(f"{out}\t{len(entries)} files\t{total} bytes ({total / 1e15:.3f} PB)")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.command("catalogue")(catalogue)
