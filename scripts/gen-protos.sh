#!/usr/bin/env bash
# Generate the Python code for the protobuf definitions kept in the repo: the export
# catalog's gRPC service (mirror/catalog.proto) and the subset of the Kubernetes encoding
# the API client reads (isthmus/kube/k8s_wire.proto).
# Generated files are build output (ignored by git), never committed.
# protoc runs in a temporary tree laid out as the import path (isthmus/mirror/catalog.proto)
# so the generated imports read `from isthmus.mirror import catalog_pb2`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${ISTHMUS_VENV_PYTHON:-.venv/bin/python}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/isthmus/mirror" "$tmp/src/isthmus/kube" "$tmp/out"
cp mirror/catalog.proto "$tmp/src/isthmus/mirror/catalog.proto"
cp isthmus/kube/k8s_wire.proto "$tmp/src/isthmus/kube/k8s_wire.proto"
"$PY" -m grpc_tools.protoc -I "$tmp/src" \
  --python_out="$tmp/out" --grpc_python_out="$tmp/out" --pyi_out="$tmp/out" \
  isthmus/mirror/catalog.proto
"$PY" -m grpc_tools.protoc -I "$tmp/src" --python_out="$tmp/out" --pyi_out="$tmp/out" \
  isthmus/kube/k8s_wire.proto
cp "$tmp/out/isthmus/mirror/"catalog_pb2*.py* mirror/
cp "$tmp/out/isthmus/kube/"k8s_wire_pb2.py* isthmus/kube/
echo "generated: $(cd mirror && ls catalog_pb2*) $(cd isthmus/kube && ls k8s_wire_pb2*)"
