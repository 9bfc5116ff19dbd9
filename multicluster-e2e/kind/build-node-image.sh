#!/usr/bin/env bash
# Builds a kind node image with no image registry, and caches it. Prints its tag last.
#
# What a registry would give (kindest/base, kindest/node, the control-plane images) is made here:
#   - the kind CLI and crictl:   go install through the Go module proxy;
#   - Kubernetes, etcd, CoreDNS: go build through wrapper modules (as build-control-plane.sh
#                                does, same flags, so the Go build cache is shared);
#   - pause:                     Kubernetes' pause.c, gcc -static;
#   - the node's base:           debootstrap bookworm + Debian's systemd, containerd, runc,
#                                CNI plugins, iptables, plus kind's own files (from its module);
#   - component images:          each static binary alone in an image (kube-proxy's on a Debian
#                                tree with iptables, nftables and conntrack);
#   - kindnetd, local-path:      not on the Go proxy; placeholders with the right tags. Clusters
#                                use a bridge CNI instead (see up) and have no StorageClass.
# `kind build node-image --type file` then assembles the node image from a server tarball.
# Everything is keyed on the versions and the hash of this script, under ~/.cache/isthmus/kind/.
set -euo pipefail
shopt -s inherit_errexit
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

KIND_VERSION=v0.33.0       # pinned: the archive trick below relies on how v0.33 reads tarballs
KUBE_VERSION="${ISTHMUS_KUBE_VERSION:-v1.35.4}"
ETCD_VERSION="${ISTHMUS_ETCD_VERSION:-v3.6.16}"
COREDNS_VERSION=v1.13.1
CRICTL_VERSION=v1.34.0   # the newest the module proxy serves with v1.35-era APIs
SUITE=bookworm
MIRROR="${ISTHMUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE_ROOT="${ISTHMUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/isthmus}"
KEY="$(cat "$0" "$HERE/archive_repositories_first.py" "$REPO/multicluster-e2e/build-control-plane.sh" | sha256sum | cut -c1-10)"
TAGKEY="${KUBE_VERSION}-${KEY}"
NODE_IMAGE="isthmus/kind-node:${TAGKEY}"
BASE_IMAGE="isthmus/kind-base:${TAGKEY}"
C="$CACHE_ROOT/kind"
BIN="$C/bin-kube-${KUBE_VERSION}-etcd-${ETCD_VERSION}-coredns-${COREDNS_VERSION}-crictl-${CRICTL_VERSION}-${KEY}"
KIND="$C/kind-${KIND_VERSION}/kind"

say() { printf '[node-image] %s\n' "$*" >&2; }
die() { printf '[node-image] ERROR: %s\n' "$*" >&2; exit 1; }
step() { STEP_NAME="$1"; STEP_START=$SECONDS; say "$1 ..."; }
done_step() { say "$STEP_NAME: $((SECONDS - STEP_START)) s"; }

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, chroot)"
docker info >/dev/null 2>&1 || die "no container engine at ${DOCKER_HOST:-the default socket} (see engine.sh)"
mkdir -p "$C"
export GOFLAGS="-mod=mod" GOTOOLCHAIN=local

# ---- kind CLI ---------------------------------------------------------------------------
kind_cli() {
  [[ -x "$KIND" ]] && return
  step "kind $KIND_VERSION (go install)"
  mkdir -p "$(dirname "$KIND")"
  CGO_ENABLED=0 GOBIN="$(dirname "$KIND")" go install "sigs.k8s.io/kind@$KIND_VERSION"
  done_step
}
if [[ "${1:-}" == --kind-only ]]; then kind_cli; echo "$KIND"; exit 0; fi

if docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
  kind_cli; say "cached: $NODE_IMAGE"; echo "$NODE_IMAGE"; exit 0
fi

# ---- binaries ----------------------------------------------------------------------------
GOPROXY_URL="$(go env GOPROXY | cut -d, -f1)"
wrapper_module() { # dir module version staging-version: requires module, staging -> published
  local dir="$1" module="$2" version="$3" ver="$4"
  mkdir -p "$dir"
  curl -fsS --max-time 60 "$GOPROXY_URL/$module/@v/$version.mod" -o "$dir/upstream.mod" \
    || die "could not fetch $module@$version go.mod"
  {
    echo "module isthmus.local/$(basename "$dir")"; echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"; echo
    echo "require $module $version"
    awk -v ver="$ver" '
      /^replace \(/ {inrep=1; next}
      inrep && /^\)/ {inrep=0; next}
      { line=$0; sub(/^replace /, "", line) }
      (inrep || $0 ~ /^replace /) && line ~ /=> *\.\.?\// { split(line, a, " "); print "replace " a[1] " => " a[1] " " ver }
    ' "$dir/upstream.mod"
  } >"$dir/go.mod"
}

