#!/usr/bin/env bash
# Create the project's virtual environment (.venv) and install what it needs.
# Idempotent: reinstalls only when a requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.installed
want=$(cat requirements.txt requirements-dev.txt constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r requirements.txt -r requirements-dev.txt -c constraints.txt
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
  "$VENV/bin/python" -m pip check
  echo "$want" > "$STAMP"
fi
# The radiance job's compiled gridding kernels (needs a C compiler; built again only when kernels.c changes).
# Without them the job runs its numpy paths, slower; the tests say so.
"$VENV/bin/python" -m batch_jobs.compute_radiance.native > /dev/null \
  || echo "warning: the gridding kernels were not built: the radiance job runs its numpy paths (slower)" >&2
