"""Synthetic BasicFusion orbits in the real layout, and the archive catalogue (docs/synthetic-data.md)."""

from __future__ import annotations

from datacarousel.synthetic.catalogue import CatalogueEntry, archive_catalogue
from datacarousel.synthetic.generator import DEFECTS, generate_orbit
from datacarousel.synthetic.presets import PRESETS

__all__ = ["DEFECTS", "PRESETS", "CatalogueEntry", "archive_catalogue", "generate_orbit"]
