"""The routing snapshot: everything the data path needs, immutable, built by a pure function.

``build_snapshot`` turns what the API server holds (Services and EndpointSlices of this
cluster, Links, GlobalServices) into one ``Snapshot``. Bad objects are skipped one by one
(logged by the feed), never the whole batch. The updater swaps the whole snapshot at once;
the data path reads ``state.snapshot`` once per connection and never sees a mix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pydantic

from isthmus.api.models import GlobalService, Health, Link
from isthmus.exports import (
    ExportedService,
    build_exports,
    is_exported,
    service_exports_by_key,
)
from isthmus.gateway.backend_policy import IpAddress, parse_ip
from isthmus.kube.store import key_of
from isthmus.labels import SLICE_SERVICE_LABEL

JsonObj = Mapping[str, Any]


@dataclass(frozen=True)
class LinkedCluster:
    cluster: str
    trust_domain: str


@dataclass(frozen=True)
class PeerEndpoint:
    """One exporting cluster's gateway, as a GlobalService endpoint describes it."""

    cluster: str
    host: str
    port: int
    region: str = ""
    zone: str = ""
    weight: int = 100
    healthy: bool = True  # False when the GlobalService says Unhealthy

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.cluster, self.host, self.port)


@dataclass(frozen=True)
class OutboundRoute:
    """What an outbound listener carries: one service port, to these clusters."""

    listen_port: int
    namespace: str
    service: str
    port: int
    endpoints: tuple[PeerEndpoint, ...]
    pinned_cluster: str | None = None
    pod: str | None = None  # one named pod of a headless export (pinned to its cluster)

    @property
    def target(self) -> str:
        pod = f"{self.pod}." if self.pod else ""
        return f"{pod}{self.service}.{self.namespace}:{self.port}"


