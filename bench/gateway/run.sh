#!/usr/bin/env bash
# The gateway benchmark (method and current figures: docs/benchmarks.md).
# Idempotent: installs the Debian packages it needs if missing (without starting their
# daemons), then runs isthmus, nginx-stream and haproxy pairs side by side on loopback.
#   bench/gateway/run.sh [--runs 3] [--seconds 5] [--idle-conns 5000] [--out results.json]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
need=()
for pkg in nginx libnginx-mod-stream haproxy iperf3 nghttp2-client wrk sysstat; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  if [[ ! -x /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec "$root/.venv/bin/python" "$here/bench.py" "$@"
