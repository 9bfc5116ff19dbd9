"""The Kubernetes protobuf encoding, for LISTs of Services and EndpointSlices.

A restart of the mirror LISTs every Service and EndpointSlice of its cluster. As JSON that
is ~1.3 KB per object (most of it ``managedFields``), which the API server spends as much
CPU encoding as the mirror spends decoding, on the same machine. Asked for
``application/vnd.kubernetes.protobuf`` (what Kubernetes' own controllers use for built-in
kinds) the API server encodes the same LIST in about half the CPU and two thirds of the
bytes, and the parser below (upb, in C) skips every field the mirror does not read
(README "### The Kubernetes layer"). Custom resources have no protobuf encoding, so
GlobalServices and Links stay JSON.

Each answer is the 4-byte magic ``k8s\\0`` and a ``runtime.Unknown`` envelope whose ``raw``
is the list message (``k8s_wire.proto`` names the fields read). A page decoder returns what
the JSON path returns: ``{"metadata": {"resourceVersion", "continue"}, "items": [...]}``
with each item a plain dict holding exactly the JSON fields the ``.proto`` names, spelled
and omitted as the API server's JSON would (``omitempty``, pointer fields only when set), so
a consumer cannot tell which encoding it came from (``tests/foundation/test_protobuf.py``
compares both on a real API server).

A malformed answer is a ``ValueError``, as a malformed JSON answer is; the client reports
either as a ``TransportError``.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from isthmus.kube.shapes import Decode

# Build output (scripts/gen-protos.sh), imported by name: its generated stubs are not typed
# strictly enough for mypy --strict (as isthmus.mirror.wire does for the catalog).
wire: Any = importlib.import_module("isthmus.kube.k8s_wire_pb2")

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
# Protobuf first; a server that cannot encode the resource as protobuf answers JSON.
ACCEPT = f"{MEDIA_TYPE}, application/json"
_MAGIC = b"k8s\x00"

JsonObj = dict[str, Any]


def is_protobuf(content_type: str | None) -> bool:
    return bool(content_type) and str(content_type).split(";")[0].strip() == MEDIA_TYPE


def _parse(cls: Any, data: bytes | memoryview) -> Any:
    try:
        return cls.FromString(data)
    except DecodeError as exc:
        raise ValueError(f"malformed protobuf {cls.__name__}: {exc}") from exc


def unwrap(body: bytes) -> bytes:
    """The object inside the ``runtime.Unknown`` envelope."""
    if body[:4] != _MAGIC:
        raise ValueError("not a Kubernetes protobuf answer (no k8s\\0 magic)")
    envelope = _parse(wire.Unknown, memoryview(body)[4:])
    if envelope.contentEncoding:
        raise ValueError(f"unsupported protobuf content encoding {envelope.contentEncoding!r}")
    raw: bytes = envelope.raw
    return raw


# --- the JSON fields of each message (pure) ---------------------------------------------
def _time(t: Any) -> str:
    # metav1.Time's JSON: RFC 3339 in UTC, whole seconds
    return dt.datetime.fromtimestamp(t.seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_meta(m: Any) -> JsonObj:
    out: JsonObj = {}
    if m.name:
        out["name"] = m.name
    if m.namespace:
        out["namespace"] = m.namespace
    if m.uid:
        out["uid"] = m.uid
    if m.resourceVersion:
        out["resourceVersion"] = m.resourceVersion
    if m.HasField("deletionTimestamp"):
        out["deletionTimestamp"] = _time(m.deletionTimestamp)
    if m.labels:
        out["labels"] = dict(m.labels)
    if m.annotations:
        out["annotations"] = dict(m.annotations)
    return out


def service_port(p: Any) -> JsonObj:
    out: JsonObj = {}
    if p.name:
        out["name"] = p.name
    if p.protocol:
        out["protocol"] = p.protocol
    if p.HasField("appProtocol"):
        out["appProtocol"] = p.appProtocol
    out["port"] = p.port
    if p.HasField("targetPort"):
        target = p.targetPort
        out["targetPort"] = target.strVal if target.type == 1 else target.intVal
    if p.nodePort:
        out["nodePort"] = p.nodePort
    return out


def service(s: Any) -> JsonObj:
    spec = s.spec
    out_spec: JsonObj = {}
    if spec.ports:
        out_spec["ports"] = [service_port(p) for p in spec.ports]
    if spec.clusterIP:
        out_spec["clusterIP"] = spec.clusterIP
    if spec.type:
        out_spec["type"] = spec.type
    return {"apiVersion": "v1", "kind": "Service", "metadata": object_meta(s.metadata),
            "spec": out_spec}


def endpoint(e: Any) -> JsonObj:
    out: JsonObj = {"addresses": list(e.addresses)}
    if e.HasField("conditions"):
        c = e.conditions
        out["conditions"] = {name: getattr(c, name) for name in ("ready", "serving", "terminating")
                             if c.HasField(name)}
    return out


def endpoint_port(p: Any) -> JsonObj:
    return {name: getattr(p, name) for name in ("name", "protocol", "port", "appProtocol")
            if p.HasField(name)}


def endpoint_slice(s: Any) -> JsonObj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": object_meta(s.metadata), "addressType": s.addressType,
            "endpoints": [endpoint(e) for e in s.endpoints],
            "ports": [endpoint_port(p) for p in s.ports]}


def status(body: bytes) -> JsonObj:
    """An error answer's ``Status``, as its JSON would read (for ``errors.from_status``)."""
    st = _parse(wire.Status, unwrap(body))
    out: JsonObj = {"kind": "Status", "apiVersion": "v1", "status": st.status,
                    "message": st.message, "reason": st.reason, "code": st.code}
    if st.HasField("details"):
        d = st.details
        out["details"] = {"name": d.name, "group": d.group, "kind": d.kind, "uid": d.uid,
                          "causes": [{"reason": c.reason, "message": c.message,
                                      "field": c.field} for c in d.causes]}
        if d.retryAfterSeconds:
            out["details"]["retryAfterSeconds"] = d.retryAfterSeconds
    return out


def _page(list_cls: Any, item: Callable[[Any], JsonObj]) -> Decode:
    def decode(body: bytes) -> JsonObj:
        answer = _parse(list_cls, unwrap(body))
        meta: JsonObj = {"resourceVersion": answer.metadata.resourceVersion}
        if answer.metadata.HasField("continue"):
            meta["continue"] = getattr(answer.metadata, "continue")
        return {"metadata": meta, "items": [item(i) for i in answer.items]}

    return decode


# kind -> the decoder of one LIST page of it (built-in kinds the mirror caches)
PAGE_DECODERS: dict[str, Decode] = {
    "Service": _page(wire.ServiceList, service),
    "EndpointSlice": _page(wire.EndpointSliceList, endpoint_slice),
}


def page_decoder(kind: str) -> Decode | None:
    return PAGE_DECODERS.get(kind)
