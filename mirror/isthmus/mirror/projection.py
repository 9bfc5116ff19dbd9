"""Pure: the slim copy of an API object that the mirror's caches keep.

The controller watches every Service, EndpointSlice and GlobalService of its cluster, so
its caches hold the whole cluster; whole objects (``managedFields``, status, annotations,
topology of every endpoint) cost several KB each. ``project`` keeps exactly what the mirror
reads (docs/decisions/mirror-memory.md):

- metadata: name, namespace, uid, resourceVersion, generation (``resync``), deletionTimestamp,
  every label, and only the ``isthmus.io/`` annotations (``export-to``); for a Service
  that is not a mirror, and a ServiceExport, also creationTimestamp (the export's age
  decides MCS conflicts);
- Service: ``type``, ``clusterIP`` and ``ports`` (export, ``plan`` and the VIPs);
- EndpointSlice: ``addressType``, ``ports``, and per endpoint its addresses, ``hostname``
  (a headless export's pod names) and the ``ready``/``terminating`` conditions (export
  readiness, gateway addresses, ``plan``);
- GlobalService: ``spec`` and ``status`` as they are (written by the mirror; the shape
  names every field of its CRD);
- ServiceImport: ``spec`` as it is (written by the mirror);
- ServiceExport: metadata only (its status is the mirror's to write, never read);
- anything else (Namespace): metadata only. (Links are few and are not projected.)

Whatever ``desired`` writes must survive the projection, or ``plan`` would see a difference
on every reconcile; ``tests/mirror/test_decisions.py`` checks that for each object kind.
The controller keeps what ``project`` returns packed (``isthmus.kube.store``). Two kinds of
sharing still pay, because the decoder (msgspec) makes every string it reads a new object:
- the namespace and the kind are interned: the cache keys, the observed index's references
  and the service keys hold them, one copy per object otherwise (~6 MB at 10 000 imported
  services), and a cluster has few of either, so the interpreter's table of interned
  strings stays small;
- a label value equal to the name or to another label's value (the slice's
  ``kubernetes.io/service-name``, the link UID in two labels) is made the same object as it,
  so ``marshal`` packs it once and writes a reference for the rest (~1.5 MB at 10 000).
Nothing else is interned: names and UIDs are unique, and the table never shrinks.

The ``*Shape`` TypedDicts say the same for decoding (``isthmus.kube.shapes``): the watches and
the answers to our writes are decoded into these fields only, so the dropped parts of an
object are never built at all; ``project`` then trims what is left.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from typing_extensions import TypedDict

from isthmus.kube.shapes import CreatedObjectShape, ObjectShape
from isthmus.labels import MIRROR_LABEL
from isthmus.mirror.model import JsonObj

_META_KEEP = ("name", "namespace", "uid", "resourceVersion", "generation", "deletionTimestamp")
_ANNOTATION_PREFIX = "isthmus.io/"
_SERVICE_SPEC_KEEP = ("type", "clusterIP", "ports")


class ServiceSpecShape(TypedDict, total=False):
    type: str
    clusterIP: str
    ports: list[dict[str, Any]] | None


class ServiceShape(CreatedObjectShape, total=False):
    spec: ServiceSpecShape


class EndpointConditionsShape(TypedDict, total=False):
    ready: bool | None
    terminating: bool | None


class EndpointShape(TypedDict, total=False):
    addresses: list[str] | None
    hostname: str | None
    conditions: EndpointConditionsShape | None


class EndpointSliceShape(ObjectShape, total=False):
    addressType: str
    ports: list[dict[str, Any]] | None
    endpoints: list[EndpointShape] | None


# The GlobalService's fields as its CRD declares them (api/crds): typed fields decode
# faster than ``dict[str, Any]`` (a third of the GlobalService LIST's decode time at 10 000),
# and the CRD's structural schema means the API server never holds any other type or field.
class GsPortShape(TypedDict, total=False):
    name: str
    port: int
    protocol: str
    appProtocol: str
    outboundPort: int


class GsPinnedPortShape(TypedDict, total=False):
    port: int
    outboundPort: int


class GsLocalityShape(TypedDict, total=False):
    region: str
    zone: str


class GsPodShape(TypedDict, total=False):
    hostname: str
    ports: list[GsPinnedPortShape]


class GsEndpointShape(TypedDict, total=False):
    cluster: str
    address: str
    port: int
    locality: GsLocalityShape
    weight: int
    health: str
    readyEndpoints: int
    exportedAtMs: int
    pinnedPorts: list[GsPinnedPortShape]
    pods: list[GsPodShape]


class GsSpecShape(TypedDict, total=False):
    hosts: list[str]
    ports: list[GsPortShape]
    endpoints: list[GsEndpointShape]


class GsClusterVipsShape(TypedDict, total=False):
    cluster: str
    vips: list[str]


class GsConditionShape(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


class GsStatusShape(TypedDict, total=False):
    vips: list[str]
    clusterVips: list[GsClusterVipsShape]
    conditions: list[GsConditionShape]
    syncedFrom: str


class GlobalServiceShape(ObjectShape, total=False):
    spec: GsSpecShape
    status: GsStatusShape


class ServiceImportShape(ObjectShape, total=False):
    spec: dict[str, Any]


# kind -> the fields the mirror decodes (anything else, e.g. a Namespace: metadata only)
SHAPES: dict[str, type] = {
    "Service": ServiceShape,
    "EndpointSlice": EndpointSliceShape,
    "GlobalService": GlobalServiceShape,
    "Namespace": ObjectShape,
    "ServiceExport": CreatedObjectShape,
    "ServiceImport": ServiceImportShape,
}
_KEEPS_CREATION = frozenset({"Service", "ServiceExport"})


def _metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: meta[k] for k in _META_KEEP if k in meta}
    namespace = out.get("namespace")
    if isinstance(namespace, str):
        out["namespace"] = sys.intern(namespace)
    labels = meta.get("labels")
    if labels:
        # equal values become one object, which marshal packs once (see the module's doc)
        same: dict[Any, Any] = {out.get("name"): out.get("name")}
        out["labels"] = {k: same.setdefault(v, v) for k, v in labels.items()}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k.startswith(_ANNOTATION_PREFIX)}
    if annotations:
        out["annotations"] = annotations
    return out


def _endpoint(ep: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": list(ep.get("addresses") or [])}
    if ep.get("hostname"):
        out["hostname"] = ep["hostname"]  # a headless export's per-pod name
    cond = ep.get("conditions")
    if cond:
        out["conditions"] = {k: cond[k] for k in ("ready", "terminating") if k in cond}
    return out


def project(obj: JsonObj) -> JsonObj:
    """The slim copy the mirror keeps of ``obj`` (a new dict, which may share nested values
    with ``obj``; ``obj`` is not changed)."""
    kind = obj.get("kind")
    if isinstance(kind, str):
        kind = sys.intern(kind)  # in every cached reference too (a handful of kinds)
    meta = obj.get("metadata") or {}
    out: JsonObj = {"apiVersion": obj.get("apiVersion"), "kind": kind,
                    "metadata": _metadata(meta)}
    if (kind in _KEEPS_CREATION and meta.get("creationTimestamp")
            and (meta.get("labels") or {}).get(MIRROR_LABEL) != "true"):
        # mirrors, the bulk of the cache, are never exported: no age needed
        out["metadata"]["creationTimestamp"] = meta["creationTimestamp"]
    if kind == "Service":
        spec = obj.get("spec") or {}
        slim = {k: spec[k] for k in _SERVICE_SPEC_KEEP if k in spec and k != "ports"}
        if "ports" in spec:
            slim["ports"] = [dict(p) for p in spec["ports"] or []]
        out["spec"] = slim
    elif kind == "EndpointSlice":
        out["addressType"] = obj.get("addressType")
        out["ports"] = [dict(p) for p in obj.get("ports") or []]
        out["endpoints"] = [_endpoint(ep) for ep in obj.get("endpoints") or []]
    elif kind == "ServiceImport":
        if "spec" in obj:
            out["spec"] = obj["spec"]
    elif kind == "GlobalService":
        for part in ("spec", "status"):
            if part in obj:
                out[part] = obj[part]
    return out