binaries() {
  [[ -f "$BIN/.complete" ]] && return
  local cp work ld
  # kube-apiserver, kube-controller-manager, kube-proxy and etcd come from the control-plane cache.
  cp="$(bash "$REPO/multicluster-e2e/build-control-plane.sh" | tail -n1)"
  rm -rf "$BIN.partial"; mkdir -p "$BIN.partial"
  cp "$cp"/{kube-apiserver,kube-controller-manager,kube-proxy,etcd} "$BIN.partial/"
  work="$(mktemp -d "$C/.gobuild.XXXXXX")"
  step "kubelet, kubeadm, kubectl, kube-scheduler $KUBE_VERSION (go build)"
  wrapper_module "$work/kube" k8s.io/kubernetes "$KUBE_VERSION" "v0.${KUBE_VERSION#v1.}"
  ld="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${KUBE_VERSION#v1.}"
  for cmd in kube-scheduler kubeadm kubectl kubelet; do
    (cd "$work/kube" && CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$BIN.partial/$cmd" "k8s.io/kubernetes/cmd/$cmd") \
      || die "go build of $cmd failed"
  done
  done_step
  step "coredns $COREDNS_VERSION, crictl $CRICTL_VERSION (go build)"
  mkdir -p "$work/coredns"
  (cd "$work/coredns" && printf 'module isthmus.local/coredns\n\ngo 1.25\n' >go.mod \
    && go get "github.com/coredns/coredns@$COREDNS_VERSION" >/dev/null 2>&1 \
    && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN.partial/coredns" github.com/coredns/coredns) \
    || die "go build of coredns failed"
  CGO_ENABLED=0 GOBIN="$BIN.partial" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" || die "go install of crictl failed"
  done_step
  step "pause (gcc -static)"
  local pause_c
  pause_c="$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBE_VERSION/build/pause/linux/pause.c"
  [[ -f "$pause_c" ]] || (cd "$work/kube" && go mod download "k8s.io/kubernetes@$KUBE_VERSION")
  gcc -Os -static -o "$BIN.partial/pause" "$pause_c" -DVERSION="$KUBE_VERSION" && strip "$BIN.partial/pause"
  done_step
  rm -rf "$work"
  touch "$BIN.partial/.complete"
  rm -rf "$BIN"; mv "$BIN.partial" "$BIN"
}

# ---- rootfs trees --------------------------------------------------------------------------
debootstrap_tree() { # name "pkg,pkg" -> $C/rootfs-<name>-<key>.tar
  local name="$1" pkgs="$2" out="$C/rootfs-$1-$KEY.tar" dir
  [[ -f "$out" ]] && return
  step "debootstrap $name rootfs ($SUITE + $pkgs)"
  dir="$C/.rootfs-$name"
  rm -rf "$dir"
  debootstrap --variant=minbase --include="$pkgs" "$SUITE" "$dir" "$MIRROR" >"$C/debootstrap-$name.log" 2>&1 \
    || die "debootstrap failed (see $C/debootstrap-$name.log)"
  if [[ "$name" == node ]]; then node_tree "$dir"; fi
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/usr/share/doc/* \
    "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/* "$dir"/var/log/*
  tar -C "$dir" --numeric-owner -cf "$out.partial" . && mv "$out.partial" "$out"
  rm -rf "$dir"
  done_step
}

# What kind's base image Dockerfile does, on Debian's packages instead of builds from git.
node_tree() {
  local r="$1" files
  files="$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND_VERSION/images/base/files"
  [[ -d "$files" ]] || (cd /tmp && go mod download "sigs.k8s.io/kind@$KIND_VERSION")
  rm -f "$r"/lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service \
    "$r"/lib/systemd/system/multi-user.target.wants/* "$r"/lib/systemd/system/local-fs.target.wants/* \
    "$r"/lib/systemd/system/sockets.target.wants/*udev* "$r"/lib/systemd/system/sockets.target.wants/*initctl* \
    "$r"/lib/systemd/system/basic.target.wants/*
  rm -rf "$r"/etc/systemd/system/*.wants/*
  cp -r "$files"/etc/. "$r/etc/"; cp -r "$files"/kind "$r/"; cp "$files"/usr/local/bin/* "$r/usr/local/bin/"
  chmod -R u+w,go-w "$r/etc" "$r/kind"; chmod 0755 "$r"/usr/local/bin/* "$r"/kind/bin/*
  echo "ReadKMsg=no" >>"$r/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$r/sbin/init"
  # kind's units and config name /usr/local paths; Debian installs under /usr.
  ln -sf /usr/bin/containerd "$r/usr/local/bin/containerd"
  mkdir -p "$r/usr/local/sbin" "$r/opt/cni/bin" "$r/etc/kubernetes/manifests" "$r/etc/cni/net.d"
  ln -sf /usr/sbin/runc "$r/usr/local/sbin/runc"
  for p in "$r"/usr/lib/cni/*; do ln -sf "/usr/lib/cni/$(basename "$p")" "$r/opt/cni/bin/"; done
  # containerd 1.6's ctr has no `info`, which kind build node-image waits on.
  cat >"$r/usr/local/bin/ctr" <<'EOF'
#!/bin/sh
# ctr with `info` answered by `version` (containerd 1.6 has no `ctr info`).
if [ "$1" = info ]; then shift; exec /usr/bin/ctr version "$@"; fi
exec /usr/bin/ctr "$@"
EOF
  chmod 0755 "$r/usr/local/bin/ctr"
  cp "$BIN/crictl" "$r/usr/local/bin/crictl"
  /usr/bin/ctr oci spec \
    | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | jq 'del(.process.rlimits)' >"$r/etc/containerd/cri-base.json"
  # No fuse-overlayfs here; and this machine's containers may not lower oom_score_adj.
  sed -i -e '/^\[proxy_plugins\]/,/^  address = /d' \
    -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$r/etc/containerd/config.toml"
  grep -q 'restrict_oom_score_adj = true' "$r/etc/containerd/config.toml" || die "containerd config: restrict_oom_score_adj not set"
  chroot "$r" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  chroot "$r" systemctl mask systemd-binfmt.service >/dev/null 2>&1
}

# ---- images --------------------------------------------------------------------------------
scratch_image() { # tag binary-name [entrypoint]
  local tag="$1" bin="$2" ep="${3:-}" d
  d="$(mktemp -d)"; mkdir -p "$d/usr/local/bin" "$d/tmp" "$d/etc"; chmod 1777 "$d/tmp"
  cp "$BIN/$bin" "$d/usr/local/bin/$bin"
  echo 'root:x:0:0:root:/:/usr/local/bin/nologin' >"$d/etc/passwd"
  local args=(--change 'ENV PATH=/usr/local/bin:/usr/bin:/bin')
  [[ -n "$ep" ]] && args+=(--change "ENTRYPOINT [\"/usr/local/bin/$bin\"]")
  tar -C "$d" --numeric-owner -c . | docker import "${args[@]}" - "$tag" >/dev/null
  rm -rf "$d"
}

images_tarball() {
  local out="$C/server-$TAGKEY.tar.gz" d want
  [[ -f "$out" ]] && return
  step "component images and the server tarball"
  want="$("$BIN/kubeadm" config images list --kubernetes-version "$KUBE_VERSION" 2>/dev/null)"
  local etcd_tag coredns_tag
  etcd_tag="$(grep '/etcd:' <<<"$want")"; coredns_tag="$(grep '/coredns' <<<"$want")"
  local pause_tag
  pause_tag="$(tar -xOf "$C/rootfs-node-$KEY.tar" ./etc/containerd/config.toml | sed -n 's/.*sandbox_image = "\(.*\)"/\1/p')"
  local kind_go
  kind_go="$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND_VERSION/pkg/build/nodeimage"
  local kindnetd lpp lph
  kindnetd="$(sed -n 's/^const kindnetdImage = "\(.*\)"/\1/p' "$kind_go/const_cni.go")"
  lpp="$(sed -n 's/^const storageProvisionerImage = "\(.*\)"/\1/p' "$kind_go/const_storage.go")"
  lph="$(sed -n 's/^const storageHelperImage = "\(.*\)"/\1/p' "$kind_go/const_storage.go")"
  [[ -n "$etcd_tag" && -n "$coredns_tag" && -n "$pause_tag" && -n "$kindnetd" && -n "$lpp" && -n "$lph" ]] \
    || die "could not work out the image tags (etcd=$etcd_tag coredns=$coredns_tag pause=$pause_tag)"
  local k="registry.k8s.io"
  scratch_image "$k/kube-apiserver:$KUBE_VERSION" kube-apiserver
  scratch_image "$k/kube-controller-manager:$KUBE_VERSION" kube-controller-manager
  scratch_image "$k/kube-scheduler:$KUBE_VERSION" kube-scheduler
  scratch_image "$etcd_tag" etcd
  scratch_image "$coredns_tag" coredns entrypoint
  scratch_image "$pause_tag" pause entrypoint
  # Placeholders: never run (no kindnet: bridge CNI; no local-path: the StorageClass is removed).
  for t in "$kindnetd" "$lpp" "$lph"; do scratch_image "$t" pause entrypoint; done
  d="$(mktemp -d)"; mkdir -p "$d/usr/local/bin"; cp "$BIN/kube-proxy" "$d/usr/local/bin/"
  printf 'FROM %s\nCOPY usr/local/bin/kube-proxy /usr/local/bin/kube-proxy\n' "isthmus/kind-proxy-base:$TAGKEY" >"$d/Containerfile"
  docker import "$C/rootfs-proxy-$KEY.tar" "isthmus/kind-proxy-base:$TAGKEY" >/dev/null
  docker build -q -f "$d/Containerfile" -t "$k/kube-proxy:$KUBE_VERSION" "$d" >/dev/null
  rm -rf "$d"

  # kubernetes/server/bin as kind's tarball builder reads it. kube-apiserver.tar carries every
  # image kind would otherwise pull, with `repositories` first so kind reads all their tags.
  d="$(mktemp -d "$C/.server.XXXXXX")"; local sb="$d/kubernetes/server/bin"; mkdir -p "$sb"
  echo "$KUBE_VERSION" >"$d/kubernetes/version"
  cp "$BIN"/{kubeadm,kubelet,kubectl} "$sb/"
  docker save "$k/kube-apiserver:$KUBE_VERSION" "$etcd_tag" "$coredns_tag" "$pause_tag" \
    "$kindnetd" "$lpp" "$lph" -o "$d/all.tar"
  python3 "$HERE/archive_repositories_first.py" "$d/all.tar" "$sb/kube-apiserver.tar"
  rm -f "$d/all.tar"
  for c in kube-controller-manager kube-scheduler kube-proxy; do
    docker save "$k/$c:$KUBE_VERSION" -o "$sb/$c.tar"
  done
  tar -C "$d" -czf "$out.partial" kubernetes && mv "$out.partial" "$out"
  rm -rf "$d"
  done_step
}

base_image() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return
  step "node base image"
  docker import --change 'ENV container=docker' \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    "$C/rootfs-node-$KEY.tar" "$BASE_IMAGE-import" >/dev/null
  # `docker import --change` refuses STOPSIGNAL; a one-line build adds it.
  local d; d="$(mktemp -d)"
  printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$BASE_IMAGE-import" >"$d/Containerfile"
  docker build -q -f "$d/Containerfile" -t "$BASE_IMAGE" "$d" >/dev/null
  docker rmi "$BASE_IMAGE-import" >/dev/null
  rm -rf "$d"
  done_step
}

total=$SECONDS
kind_cli
binaries
debootstrap_tree node "systemd,dbus,containerd,runc,containernetworking-plugins,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps,e2fsprogs"
debootstrap_tree proxy "iptables,nftables,conntrack"
images_tarball
base_image
step "kind build node-image"
"$KIND" build node-image --type file --base-image "$BASE_IMAGE" --image "$NODE_IMAGE" \
  "$C/server-$TAGKEY.tar.gz" >&2 || die "kind build node-image failed"
done_step
# Drop what older versions of these scripts built (other keys): it is never used again.
find "$C" -maxdepth 1 \( -name 'bin-*' -o -name 'rootfs-*.tar' -o -name 'server-*.tar.gz' \) \
  ! -name "*$KEY*" -exec rm -rf {} +
docker image ls --format '{{.Repository}}:{{.Tag}}' \
  | grep -E '^isthmus/kind-(node|base|proxy-base):' | grep -v ":$TAGKEY\$" \
  | xargs -r docker rmi >/dev/null 2>&1 || true
say "built $NODE_IMAGE in $((SECONDS - total)) s"
echo "$NODE_IMAGE"
