#!/usr/bin/env bash
# Generate the Python gRPC code for the protobuf definitions kept in the repo.
# Generated files are build output (ignored by git), never committed.
# protoc runs in a temporary tree laid out as the import path (isthmus/mirror/catalog.proto)
# so the generated imports read `from isthmus.mirror import catalog_pb2`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${ISTHMUS_VENV_PYTHON:-.venv/bin/python}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src/isthmus/mirror" "$tmp/out"
cp mirror/catalog.proto "$tmp/src/isthmus/mirror/catalog.proto"
"$PY" -m grpc_tools.protoc -I "$tmp/src" \
  --python_out="$tmp/out" --grpc_python_out="$tmp/out" --pyi_out="$tmp/out" \
  isthmus/mirror/catalog.proto
cp "$tmp/out/isthmus/mirror/"catalog_pb2*.py* mirror/
echo "generated: $(cd mirror && ls catalog_pb2*)"
