"""`datacarousel generate` (synthetic orbit files) and `datacarousel catalogue` (the archive's file list)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from workbench.synthetic.catalogue import archive_catalogue, write_catalogue
from workbench.synthetic.generator import DEFECTS, generate_orbit
from workbench.synthetic.presets import PRESETS
from workbench.synthetic.selection import select_orbits

OutDir = Annotated[Path, typer.Option("--out", help="Directory for the generated files.")]
Orbits = Annotated[list[int] | None, typer.Option("--orbit", help="An orbit number (repeatable).")]
OrbitRange = Annotated[str | None, typer.Option("--orbits", help="An inclusive orbit range, e.g. 85079-85085.")]
YearMonth = Annotated[str | None, typer.Option("--year-month", help="All orbits starting in a month, e.g. 2015.12.")]
Paths = Annotated[list[int] | None, typer.Option("--path", help="Keep only these MISR paths (repeatable).")]
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
    orbit: Orbits = None,
    orbits: OrbitRange = None,
    year_month: YearMonth = None,
    path: Paths = None,
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
        chosen = select_orbits(orbit or [], orbits, year_month, path or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if limit is not None:
        chosen = chosen[:limit]
    if not chosen:
        raise typer.BadParameter("no orbit selected: give --orbit, --orbits or --year-month (and --path)")
    for number in chosen:
        written = generate_orbit(number, out, preset=preset, seed=seed, defects=defects)
        typer.echo(f"{written}\t{written.stat().st_size}")


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
