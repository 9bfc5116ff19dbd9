#!/usr/bin/env bash
# The main job on the local rig: sets up the machine (see scripts/bootstrap.sh), then starts
# linked clusters (multicluster-e2e/rig.py). Extra arguments go to the rig (e.g. --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
bindir="$(scripts/bootstrap.sh | tail -n 1)"
export ISTHMUS_CONTROL_PLANE_BIN="$bindir"
exec .venv/bin/python multicluster-e2e/rig.py "$@"
