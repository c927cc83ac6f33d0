"""Fixtures of the carousel's integration tests (helpers in `carousel_world`)."""

from __future__ import annotations

from tests.carousel.integration.carousel_world import launcher, orbit_files, world

__all__ = ["launcher", "orbit_files", "world"]
