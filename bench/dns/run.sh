#!/usr/bin/env bash
# DNS benchmark (not a test): isthmus-dns side by side with knot, unbound and dnsmasq.
# Installs what is missing (root), then runs bench/dns/bench.py. See docs/benchmarks.md.
#   bench/dns/run.sh                      # as root; full run (~8 minutes)
#   bench/dns/run.sh --quick              # one run per point, short durations
set -euo pipefail
cd "$(dirname "$0")/../.."

need=()
command -v knotd >/dev/null || need+=(knot)
command -v unbound >/dev/null || need+=(unbound)
command -v dnsmasq >/dev/null || need+=(dnsmasq)
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v taskset >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
  [[ $(id -u) -eq 0 ]] || { echo "missing: ${need[*]} (run as root)" >&2; exit 1; }
  # Packaged daemons must not start on install: each one runs here with its own config.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
[[ -x .venv/bin/isthmus ]] || { echo "no .venv: run scripts/bootstrap.sh first" >&2; exit 1; }
exec .venv/bin/python bench/dns/bench.py "$@"
