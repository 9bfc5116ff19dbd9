#!/usr/bin/env bash
# A docker engine of its own for the kind rig, in its own network namespace, so its iptables
# rules, bridges and published ports never touch the host's network (or the local rig).
#
#   engine.sh up          start it (idempotent; cleans up what a crashed engine left)
#   engine.sh down        stop it and everything it runs (its data root is kept as a cache)
#   engine.sh down --purge  also delete its data root (images, the cached node image)
#   engine.sh status      exit 0 if it answers
#   engine.sh env         print `export DOCKER_HOST=...` for eval
#   engine.sh exec CMD... run CMD in the engine's network namespace (kubectl, isthmus, curl:
#                         kind's API servers listen on that namespace's loopback)
#
# Needs root and Debian's docker.io (dockerd 20.10, containerd, runc). The namespace has no
# route out: everything the engine runs stays inside it.
set -euo pipefail
shopt -s inherit_errexit
HERE="$(cd "$(dirname "$0")" && pwd)"

# Not "isthmus-...": the local rig removes every network namespace with its prefix.
NS="${ISTHMUS_ENGINE_NS:-ikind-engine}"
CACHE_ROOT="${ISTHMUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/isthmus}"
DATA_ROOT="${ISTHMUS_ENGINE_DATA:-$CACHE_ROOT/engine}"
RUN_DIR="/run/isthmus-kind"
SOCK="$RUN_DIR/docker.sock"
PIDFILE="$RUN_DIR/dockerd.pid"
LOG="$RUN_DIR/dockerd.log"
DOCKERD="${ISTHMUS_DOCKERD:-/usr/sbin/dockerd}"
# The Debian client matches the 20.10 engine; any newer client negotiates down.
export DOCKER_HOST="unix://$SOCK"

say() { printf '[engine] %s\n' "$*" >&2; }
die() { printf '[engine] ERROR: %s\n' "$*" >&2; exit 1; }

answers() { [[ -S "$SOCK" ]] && timeout 10 docker version >/dev/null 2>&1; }

# The namespace's name is a bind mount under /run/netns; if something removed it while the
# engine runs, name the engine's namespace again (from dockerd's own).
ensure_ns_name() {
  [[ -e "/run/netns/$NS" ]] && return 0
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
  [[ -e "/proc/$pid/ns/net" ]] || return 1
  mkdir -p /run/netns
  touch "/run/netns/$NS"
  mount --bind "/proc/$pid/ns/net" "/run/netns/$NS"
  say "re-named the engine's network namespace $NS"
}

# Processes this script started (dockerd, its containerd, shims), found by our own paths.
our_pids() {
  local p cmd
  for p in /proc/[0-9]*; do
    cmd="$( { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null)" || continue
    case "$cmd" in
      *"$RUN_DIR/"*|*"$DATA_ROOT/"*) echo "${p#/proc/}" ;;
    esac
  done
}

stop_pids() { # signal pids, wait up to $1 s, then SIGKILL what is left
  local wait="$1" pids
  pids="$(our_pids)"
  [[ -n "$pids" ]] || return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for _ in $(seq "$wait"); do
    pids="$(our_pids)"; [[ -n "$pids" ]] || return 0; sleep 1
  done
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  sleep 1
}

cleanup_leftovers() {
  stop_pids 10
  # Mounts a dead engine's namespace left visible here (only if propagation leaked them).
  { grep -F " $DATA_ROOT/" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$RUN_DIR"
}

cmd_up() {
  [[ $(id -u) -eq 0 ]] || die "needs root"
  [[ -x "$DOCKERD" ]] || die "$DOCKERD not found (apt-get install docker.io containerd runc)"
  if answers; then ensure_ns_name || true; say "already up ($DOCKER_HOST)"; return 0; fi
  if [[ -e "$RUN_DIR" ]] || [[ -n "$(our_pids)" ]]; then
    say "cleaning up after an engine that did not stop cleanly"
    cleanup_leftovers
  fi
  if ! ip netns list | grep -qw "^$NS"; then ip netns add "$NS"; fi
  ip netns exec "$NS" ip link set lo up
  mkdir -p "$RUN_DIR" "$DATA_ROOT/docker"
  cat >"$RUN_DIR/daemon.json" <<EOF
{
  "data-root": "$DATA_ROOT/docker",
  "exec-root": "$RUN_DIR/exec",
  "pidfile": "$PIDFILE",
  "hosts": ["unix://$SOCK"],
  "bridge": "none",
  "iptables": true,
  "ip-forward": true,
  "storage-driver": "overlay2",
  "default-runtime": "isthmus-runc",
  "runtimes": {"isthmus-runc": {"path": "$HERE/runc-caps-wrapper"}},
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"},
  "features": {"buildkit": false}
}
EOF
  # Host cgroup v1/v2 mounts, re-made in the new mount namespace: a fresh /sys has none, and
  # dockerd then dies with "Devices cgroup isn't mounted".
  local cg
  cg="$(awk '$9=="cgroup" || $9=="cgroup2" {print $9, $5, $NF}' /proc/self/mountinfo)"
  # shellcheck disable=SC2016
  nsenter --net="/run/netns/$NS" unshare --mount --propagation slave -- bash -c '
    set -e
    umount -l /sys
    mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
    mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
    while read -r type dir opts; do
      [ -n "$type" ] || continue
      opts="${opts#rw,}"
      mkdir -p "$dir"
      if [ "$type" = cgroup2 ]; then mount -t cgroup2 cgroup2 "$dir"
      else mount -t cgroup -o "$opts" cgroup "$dir"; fi
    done <<< "$1"
    exec setsid "$2" --config-file "$3" </dev/null >>"$4" 2>&1
  ' engine "$cg" "$DOCKERD" "$RUN_DIR/daemon.json" "$LOG" &
  disown
  for _ in $(seq 60); do
    if answers; then say "up: $DOCKER_HOST (netns $NS, data $DATA_ROOT)"; return 0; fi
    sleep 1
  done
  tail -n 20 "$LOG" >&2 || true
  die "dockerd did not answer within 60 s (log: $LOG)"
}

cmd_down() {
  local purge="${1:-}"
  if answers; then
    local ids
    ids="$(docker ps -aq)"
    # shellcheck disable=SC2086
    [[ -z "$ids" ]] || docker rm -f -v $ids >/dev/null 2>&1 || true
  fi
  cleanup_leftovers
  if ip netns list | grep -qw "^$NS"; then ip netns delete "$NS"; fi
  if [[ "$purge" == --purge ]]; then
    say "deleting $DATA_ROOT"
    rm -rf "$DATA_ROOT"
  fi
  say "down"
}

case "${1:-}" in
  up) cmd_up ;;
  down) shift; cmd_down "${1:-}" ;;
  status) answers ;;
  env) echo "export DOCKER_HOST=$DOCKER_HOST" ;;
  exec) shift; [[ $# -gt 0 ]] || die "exec needs a command"
        ensure_ns_name || die "the engine is not running (engine.sh up)"
        exec nsenter --net="/run/netns/$NS" -- "$@" ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
