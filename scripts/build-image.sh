#!/usr/bin/env bash
# Builds the isthmus container image from Containerfile.
#
#   scripts/build-image.sh [--online | --offline] [--tag isthmus:0.1.0]
#
# --online   builds FROM the usual python:3.11-slim (needs a registry).
# --offline  needs no registry: it makes a Debian bookworm base here (debootstrap, Debian's
#            python3.11), imports it with `docker import`, and installs the pinned wheels,
#            downloaded beforehand on this host from the package index, with no index in the build.
# Neither: online if the engine has python:3.11-slim or can pull it, offline otherwise.
#
# The docker CLI talks to whatever DOCKER_HOST names (multicluster-e2e/kind/engine.sh env prints
# the isolated engine's). The offline base and the wheels are cached under ~/.cache/isthmus/.
# Prints the image tag on its last line of stdout.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
ROOT="$PWD"

say() { printf '[build-image] %s\n' "$*" >&2; }
die() { printf '[build-image] ERROR: %s\n' "$*" >&2; exit 1; }

MODE=auto
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)"
TAG="isthmus:${VERSION}"
ONLINE_BASE="python:3.11-slim"
while (($#)); do
  case "$1" in
    --online) MODE=online ;;
    --offline) MODE=offline ;;
    --tag) [[ $# -ge 2 ]] || die "--tag needs a value"; TAG="$2"; shift ;;
    --tag=*) TAG="${1#--tag=}" ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

command -v docker >/dev/null 2>&1 || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "no container engine answers at ${DOCKER_HOST:-the default socket} (on a machine without one: eval \"\$(multicluster-e2e/kind/engine.sh env)\")"

CACHE_ROOT="${ISTHMUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/isthmus}"
SUITE=bookworm
MIRROR="${ISTHMUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [[ "$MODE" == auto ]]; then
  if docker image inspect "$ONLINE_BASE" >/dev/null 2>&1 \
     || timeout 60 docker pull -q "$ONLINE_BASE" >/dev/null 2>&1; then
    MODE=online
  else
    MODE=offline
    say "no registry reachable from the engine: building offline"
  fi
fi

# ---- offline parts ------------------------------------------------------------------------
# A Debian base with python3.11 (python -> python3), keyed on this script's base recipe.
offline_base() {
  local recipe key dir img
  recipe="debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates $SUITE; python link; slim v1"
  key="$(printf '%s' "$recipe" | sha256sum | cut -c1-12)"
  img="isthmus-base:${SUITE}-py311-${key}"
  dir="$CACHE_ROOT/image-base/$key"
  if docker image inspect "$img" >/dev/null 2>&1; then echo "$img"; return; fi
  if [[ ! -f "$dir/rootfs.tar" ]]; then
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install debootstrap)"
    [[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
    say "making the base rootfs with debootstrap ($SUITE, python3) into $dir"
    rm -rf "$dir.partial"; mkdir -p "$dir.partial"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$SUITE" "$dir.partial/rootfs" "$MIRROR" >"$dir.partial/debootstrap.log" 2>&1 \
      || die "debootstrap failed (see $dir.partial/debootstrap.log)"
    local r="$dir.partial/rootfs"
    ln -sf python3 "$r/usr/bin/python"
    # Nothing at run time needs apt's lists, docs or locales.
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old \
      "$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/var/log/* \
      "$r"/usr/share/locale/*
    tar -C "$r" --numeric-owner -cf "$dir.partial/rootfs.tar" .
    rm -rf "$r"
    rm -rf "$dir"; mv "$dir.partial" "$dir"
  fi
  say "importing the base as $img"
  docker import "$dir/rootfs.tar" "$img" >/dev/null
  echo "$img"
}

# The pinned wheels for the build stage, downloaded on this host (the build has no network).
offline_wheels() {
  local key dir pip reqs
  key="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)"
  dir="$CACHE_ROOT/wheels/$key"
  if [[ -f "$dir/.complete" ]]; then echo "$dir"; return; fi
  pip="$ROOT/.venv/bin/pip"
  [[ -x "$pip" ]] || pip="$(command -v pip3 || true)"
  [[ -n "$pip" ]] || die "no pip to download the wheels with (run scripts/bootstrap.sh first)"
  rm -rf "$dir.partial"; mkdir -p "$dir.partial"
  reqs="$(python3 - <<'PY'
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))
print("\n".join([*p["project"]["dependencies"], *p["build-system"]["requires"], "grpcio-tools"]))
PY
)"
  say "downloading the pinned wheels into $dir"
  # shellcheck disable=SC2086
  "$pip" download -q --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_34_x86_64 --platform linux_x86_64 --platform any \
    -c constraints.txt -d "$dir.partial" $reqs >&2 \
    || die "pip download failed"
  touch "$dir.partial/.complete"
  rm -rf "$dir"; mv "$dir.partial" "$dir"
  echo "$dir"
}

start=$SECONDS
if [[ "$MODE" == online ]]; then
  say "building $TAG FROM $ONLINE_BASE"
  docker build -q -f Containerfile -t "$TAG" . >/dev/null
else
  base="$(offline_base)"
  wheels="$(offline_wheels)"
  # The build stage's base: the runtime base plus the wheels, and pip told to use only them.
  build_base="${base/isthmus-base:/isthmus-build-base:}-w$(basename "$wheels")"
  if ! docker image inspect "$build_base" >/dev/null 2>&1; then
    say "making $build_base"
    ctx="$(mktemp -d)"; trap 'rm -rf "$ctx"' EXIT
    cp -r "$wheels" "$ctx/wheels"; rm -f "$ctx/wheels/.complete"
    printf 'FROM %s\nCOPY wheels /wheels\nENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels PIP_DISABLE_PIP_VERSION_CHECK=1\n' \
      "$base" >"$ctx/Containerfile"
    docker build -q -f "$ctx/Containerfile" -t "$build_base" "$ctx" >/dev/null
  fi
  say "building $TAG FROM $base (offline)"
  docker build -q -f Containerfile --build-arg "BASE=$base" --build-arg "BUILD_BASE=$build_base" \
    -t "$TAG" . >/dev/null
fi
size="$(docker image inspect -f '{{.Size}}' "$TAG")"
say "built $TAG ($MODE) in $((SECONDS - start)) s: $((size / 1000000)) MB"
echo "$TAG"
