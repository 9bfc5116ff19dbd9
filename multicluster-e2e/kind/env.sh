# Shared by up, down, smoke.sh and kc (sourced): names, paths, and how to reach the engine
# and the clusters.
# shellcheck shell=bash
KIND_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$KIND_DIR/../.." && pwd)"
KIND_VERSION=v0.33.0
PREFIX=isthmus-                      # kind cluster names: isthmus-west, isthmus-east, ...
NETWORK=isthmus-kind                 # the one docker network all clusters share
STATE="${ISTHMUS_KIND_STATE:-$REPO/rig-state/kind}"
CACHE_ROOT="${ISTHMUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/isthmus}"
export KUBECONFIG="$STATE/kubeconfig"
ISTHMUS_BIN="${ISTHMUS_BIN:-$REPO/.venv/bin/isthmus}"

say() { printf '[kind] %s\n' "$*" >&2; }
die() { printf '[kind] ERROR: %s\n' "$*" >&2; exit 1; }

# The engine: the one DOCKER_HOST (or the default socket) names if it answers and
# ISTHMUS_KIND_ENGINE is not "isolated"; otherwise our own (engine.sh), whose network
# namespace then holds the clusters' API ports: the CLI runs there too (in_engine_ns).
ISOLATED=0
engine_detect() {
  if [[ "${ISTHMUS_KIND_ENGINE:-auto}" != isolated ]] && [[ "${DOCKER_HOST:-}" != "unix:///run/isthmus-kind/docker.sock" ]] \
     && timeout 10 docker info >/dev/null 2>&1; then
    ISOLATED=0
    return 0
  fi
  ISOLATED=1
  eval "$("$KIND_DIR/engine.sh" env)"
  "$KIND_DIR/engine.sh" status
}
engine_up() {
  if engine_detect; then
    [[ $ISOLATED == 1 ]] && say "engine: isolated ($DOCKER_HOST)" || say "engine: ${DOCKER_HOST:-default socket}"
    return 0
  fi
  "$KIND_DIR/engine.sh" up
}
in_engine_ns() {
  if [[ $ISOLATED == 1 ]]; then "$KIND_DIR/engine.sh" exec "$@"; else "$@"; fi
}
isthmus() { in_engine_ns "$ISTHMUS_BIN" "$@"; }
# kubectl for cluster NAME, run on its node (the node image has kubectl, in both modes).
kc() {
  local name="$1"; shift
  docker exec -i "$PREFIX$name-control-plane" kubectl --kubeconfig /etc/kubernetes/admin.conf "$@"
}
kind_cli() { "$CACHE_ROOT/kind/kind-$KIND_VERSION/kind" "$@"; }
clusters() { # names of this rig's clusters, from the engine
  docker ps -a --filter "label=io.x-k8s.kind.role=control-plane" --format '{{.Names}}' 2>/dev/null \
    | sed -n "s/^$PREFIX\(.*\)-control-plane$/\1/p" | sort
}
