"""What this cluster exports: a pure function of its Services and EndpointSlices.

The mirror serves this to peers as the export catalog; the gateway uses the same result to
decide which inbound targets exist and where their ready endpoints are. Keeping it in one
pure function means both sides agree by construction.

A Service is exported when it carries ``isthmus.io/export=true`` and is not itself a mirror
(no daisy chains). Its ready endpoints come from EndpointSlices labelled with its name:
an endpoint counts when ``conditions.ready`` is true or absent (the API's own rule), and is
not terminating. Target ports are resolved from each slice's named ports.
"""

from __future__ import annotations

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


def is_exported(service: JsonObj) -> bool:
    meta = service.get("metadata") or {}
    labels = meta.get("labels") or {}
    return labels.get(EXPORT_LABEL) == "true" and labels.get(MIRROR_LABEL) != "true"


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
    services: Iterable[JsonObj], slices: Iterable[JsonObj], max_pods: int = DEFAULT_MAX_PODS,
) -> dict[tuple[str, str], ExportedService]:
    """Pure: the exported services, keyed by (namespace, name), with their ready backends
    (and, for a headless Service, its named pods, at most ``max_pods``)."""
    slices_by_service: dict[tuple[str, str], list[JsonObj]] = {}
    for s in slices:
        meta = s.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SLICE_SERVICE_LABEL)
        if owner:
            slices_by_service.setdefault((meta.get("namespace", ""), owner), []).append(s)

    exports: dict[tuple[str, str], ExportedService] = {}
    for svc in services:
        if not is_exported(svc):
            continue
        meta = svc["metadata"]
        spec = svc.get("spec") or {}
        key = (meta["namespace"], meta["name"])
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
            backends=tuple(Backend(address=a, ports=p) for a, p in sorted(backends.items())),
            headless=headless,
            pods=headless_pods(ready, max_pods) if headless else HeadlessPods(),
        )
    return exports
