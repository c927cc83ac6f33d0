"""ComputeRadiance's job definition, read from `definition.toml` beside this file (described once)."""

from __future__ import annotations

from pathlib import Path

from datacarousel.definitions import JobDefinition, load

DEFINITION: JobDefinition = load(Path(__file__).with_name("definition.toml"))
