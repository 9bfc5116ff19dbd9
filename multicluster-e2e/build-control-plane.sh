#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries (kube-apiserver, kube-controller-manager,
# kube-proxy) and etcd from the Go module proxy, once per machine, into a cache keyed by
# version. Nothing built here is ever committed.
#
# `go install k8s.io/kubernetes/...@vX` is refused because kubernetes' go.mod replaces its
# staging modules with local paths. So we write a tiny wrapper module that requires
# k8s.io/kubernetes and replaces each staging module with its published v0.x version.
set -euo pipefail

KUBE_VERSION="${ISTHMUS_KUBE_VERSION:-v1.35.4}"
ETCD_VERSION="${ISTHMUS_ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${ISTHMUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/isthmus}"
OUT="$CACHE_ROOT/control-plane/kube-${KUBE_VERSION}-etcd-${ETCD_VERSION}"

say() { printf '[build-control-plane] %s\n' "$*" >&2; }
die() { printf '[build-control-plane] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -f "$OUT/.complete" ]]; then
  say "cached: $OUT"
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "Go is not installed (need go >= 1.25 on PATH); install it from Debian (golang) or go.dev"
GOPROXY_URL="$(go env GOPROXY | cut -d, -f1)"
case "$GOPROXY_URL" in
  off|direct|"") die "GOPROXY is '$(go env GOPROXY)'; the build needs the Go module proxy" ;;
esac
if command -v curl >/dev/null 2>&1; then
  curl -fsS --max-time 30 "$GOPROXY_URL/k8s.io/kubernetes/@v/${KUBE_VERSION}.info" >/dev/null \
    || die "the Go module proxy ($GOPROXY_URL) does not answer for k8s.io/kubernetes@${KUBE_VERSION}"
fi

mkdir -p "$CACHE_ROOT/control-plane"
WORK="$(mktemp -d "$CACHE_ROOT/control-plane/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export GOFLAGS="-mod=mod" CGO_ENABLED=0 GOTOOLCHAIN=local

build_wrapper() { # name module version replaces-from-module
  local dir="$WORK/$1" module="$2" version="$3"
  mkdir -p "$dir"
  say "resolving $module@$version"
  curl -fsS --max-time 60 "$GOPROXY_URL/$module/@v/$version.mod" -o "$dir/upstream.mod" \
    || die "could not fetch $module@$version go.mod from $GOPROXY_URL"
  {
    echo "module isthmus.local/$1"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
    echo
    echo "require $module $version"
    # Each `replace X => ./staging/...` (or ../x for etcd) becomes X => X <published version>.
    awk -v ver="$4" '
      /^replace \(/ {inrep=1; next}
      inrep && /^\)/ {inrep=0; next}
      { line=$0; sub(/^replace /, "", line) }
      (inrep || $0 ~ /^replace /) && line ~ /=> *\.\.?\// && line !~ /FORBIDDEN/ { split(line, a, " "); print "replace " a[1] " => " a[1] " " ver }
    ' "$dir/upstream.mod"
  } > "$dir/go.mod"
}

# Kubernetes: staging modules are published as v0.<minor>.<patch>.
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"
build_wrapper kube k8s.io/kubernetes "$KUBE_VERSION" "$STAGING_VERSION"
build_wrapper etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION"

# Runs a build step with its elapsed time shown every 30 s (a cold `go build` of a
# Kubernetes binary is silent for minutes) and without Go's "downloading" chatter.
timed() { # label command...
  local label="$1" start=$SECONDS ticker rc=0
  shift
  ( while sleep 30; do say "$label: $((SECONDS - start)) s so far"; done ) &
  ticker=$!
  "$@" 2> >(grep -v '^go: downloading ' >&2) || rc=$?
  kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
  ((rc == 0)) && say "$label: done in $((SECONDS - start)) s"
  return "$rc"
}

say "building into $OUT (once per machine; about 10 minutes per binary on 2 cores when cold)"
mkdir -p "$OUT.partial"
(
  cd "$WORK/kube"
  say "downloading kubernetes $KUBE_VERSION module graph (first time only)"
  for cmd in kube-apiserver kube-controller-manager kube-proxy; do
    timed "$cmd $KUBE_VERSION" go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${KUBE_VERSION#v1.}" \
      -o "$OUT.partial/$cmd" "k8s.io/kubernetes/cmd/$cmd" || die "go build of $cmd failed (see above)"
  done
)
(
  cd "$WORK/etcd"
  timed "etcd $ETCD_VERSION" go build -trimpath -ldflags "-s -w" -o "$OUT.partial/etcd" go.etcd.io/etcd/server/v3 || die "go build of etcd failed (see above)"
)
rm -rf "$OUT"
mv "$OUT.partial" "$OUT"
touch "$OUT/.complete"
say "done: $OUT"
echo "$OUT"
