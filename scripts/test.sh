#!/usr/bin/env bash
# Runs every check and test from a fresh clone: set-up, ruff, mypy --strict, pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/trust -k spiffe).
set -euo pipefail
cd "$(dirname "$0")/.."
bindir="$(scripts/bootstrap.sh | tail -n 1)"
export ISTHMUS_CONTROL_PLANE_BIN="$bindir"
echo "== ruff"
.venv/bin/ruff check isthmus mirror gateway dns trust tests multicluster-e2e scripts
echo "== mypy --strict"
.venv/bin/python scripts/typecheck.py
echo "== pytest"
exec .venv/bin/pytest -p no:cacheprovider "$@"
