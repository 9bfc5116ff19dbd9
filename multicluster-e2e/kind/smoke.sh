#!/usr/bin/env bash
# Cross-cluster calls from a pod, the way a workload makes them: from a fresh pod in the
# first cluster, by .global name, to the demo workloads in every other cluster, over HTTP,
# gRPC and raw TCP. Each call goes: the pod's resolver -> CoreDNS (the `global` stub that
# install wrote) -> isthmus-dns -> mirror VIP -> kube-proxy -> local gateway -> mTLS ->
# the peer's gateway (NodePort) -> the workload pod.
#   multicluster-e2e/kind/smoke.sh      (after up; exits non-zero on the first failed call)
set -euo pipefail
shopt -s inherit_errexit
# shellcheck source=env.sh
source "$(dirname "$0")/env.sh"
engine_detect >/dev/null 2>&1 || die "no engine answers (run up first)"
# up's order (west first), else whatever clusters the engine has
if [[ -f "$STATE/clusters" ]]; then mapfile -t NAMES <"$STATE/clusters"; else mapfile -t NAMES < <(clusters); fi
((${#NAMES[@]} >= 2)) || die "need two clusters (run up first)"
IMAGE="$(docker exec "$PREFIX${NAMES[0]}-control-plane" crictl images -o json 2>/dev/null \
  | jq -r '.images[].repoTags[]' | grep -m1 -E '(^|/)isthmus:' || true)"
IMAGE="${IMAGE#docker.io/library/}"
[[ -n "$IMAGE" ]] || die "the isthmus image is not loaded in ${NAMES[0]}"
caller="${NAMES[0]}"
pass=0; fail=0
declare -a RESULTS=()

call() { # what expect-substring demo-call-args...
  local what="$1" expect="$2"; shift 2
  local pod out t
  pod="smoke-$(date +%s%N | tail -c 7)"
  t=$SECONDS
  # A fresh pod each time: its own resolver, nothing cached.
  kc "$caller" run "$pod" --restart=Never --image="$IMAGE" --image-pull-policy=Never \
    -- demo call "$@" >/dev/null
  local phase=""
  for _ in $(seq 120); do
    phase="$(kc "$caller" get pod "$pod" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
    [[ "$phase" == Succeeded || "$phase" == Failed ]] && break
    sleep 1
  done
  out="$(kc "$caller" logs "$pod" 2>&1 || true)"
  kc "$caller" delete pod "$pod" --wait=false >/dev/null 2>&1 || true
  if [[ "$phase" == Succeeded && "$out" == *"$expect"* ]]; then
    pass=$((pass + 1)); RESULTS+=("ok    $what ($((SECONDS - t)) s): $out")
  else
    fail=$((fail + 1)); RESULTS+=("FAIL  $what (pod $phase): $out")
  fi
  say "${RESULTS[-1]}"
}

for peer in "${NAMES[@]:1}"; do
  call "http  $caller -> users.shop.$peer.global" "\"cluster\": \"$peer\"" \
    --http "http://users.shop.$peer.global/hello"
  call "grpc  $caller -> greeter.shop.$peer.global" "\"unary\": \"$peer:ping\"" \
    --grpc "greeter.shop.$peer.global:9090" --count 3
  call "tcp   $caller -> echo.shop.$peer.global" '"tcp": "isthmus tcp echo"' \
    --tcp "echo.shop.$peer.global:9000"
done
# Unpinned: served by any cluster that exports it (here every cluster does).
call "http  $caller -> users.shop.global (any cluster)" '"cluster": "' --http "http://users.shop.global/"

printf '%s\n' "${RESULTS[@]}"
echo "smoke: $pass passed, $fail failed"
((fail == 0))
