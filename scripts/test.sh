#!/usr/bin/env bash
# The whole test suite: static checks, then every test (unit and integration).
# Integration tests bring the embedded environment up themselves and tear it down.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy .
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest "$@"