def _frozen(d: dict[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(d)


@dataclass(frozen=True)
class Snapshot:
    version: int = 0
    exports: Mapping[tuple[str, str], ExportedService] = field(default_factory=lambda: _frozen({}))
    known_services: frozenset[tuple[str, str]] = frozenset()
    links: Mapping[str, LinkedCluster] = field(default_factory=lambda: _frozen({}))
    outbound: Mapping[int, OutboundRoute] = field(default_factory=lambda: _frozen({}))
    catalog_address: tuple[str, int] | None = None
    skipped: tuple[str, ...] = ()  # objects that could not be read, with why
    api_server: frozenset[tuple[IpAddress, int]] = frozenset()  # kubernetes Service endpoints
    skipped_slices: int = 0  # EndpointSlices not of addressType IPv4/IPv6 (never dialled)

    def to_json(self) -> dict[str, Any]:
        """The /config dump."""
        return {
            "version": self.version,
            "links": {c: lc.trust_domain for c, lc in sorted(self.links.items())},
            "catalog": "{}:{}".format(*self.catalog_address) if self.catalog_address else None,
            "inbound": [
                {
                    "service": f"{e.name}.{e.namespace}",
                    "ports": [p.port for p in e.ports],
                    "allowedClusters": None
                    if e.allowed_clusters is None
                    else sorted(e.allowed_clusters),
                    "readyBackends": [
                        {"address": b.address, "ports": {str(k): v for k, v in b.ports.items()}}
                        for b in e.backends
                    ],
                }
                for _, e in sorted(self.exports.items())
            ],
            "outbound": [
                {
                    "listenPort": r.listen_port,
                    "target": r.target,
                    "pinnedCluster": r.pinned_cluster,
                    "pod": r.pod,
                    "endpoints": [
                        {
                            "cluster": p.cluster,
                            "address": f"{p.host}:{p.port}",
                            "region": p.region,
                            "zone": p.zone,
                            "weight": p.weight,
                            "healthy": p.healthy,
                        }
                        for p in r.endpoints
                    ],
                }
                for _, r in sorted(self.outbound.items())
            ],
            "skipped": list(self.skipped),
        }


def _service_of(gs: GlobalService) -> tuple[str, str]:
    """(namespace, name) of the exported Service a GlobalService mirrors."""
    for host in gs.spec.hosts:
        parts = host.lower().rstrip(".").split(".")
        if len(parts) == 3 and parts[2] == "global":
            return parts[1], parts[0]
    return gs.metadata.namespace or "", gs.metadata.name


def _outbound(gss: Iterable[GlobalService], skipped: list[str]) -> dict[int, OutboundRoute]:
    routes: dict[int, OutboundRoute] = {}

    def add(route: OutboundRoute, what: str) -> None:
        if route.listen_port in routes:
            skipped.append(f"{what}: outbound port {route.listen_port} already used")
            return
        routes[route.listen_port] = route

    for gs in sorted(gss, key=lambda g: (g.metadata.namespace or "", g.metadata.name)):
        ns, svc = _service_of(gs)
        what = f"GlobalService {gs.metadata.namespace}/{gs.metadata.name}"
        peers = tuple(
            PeerEndpoint(
                cluster=e.cluster,
                host=e.address,
                port=e.port,
                region=e.locality.region,
                zone=e.locality.zone,
                weight=e.weight,
                healthy=e.health is not Health.UNHEALTHY,
            )
            for e in gs.spec.endpoints
        )
        for sp in gs.spec.ports:
            if sp.outbound_port is not None:
                add(OutboundRoute(sp.outbound_port, ns, svc, sp.port, peers), what)
        for e, peer in zip(gs.spec.endpoints, peers, strict=True):
            for pin in e.pinned_ports:
                add(OutboundRoute(pin.outbound_port, ns, svc, pin.port, (peer,), e.cluster), what)
            for pod in e.pods:
                for pin in pod.ports:
                    add(OutboundRoute(pin.outbound_port, ns, svc, pin.port, (peer,), e.cluster,
                                      pod.hostname), what)
    return routes


IP_ADDRESS_TYPES = frozenset({"IPv4", "IPv6"})


def _split_slices(
    slices: Iterable[JsonObj], skipped: list[str]
) -> tuple[list[JsonObj], frozenset[tuple[IpAddress, int]], int]:
    """(slices usable for backends, the API server's endpoints, how many were skipped)."""
    usable: list[JsonObj] = []
    api_server: set[tuple[IpAddress, int]] = set()
    dropped = 0
    for sl in slices:
        meta = sl.get("metadata") or {}
        kind = sl.get("addressType")
        if kind not in IP_ADDRESS_TYPES:
            dropped += 1
            skipped.append(
                f"EndpointSlice {meta.get('namespace')}/{meta.get('name')}: addressType "
                f"{kind!r}, only IPv4 and IPv6 endpoints are dialled (names never resolved)"
            )
            continue
        usable.append(sl)
        owner = (meta.get("labels") or {}).get(SLICE_SERVICE_LABEL)
        if meta.get("namespace") == "default" and owner == "kubernetes":
            ports = [p.get("port") for p in sl.get("ports") or []]
            for ep in sl.get("endpoints") or []:
                for addr in ep.get("addresses") or []:
                    ip = parse_ip(str(addr))
                    if ip is not None:
                        api_server.update((ip, p) for p in ports if isinstance(p, int))
    return usable, frozenset(api_server), dropped


def build_snapshot(
    *,
    services: Iterable[JsonObj],
    slices: Iterable[JsonObj],
    links: Iterable[JsonObj],
    global_services: Iterable[JsonObj],
    service_exports: Iterable[JsonObj] = (),
    catalog_address: tuple[str, int] | None = None,
    version: int = 0,
) -> Snapshot:
    """Pure: the routing snapshot of these API objects."""
    services = list(services)
    by_export = service_exports_by_key(service_exports)
    skipped: list[str] = []
    ip_slices, api_server, skipped_slices = _split_slices(slices, skipped)
    linked: dict[str, LinkedCluster] = {}
    for raw in links:
        try:
            link = Link.model_validate(raw)
        except pydantic.ValidationError as exc:
            name = (raw.get("metadata") or {}).get("name")
            skipped.append(f"Link {name}: {exc.error_count()} invalid field(s)")
            continue
        linked[link.spec.cluster] = LinkedCluster(link.spec.cluster, link.spec.trust_domain)
    gss: list[GlobalService] = []
    for raw in global_services:
        try:
            gss.append(GlobalService.model_validate(raw))
        except pydantic.ValidationError as exc:
            meta = raw.get("metadata") or {}
            skipped.append(
                f"GlobalService {meta.get('namespace')}/{meta.get('name')}: "
                f"{exc.error_count()} invalid field(s)"
            )
    known = frozenset(
        ((s.get("metadata") or {}).get("namespace", ""), (s.get("metadata") or {}).get("name", ""))
        for s in services
        if not is_exported(s, key_of(s) in by_export)
    )
    return Snapshot(
        version=version,
        exports=_frozen(build_exports(services, ip_slices, by_export)),
        known_services=known,
        links=_frozen(linked),
        outbound=_frozen(_outbound(gss, skipped)),
        catalog_address=catalog_address,
        skipped=tuple(skipped),
        api_server=api_server,
        skipped_slices=skipped_slices,
    )
