"""What this cluster exports: a pure function of its Services and EndpointSlices.

The mirror serves this to peers as the export catalog; the gateway uses the same result to
decide which inbound targets exist and where their ready endpoints are. Keeping it in one
pure function means both sides agree by construction.

A Service is exported when it carries ``isthmus.io/export=true`` or a ServiceExport
(Multi-Cluster Services API) of the same namespace and name exists, and it is not itself a
mirror (no daisy chains) nor an ExternalName Service (it has no endpoints to carry). Both
together are one export. The export's age (for the MCS rule "the oldest export wins a
conflict") is the ServiceExport's creationTimestamp, or the Service's when only the label
exports it (the label's own age is not recorded); with both, the older.

Its ready endpoints come from EndpointSlices labelled with its name:
an endpoint counts when ``conditions.ready`` is true or absent (the API's own rule), and is
not terminating. Target ports are resolved from each slice's named ports.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from isthmus.headless import DEFAULT_MAX_PODS, HeadlessPods, headless_pods, is_headless
from isthmus.labels import (
    DEFAULT_WEIGHT,
    EXPORT_LABEL,
    EXPORT_TO_ANNOTATION,
    MAX_WEIGHT,
    MIRROR_LABEL,
    SLICE_SERVICE_LABEL,
    WEIGHT_ANNOTATION,
)

JsonObj = Mapping[str, Any]


class ExportedPort(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = ""
    port: int
    protocol: str = "TCP"
    app_protocol: str | None = None


class Backend(BaseModel):
    """One ready endpoint address with the port it serves each Service port on."""

    model_config = ConfigDict(frozen=True)

    address: str
    ports: dict[int, int] = Field(default_factory=dict)  # service port -> endpoint port


class ExportedService(BaseModel):
    model_config = ConfigDict(frozen=True)

    namespace: str
    name: str
    ports: tuple[ExportedPort, ...]
    # None: every linked cluster may import; a set (maybe empty): only those clusters.
    allowed_clusters: frozenset[str] | None = None
    backends: tuple[Backend, ...] = ()
    weight: int = Field(default=DEFAULT_WEIGHT, ge=0, le=MAX_WEIGHT)
    # Why the weight annotation was not used (the weight is then the default), for an Event.
    weight_problem: str | None = None
    # ``clusterIP: None``: peers get a name per pod (isthmus.headless), in ``pods``.
    headless: bool = False
    pods: HeadlessPods = Field(default_factory=HeadlessPods)
    # When it was first exported (Unix ms; 0: unknown): the MCS conflict rule's age.
    exported_at_ms: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def ready_endpoints(self) -> int:
        return len(self.backends)

    def allows(self, cluster: str) -> bool:
        return self.allowed_clusters is None or cluster in self.allowed_clusters

    def has_port(self, port: int) -> bool:
        return any(p.port == port for p in self.ports)


def is_labelled(service: JsonObj) -> bool:
    labels = (service.get("metadata") or {}).get("labels") or {}
    return labels.get(EXPORT_LABEL) == "true"


def is_exportable(service: JsonObj) -> bool:
    """Not a mirror (no daisy chains), and not ExternalName (no endpoints to carry)."""
    labels = (service.get("metadata") or {}).get("labels") or {}
    kind = (service.get("spec") or {}).get("type")
    return labels.get(MIRROR_LABEL) != "true" and kind != "ExternalName"


def is_exported(service: JsonObj, by_service_export: bool = False) -> bool:
    """Exported: labelled, or named by a ServiceExport (``by_service_export``)."""
    return (is_labelled(service) or by_service_export) and is_exportable(service)


def timestamp_ms(value: object) -> int:
    """An API timestamp (RFC 3339, as in ``creationTimestamp``) in Unix ms; 0 if absent or
    malformed (an unknown age, which sorts as the youngest)."""
    if not isinstance(value, str) or not value:
        return 0
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return max(0, int(parsed.timestamp() * 1000))


def service_exports_by_key(objs: Iterable[JsonObj]) -> dict[tuple[str, str], int]:
    """ServiceExports → {(namespace, name): creation time in Unix ms}. One being deleted
    (``deletionTimestamp`` set) no longer exports."""
    found: dict[tuple[str, str], int] = {}
    for obj in objs:
        meta = obj.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        found[(str(meta.get("namespace", "")), str(meta.get("name", "")))] = timestamp_ms(
            meta.get("creationTimestamp"))
    return found


def export_age_ms(service: JsonObj, service_export_ms: int | None) -> int:
    """The export's age: the older of the ServiceExport and, when labelled, the Service."""
    candidates = []
    if service_export_ms is not None and service_export_ms > 0:
        candidates.append(service_export_ms)
    if is_labelled(service) or not candidates:
        created = timestamp_ms((service.get("metadata") or {}).get("creationTimestamp"))
        if created:
            candidates.append(created)
    return min(candidates) if candidates else 0


