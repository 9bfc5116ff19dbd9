"""Pure: the slim copy of an API object that the mirror's caches keep.

The controller watches every Service, EndpointSlice and GlobalService of its cluster, so
its caches hold the whole cluster; whole objects (``managedFields``, status, annotations,
topology of every endpoint) cost several KB each. ``project`` keeps exactly what the mirror
reads (README "### Memory"):

- metadata: name, namespace, uid, resourceVersion, deletionTimestamp, every label, and
  only the ``isthmus.io/`` annotations (``export-to``);
- Service: ``type``, ``clusterIP`` and ``ports`` (export, ``plan`` and the VIPs);
- EndpointSlice: ``addressType``, ``ports``, and per endpoint its addresses and the
  ``ready``/``terminating`` conditions (export readiness, gateway addresses, ``plan``);
- GlobalService: ``spec`` and ``status`` as they are (written by the mirror);
- anything else (Namespace): metadata only. (Links are few and are not projected.)

Whatever ``desired`` writes must survive the projection, or ``plan`` would see a difference
on every reconcile; ``tests/mirror/test_decisions.py`` checks that for each object kind.
Repeated strings (label keys and values, namespaces, kinds) are interned so 10 000 objects
share one copy of each, and repeated values (a slice's endpoints, a condition) are shared
through a bounded table (``SharedValues``).

The ``*Shape`` TypedDicts say the same for decoding (``isthmus.kube.shapes``): the watches and
the answers to our writes are decoded into these fields only, so the dropped parts of an
object are never built at all; ``project`` then trims and interns what is left.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any

from typing_extensions import TypedDict

from isthmus.kube.shapes import ObjectShape
from isthmus.mirror.model import JsonObj

_META_KEEP = ("name", "namespace", "uid", "resourceVersion", "deletionTimestamp")
_ANNOTATION_PREFIX = "isthmus.io/"
_SERVICE_SPEC_KEEP = ("type", "clusterIP", "ports")
_intern = sys.intern


class ServiceSpecShape(TypedDict, total=False):
    type: str
    clusterIP: str
    ports: list[dict[str, Any]] | None


class ServiceShape(ObjectShape, total=False):
    spec: ServiceSpecShape


class EndpointConditionsShape(TypedDict, total=False):
    ready: bool | None
    terminating: bool | None


class EndpointShape(TypedDict, total=False):
    addresses: list[str] | None
    conditions: EndpointConditionsShape | None


class EndpointSliceShape(ObjectShape, total=False):
    addressType: str
    ports: list[dict[str, Any]] | None
    endpoints: list[EndpointShape] | None


class GlobalServiceShape(ObjectShape, total=False):
    spec: dict[str, Any]
    status: dict[str, Any]


# kind -> the fields the mirror decodes (anything else, e.g. a Namespace: metadata only)
SHAPES: dict[str, type] = {
    "Service": ServiceShape,
    "EndpointSlice": EndpointSliceShape,
    "GlobalService": GlobalServiceShape,
    "Namespace": ObjectShape,
}


def _s(value: Any) -> Any:
    return _intern(value) if isinstance(value, str) else value


def _flat(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A dict of scalars with interned keys and string values (ports, conditions)."""
    return {_intern(k): _s(v) for k, v in obj.items()}


def _metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: _s(meta[k]) for k in _META_KEEP if k in meta}
    labels = meta.get("labels")
    if labels:
        out["labels"] = _flat(labels)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k.startswith(_ANNOTATION_PREFIX)}
    if annotations:
        out["annotations"] = _flat(annotations)
    return out


class SharedValues:
    """Best effort: one copy of equal values (bounded, least recently used out).

    Every mirror EndpointSlice lists the same local gateway endpoints, and GlobalServices
    written in the same second carry identical conditions; sharing them halves the cache.
    Cached objects are never changed in place (the controller builds new dicts), which is
    what makes sharing safe. Callers give a hashable key that tells equal values apart
    exactly (the shapes make ``ready`` a bool, so ``True`` and ``1`` never meet)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._table: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, value: Any) -> Any:
        hit = self._table.get(key)
        if hit is not None:
            self._table.move_to_end(key)
            return hit
        self._table[key] = value
        if len(self._table) > self.size:
            self._table.popitem(last=False)
        return value


_shared = SharedValues()


def _condition(c: Mapping[str, Any]) -> Any:
    if not all(isinstance(v, str) for v in c.values()):
        return c
    return _shared.get(("condition", *c.items()), _flat(c))


def _deep(value: Any) -> Any:
    """``value`` rebuilt with every key and string interned (the decoder does not share
    them between objects)."""
    if isinstance(value, dict):
        return {_intern(k): _deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep(v) for v in value]
    return _s(value)


def _global_service_part(part: Mapping[str, Any]) -> dict[str, Any]:
    out = {_intern(k): _deep(v) for k, v in part.items() if k != "conditions"}
    conditions = part.get("conditions")
    if isinstance(conditions, list):
        out["conditions"] = [_condition(c) if isinstance(c, dict) else c for c in conditions]
    elif "conditions" in part:
        out["conditions"] = conditions
    return out


def _endpoint(ep: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": [_s(a) for a in ep.get("addresses") or []]}
    cond = ep.get("conditions")
    if cond:
        out["conditions"] = {k: cond[k] for k in ("ready", "terminating") if k in cond}
    return out


def project(obj: JsonObj) -> JsonObj:
    """The slim copy the mirror keeps of ``obj`` (a new dict; ``obj`` is not changed)."""
    kind = obj.get("kind")
    out: JsonObj = {"apiVersion": _s(obj.get("apiVersion")), "kind": _s(kind),
                    "metadata": _metadata(obj.get("metadata") or {})}
    if kind == "Service":
        spec = obj.get("spec") or {}
        slim = {k: _s(spec[k]) for k in _SERVICE_SPEC_KEEP if k in spec and k != "ports"}
        if "ports" in spec:
            slim["ports"] = [_flat(p) for p in spec["ports"] or []]
        out["spec"] = slim
    elif kind == "EndpointSlice":
        out["addressType"] = _s(obj.get("addressType"))
        out["ports"] = [_flat(p) for p in obj.get("ports") or []]
        endpoints = [_endpoint(ep) for ep in obj.get("endpoints") or []]
        key = ("endpoints", *((tuple(e["addresses"]), *sorted((e.get("conditions") or {}).items()))
                              for e in endpoints))
        out["endpoints"] = _shared.get(key, endpoints)
    elif kind == "GlobalService":
        for part in ("spec", "status"):
            if isinstance(obj.get(part), dict):
                out[part] = _global_service_part(obj[part])
            elif part in obj:
                out[part] = obj[part]
    return out
