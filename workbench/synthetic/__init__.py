"""Synthetic BasicFusion orbits in the real layout, and the archive catalogue (docs/synthetic-data.md)."""

from __future__ import annotations

from workbench.synthetic.catalogue import CatalogueEntry, archive_catalogue
from workbench.synthetic.generator import DEFECTS, generate_orbit
from workbench.synthetic.presets import PRESETS

__all__ = ["DEFECTS", "PRESETS", "CatalogueEntry", "archive_catalogue", "generate_orbit"]
