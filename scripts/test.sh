#!/usr/bin/env bash
# Runs every check and test from a fresh clone: set-up, ruff, mypy --strict, pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/trust -k spiffe).
set -euo pipefail
cd "$(dirname "$0")/.."
bindir="$(scripts/bootstrap.sh | tail -n 1)"
export ISTHMUS_CONTROL_PLANE_BIN="$bindir"
echo "== ruff"
.venv/bin/ruff check core cli mirror gateway dns trust manifests tests multicluster-e2e scripts bench setup.py
echo "== mypy --strict"
# Every source root of the isthmus namespace (pyproject.toml [tool.mypy] mypy_path).
.venv/bin/mypy core/isthmus cli/isthmus mirror/isthmus gateway/isthmus dns/isthmus trust/isthmus \
  multicluster-e2e/isthmus
echo "== pytest"
# In random order (pytest-randomly): the header prints the seed; --randomly-seed=N repeats it.
exec .venv/bin/pytest -p no:cacheprovider "$@"
