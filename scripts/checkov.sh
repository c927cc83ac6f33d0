#!/usr/bin/env bash
# Run checkov on a CloudFormation template, in checkov's own virtual environment.
#
#   scripts/checkov.sh [TEMPLATE.json]     (default: generate stack.json from stack.py into a temp file)
#
# checkov pins old versions of boto3 and packaging that conflict with the project's
# tools, so it lives in .venv-checkov, created here on first use. Exit status is
# checkov's: 0 when no check failed. Skipped checks carry their reason in the
# resource's Metadata (checkov.skip[].comment).
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION=3.3.30
PYTHON=${PYTHON:-python3}
VENV=.venv-checkov
STAMP=$VENV/.installed

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
  echo "$CHECKOV_VERSION" > "$STAMP"
fi

template=${1:-}
if [ -z "$template" ]; then
  tmpdir=$(mktemp -d)
  trap 'rm -rf "$tmpdir"' EXIT
  template=$tmpdir/stack.json
  .venv/bin/python stack.py > "$template"
fi

exec "$VENV/bin/checkov" -f "$template" --framework cloudformation --skip-download --quiet --compact
