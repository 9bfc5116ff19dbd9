"""Tables for typed decoding (isthmus.kube.shapes): only the shape's fields are built."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import pytest
import typing_extensions

from isthmus.api.crds import load_crds
from isthmus.kube.shapes import ObjectShape, decoders
from isthmus.mirror.projection import SHAPES, EndpointSliceShape, ServiceShape

SERVED_SERVICE = {
    "kind": "Service", "apiVersion": "v1",
    "metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": "7",
                 "labels": {"x": "y"}, "annotations": {"isthmus.io/export-to": "east"},
                 "creationTimestamp": "2026-11-22T00:00:00Z",
                 "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {}}}]},
    "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
             "ports": [{"name": "http", "port": 80, "targetPort": "web"}]},
    "status": {"loadBalancer": {}},
}


def test_object_keeps_only_the_shape() -> None:
    got = decoders(ServiceShape).object(json.dumps(SERVED_SERVICE).encode())
    assert got == {
        "kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "a", "namespace": "n", "uid": "u", "resourceVersion": "7",
                     "labels": {"x": "y"}, "annotations": {"isthmus.io/export-to": "east"},
                     "creationTimestamp": "2026-11-22T00:00:00Z"},  # an export's age
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1",
                 "ports": [{"name": "http", "port": 80, "targetPort": "web"}]},
    }


def test_page_keeps_list_metadata_and_items() -> None:
    page = {"kind": "ServiceList", "metadata": {"resourceVersion": "9", "continue": "tok",
                                                "remainingItemCount": 3},
            "items": [SERVED_SERVICE, SERVED_SERVICE]}
    got = decoders(ServiceShape).page(json.dumps(page).encode())
    assert got["metadata"] == {"resourceVersion": "9", "continue": "tok"}
    assert len(got["items"]) == 2 and "status" not in got["items"][0]


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_watch_error_event_keeps_the_status_code(kind: str) -> None:
    """A 410 arrives as an ERROR event whose object is a Status: its code must survive,
    also for a shape whose own ``status`` is an object (GlobalService), where the Status's
    ``"status": "Failure"`` does not fit (a CI run saw the GlobalService watch retry its
    410 forever as a malformed event instead of re-listing)."""
    line = json.dumps({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
        "reason": "Expired", "message": "too old resource version"}}).encode()
    got = decoders(SHAPES[kind]).event(line)
    assert got["type"] == "ERROR"
    assert got["object"]["code"] == 410 and got["object"]["reason"] == "Expired"


def test_nulls_where_the_api_writes_them() -> None:
    """An EndpointSlice without endpoints is served with ``"endpoints": null``."""
    sl = {"kind": "EndpointSlice", "metadata": {"name": "s"}, "addressType": "IPv4",
          "endpoints": None, "ports": None}
    got = decoders(EndpointSliceShape).object(json.dumps(sl).encode())
    assert got["endpoints"] is None and got["ports"] is None


@pytest.mark.parametrize("body", [
    b"not json",
    b'{"metadata": {"labels": {"a": 1}}}',        # a label value that is not a string
    b'{"metadata": {"name": "a"}, "code": "x"}',  # a Status code that is not a number
    b"[]",
])
def test_malformed_answers_are_value_errors(body: bytes) -> None:
    """The client turns ValueError into a TransportError ("malformed answer")."""
    with pytest.raises(ValueError):
        decoders(ObjectShape).object(body)


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_every_mirror_shape_builds(kind: str) -> None:
    d = decoders(SHAPES[kind])
    minimal: dict[str, Any] = {"kind": kind, "metadata": {"name": "x"}}
    assert d.object(json.dumps(minimal).encode()) == minimal
    assert d.event(json.dumps({"type": "ADDED", "object": minimal}).encode())["object"] == minimal


def _shape_fields(tp: Any, path: str) -> set[str]:
    """Every field path a TypedDict shape names (lists and their items share a path)."""
    fields: set[str] = set()
    for name, hint in typing.get_type_hints(tp).items():
        here = f"{path}.{name}"
        fields.add(here)
        inner = hint
        while typing.get_origin(inner) in (list, typing.Union, types.UnionType):
            inner = next(a for a in typing.get_args(inner) if a is not type(None))
        if typing_extensions.is_typeddict(inner):
            fields |= _shape_fields(inner, here)
    return fields


def _schema_fields(node: dict[str, Any], path: str) -> set[str]:
    fields: set[str] = set()
    node = node.get("items", node)
    for name, child in (node.get("properties") or {}).items():
        fields.add(f"{path}.{name}")
        fields |= _schema_fields(child, f"{path}.{name}")
    return fields


def test_global_service_shape_names_every_field_of_its_crd() -> None:
    """A field the CRD has and the shape lacks would be dropped from every cached
    GlobalService (and plan would rewrite it forever); a field the shape has and the CRD
    lacks would mean the two drifted apart."""
    crd = next(c for c in load_crds() if c["spec"]["names"]["kind"] == "GlobalService")
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    shape = SHAPES["GlobalService"]
    hints = typing.get_type_hints(shape)
    for part in ("spec", "status"):
        assert _shape_fields(hints[part], part) == _schema_fields(schema[part], part)
