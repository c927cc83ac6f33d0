#!/usr/bin/env bash
# Scan the repository (tracked and untracked-but-not-ignored files), or the given paths, for secrets:
# AWS access key ids and secret keys, private keys, password/token literals, credentials in URLs.
#
#   scripts/security-scan.sh [PATH...]     exit 1 when something is found (one line per finding)
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python tests/reliability/secret_scan.py "$@"