def parse_allowed(annotations: Mapping[str, str]) -> frozenset[str] | None:
    """``isthmus.io/export-to`` → the set of clusters, or None when absent (= everyone)."""
    raw = annotations.get(EXPORT_TO_ANNOTATION)
    if raw is None:
        return None
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())


_WEIGHT_DIGITS = re.compile(r"^[0-9]{1,5}$")


def parse_weight(annotations: Mapping[str, str]) -> tuple[int, str | None]:
    """``isthmus.io/weight`` → (weight, problem). Absent: the default, no problem. Invalid:
    the default and a sentence saying why (the export itself is never dropped for this)."""
    raw = annotations.get(WEIGHT_ANNOTATION)
    if raw is None:
        return DEFAULT_WEIGHT, None
    text = raw.strip()
    if not _WEIGHT_DIGITS.match(text) or int(text) > MAX_WEIGHT:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        return DEFAULT_WEIGHT, (
            f"annotation {WEIGHT_ANNOTATION}={shown!r} is not an integer from 0 to "
            f"{MAX_WEIGHT}; using the default weight {DEFAULT_WEIGHT}")
    return int(text), None


def _service_ports(spec: JsonObj) -> tuple[ExportedPort, ...]:
    ports = []
    for p in spec.get("ports") or []:
        if (p.get("protocol") or "TCP") != "TCP":
            continue  # the gateway carries TCP only
        ports.append(
            ExportedPort(
                name=p.get("name") or "",
                port=int(p["port"]),
                app_protocol=p.get("appProtocol"),
            )
        )
    return tuple(ports)


def _target_ports(service_spec: JsonObj, slice_ports: list[JsonObj]) -> dict[int, int]:
    """Map each Service port to the slice's endpoint port (matched by port name)."""
    by_name = {(sp.get("name") or ""): sp.get("port") for sp in slice_ports}
    mapping: dict[int, int] = {}
    for p in service_spec.get("ports") or []:
        endpoint_port = by_name.get(p.get("name") or "")
        if isinstance(endpoint_port, int):
            mapping[int(p["port"])] = endpoint_port
    return mapping


def _ready(endpoint: JsonObj) -> bool:
    cond = endpoint.get("conditions") or {}
    return cond.get("ready", True) is not False and cond.get("terminating") is not True


def build_exports(
    services: Iterable[JsonObj],
    slices: Iterable[JsonObj],
    service_exports: Mapping[tuple[str, str], int] | None = None,
    max_pods: int = DEFAULT_MAX_PODS,
) -> dict[tuple[str, str], ExportedService]:
    """Pure: the exported services, keyed by (namespace, name), with their ready backends
    (and, for a headless Service, its named pods, at most ``max_pods``).
    ``service_exports``: the keys a ServiceExport names, with its creation time
    (``service_exports_by_key``)."""
    by_export = service_exports or {}
    slices_by_service: dict[tuple[str, str], list[JsonObj]] = {}
    for s in slices:
        meta = s.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SLICE_SERVICE_LABEL)
        if owner:
            slices_by_service.setdefault((meta.get("namespace", ""), owner), []).append(s)

    exports: dict[tuple[str, str], ExportedService] = {}
    for svc in services:
        meta = svc["metadata"]
        key = (meta["namespace"], meta["name"])
        if not is_exported(svc, key in by_export):
            continue
        spec = svc.get("spec") or {}
        ports = _service_ports(spec)
        if not ports:
            continue
        backends: dict[str, dict[int, int]] = {}
        ready: list[tuple[dict[int, int], JsonObj]] = []
        for sl in slices_by_service.get(key, []):
            port_map = _target_ports(spec, list(sl.get("ports") or []))
            for ep in sl.get("endpoints") or []:
                if not _ready(ep):
                    continue
                ready.append((port_map, ep))
                for addr in ep.get("addresses") or []:
                    backends.setdefault(addr, {}).update(port_map)
        headless = is_headless(svc)
        annotations = meta.get("annotations") or {}
        weight, weight_problem = parse_weight(annotations)
        exports[key] = ExportedService(
            namespace=key[0],
            name=key[1],
            ports=ports,
            allowed_clusters=parse_allowed(annotations),
            weight=weight,
            weight_problem=weight_problem,
            exported_at_ms=export_age_ms(svc, by_export.get(key)),
            backends=tuple(Backend(address=a, ports=p) for a, p in sorted(backends.items())),
            headless=headless,
            pods=headless_pods(ready, max_pods) if headless else HeadlessPods(),
        )
    return exports
