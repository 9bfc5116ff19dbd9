#!/usr/bin/env bash
# Sets up everything the tests and the local rig need, on a fresh machine, idempotently:
#   1. Debian packages (only those missing; packaged daemons are kept from auto-starting),
#   2. the Python environment in .venv, pinned by constraints.txt,
#   3. the Kubernetes control-plane binaries, built once from the Go module proxy into a cache.
# Prints the control-plane binary directory on its last line of stdout.
# With --kind it also installs what the kind rig needs (a container engine, debootstrap, CNI
# plugins); multicluster-e2e/kind/up calls it so.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[bootstrap] %s\n' "$*" >&2; }

# --- 1. Debian packages -----------------------------------------------------------------
# command -> package
declare -A NEED=(
  [ip]=iproute2 [openssl]=openssl [dig]=bind9-dnsutils [kdig]=knot-dnsutils
  [getent]=libc-bin [curl]=curl [conntrack]=conntrack [iptables]=iptables
  [nsenter]=util-linux [ipset]=ipset
)
if [[ "${1:-}" == --kind ]]; then
  NEED+=([dockerd]=docker.io [containerd]=containerd [runc]=runc [debootstrap]=debootstrap)
fi
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
if [[ "${1:-}" == --kind && ! -x /usr/lib/cni/bridge ]]; then
  missing+=(containernetworking-plugins)
fi
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    say "missing Debian packages: ${missing[*]} (run as root, or install them)"; exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  # Keep packaged daemons (knot, unbound, ...) from starting on install.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Quiet unless it fails: dpkg's per-package lines go to a log shown only on error.
  aptlog="$(mktemp)"
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
      >"$aptlog" 2>&1; then
    cat "$aptlog" >&2; rm -f "$aptlog"; say "apt-get failed (above)"; exit 1
  fi
  rm -f "$aptlog"
fi

# --- 2. Python environment ----------------------------------------------------------------
PY="${ISTHMUS_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { say "Python 3.11+ is required ($PY is $("$PY" --version 2>&1))"; exit 1; }
stamp_src="$(cat pyproject.toml setup.py constraints.txt mirror/isthmus/mirror/catalog.proto | sha256sum | cut -c1-16)"
if [[ ! -x .venv/bin/python || "$(cat .venv/.isthmus-stamp 2>/dev/null)" != "$stamp_src" ]]; then
  say "creating .venv with $("$PY" --version)"
  rm -rf .venv
  "$PY" -m venv .venv
  # Quiet unless it fails (the build backend's warnings are noise here).
  piplog="$(mktemp)"
  quiet() { "$@" >"$piplog" 2>&1 || { cat "$piplog" >&2; rm -f "$piplog"; say "failed: $*"; exit 1; }; }
  quiet .venv/bin/pip install -q --upgrade pip
  # Editable: the build maps every source root and generates the gRPC code beside catalog.proto.
  quiet .venv/bin/pip install -q -c constraints.txt -e '.[test]'
  rm -f "$piplog"
  # The local rig (isthmus.devcluster) is part of the namespace but not of the wheel.
  site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$PWD/multicluster-e2e" > "$site/isthmus-devcluster.pth"
  echo "$stamp_src" > .venv/.isthmus-stamp
fi

# --- 3. Control-plane binaries --------------------------------------------------------------
bash multicluster-e2e/build-control-plane.sh
