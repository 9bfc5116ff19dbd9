"""Pure: the objects the mirror wants in the local cluster, from what peers export.

``desired(peers, ...)`` is a function of its arguments only (no clock, no I/O): the same
catalogs, links, gateway addresses and port allocations always give the same objects, which
is what makes a restart, a re-list or a second replica converge on one answer.

Merge rule for one service exported by several clusters with different ports (docs/mirror.md):
ports are the union by port number; when clusters disagree about a port's name or
appProtocol, the oldest export wins (the Multi-Cluster Services rule; an export of unknown
age counts as the youngest, and equal ages go to the cluster whose name sorts first), and
the GlobalService gets
``PortConflict=True`` naming the clusters. Port names that would repeat, or are empty while
the Service has several ports, become ``p<port>``.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from isthmus.labels import (
    GLOBAL_SERVICE_LABEL,
    LINK_UID_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MCS_SERVICE_NAME_LABEL,
    MCS_SOURCE_CLUSTER_LABEL,
    MIRROR_LABEL,
    PEER_CLUSTER_LABEL,
    PINNED_CLUSTER_LABEL,
    POD_LABEL,
    SLICE_SERVICE_LABEL,
)
from isthmus.mirror.model import CatalogEntry, JsonObj, ObjRef, PeerView, PortSpec, ServiceKey
from isthmus.mirror.names import (
    SLICE_MANAGED_BY,
    SLICE_MANAGED_BY_LABEL,
    global_service_name,
    link_label,
    mirror_service_name,
    pinned_service_name,
    pod_service_name,
)
from isthmus.wellknown import API_VERSION as ISTHMUS_API_VERSION

MERGED = ""  # the cluster part of a PortKey for the merged (unpinned) mirror


class PortKey(NamedTuple):
    """One outbound gateway port: a service port, merged (cluster "") or pinned to a cluster.

    A tuple, not a dataclass: tens of thousands are built, hashed and sorted at every
    start, and a tuple does all three in C."""

    namespace: str
    name: str
    cluster: str
    port: int
    pod: str = ""  # a named pod of a headless export (its hostname), else ""


@dataclass(frozen=True)
class DesiredService:
    """Everything wanted for one exported service key."""

    key: ServiceKey
    objects: dict[ObjRef, JsonObj]
    clusters: tuple[str, ...]
    stale: tuple[tuple[str, str], ...] = ()  # (cluster, reason)
    port_conflict: str | None = None


@dataclass(frozen=True)
class Desired:
    services: dict[ServiceKey, DesiredService] = field(default_factory=dict)
    # cluster -> namespaces it exports into that do not exist here (nothing imported)
    missing_namespaces: dict[str, frozenset[str]] = field(default_factory=dict)

    def objects(self) -> dict[ObjRef, JsonObj]:
        out: dict[ObjRef, JsonObj] = {}
        for ds in self.services.values():
            out.update(ds.objects)
        return out


def exporters_of(
    peers: Sequence[PeerView], key: ServiceKey
) -> list[tuple[PeerView, CatalogEntry]]:
    """The peers exporting ``key``, sorted by cluster name (the merge order)."""
    found = [(p, p.entries[key]) for p in peers if key in p.entries]
    return sorted(found, key=lambda pe: pe[0].cluster)


def all_keys(peers: Iterable[PeerView]) -> set[ServiceKey]:
    keys: set[ServiceKey] = set()
    for p in peers:
        keys.update(p.entries)
    return keys


def precedence(cluster: str, entry: CatalogEntry) -> tuple[int, str]:
    """The merge order: the oldest export first; unknown age last; then by cluster name."""
    age = entry.exported_at_ms if entry.exported_at_ms > 0 else _UNKNOWN_AGE
    return (age, cluster)


_UNKNOWN_AGE = 2**63


def merge_ports(
    exporters: Sequence[tuple[str, CatalogEntry]],
) -> tuple[tuple[PortSpec, ...], str | None]:
    """Union by port number, the oldest export wins a disagreement; plus a message."""
    chosen: dict[int, tuple[str, PortSpec]] = {}
    disagreements: list[str] = []
    for cluster, entry in sorted(exporters, key=lambda ce: precedence(*ce)):
        for p in entry.ports:
            held = chosen.get(p.port)
            if held is None:
                chosen[p.port] = (cluster, p)
            elif held[1] != p:
                disagreements.append(
                    f"port {p.port}: {cluster} says name={p.name!r} appProtocol="
                    f"{p.app_protocol!r}, {held[0]} (kept) says name={held[1].name!r} "
                    f"appProtocol={held[1].app_protocol!r}"
                )
    clusters_ports = {c: {p.port for p in e.ports} for c, e in exporters}
    if len({frozenset(v) for v in clusters_ports.values()}) > 1:
        disagreements.insert(
            0,
            "clusters export different ports: "
            + ", ".join(f"{c}={sorted(v)}" for c, v in sorted(clusters_ports.items())),
        )
    ports = tuple(p for _, (_, p) in sorted(chosen.items()))
    return ports, ("; ".join(disagreements) if disagreements else None)


def port_names(ports: Sequence[PortSpec]) -> list[str]:
    """Unique, valid Service port names (``p<port>`` where a name is missing or repeated)."""
    names: list[str] = []
    seen: set[str] = set()
    for p in ports:
        name = p.name
        if (not name and len(ports) > 1) or name in seen or len(name) > 15:
            name = f"p{p.port}"
        seen.add(name)
        names.append(name)
    return names


def required_ports(peers: Sequence[PeerView], keys: Iterable[ServiceKey]) -> set[PortKey]:
    """Every outbound port the given service keys need (merged and pinned)."""
    needed: set[PortKey] = set()
    for key in keys:
        exporters = exporters_of(peers, key)
        merged, _ = merge_ports([(p.cluster, e) for p, e in exporters])
        needed.update(PortKey(key[0], key[1], MERGED, p.port) for p in merged)
        for peer, entry in exporters:
            needed.update(PortKey(key[0], key[1], peer.cluster, p.port) for p in entry.ports)
            needed.update(PortKey(key[0], key[1], peer.cluster, p.port, pod)
                          for pod in entry.pods for p in entry.ports)
    return needed


def _labels(key: ServiceKey, owners: Sequence[PeerView], pinned: str | None) -> dict[str, str]:
    labels = {
        MIRROR_LABEL: "true",
        MANAGED_BY_LABEL: MANAGED_BY,
        GLOBAL_SERVICE_LABEL: global_service_name(key[1]),
    }
    for peer in owners:
        labels[link_label(peer.cluster)] = peer.link.uid
    if len(owners) == 1:
        labels[PEER_CLUSTER_LABEL] = owners[0].cluster
        labels[LINK_UID_LABEL] = owners[0].link.uid
    if pinned is not None:
        labels[PINNED_CLUSTER_LABEL] = pinned
    return labels


def _address_type(addresses: Sequence[str]) -> str:
    if addresses and isinstance(ipaddress.ip_address(addresses[0]), ipaddress.IPv6Address):
        return "IPv6"
    return "IPv4"


@functools.lru_cache(maxsize=64)
def _slice_addresses(gateway_addresses: tuple[str, ...]) -> tuple[str, list[str]]:
    """The slices' address type (the first address's family) and the gateway addresses of
    that family, sorted. Cached: every slice of every key asks it of the same few
    addresses, and parsing them each time was a visible part of a full resync."""
    address_type = _address_type(gateway_addresses)
    return address_type, sorted(a for a in gateway_addresses
                                if _address_type([a]) == address_type)


def _service_and_slice(
    key: ServiceKey,
    name: str,
    *,
    labels: dict[str, str],
    ports: Sequence[PortSpec],
    outbound: Sequence[int],
    gateway_addresses: Sequence[str],
    source_cluster: str | None = None,
) -> tuple[JsonObj, JsonObj]:
    """A mirror Service and its EndpointSlice. The slice also carries the MCS labels: the
    exported Service's name and, for a pinned slice, its ``source_cluster``."""
    namespace = key[0]
    names = port_names(ports)
    service_ports: list[dict[str, Any]] = []
    slice_ports: list[dict[str, Any]] = []
    for p, pname, out in zip(ports, names, outbound, strict=True):
        # An empty name is left out: the API server drops it, and a field we set that never
        # reads back would make every reconcile look like a change.
        sp: dict[str, Any] = {"port": p.port, "protocol": "TCP", "targetPort": out}
        slp: dict[str, Any] = {"port": out, "protocol": "TCP"}
        if pname:
            sp["name"] = slp["name"] = pname
        if p.app_protocol:
            sp["appProtocol"] = p.app_protocol
        service_ports.append(sp)
        slice_ports.append(slp)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"type": "ClusterIP", "ports": service_ports},
    }
    address_type, addresses = _slice_addresses(tuple(gateway_addresses))
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                **labels,
                SLICE_SERVICE_LABEL: name,
                SLICE_MANAGED_BY_LABEL: SLICE_MANAGED_BY,
                MCS_SERVICE_NAME_LABEL: key[1],
                **({MCS_SOURCE_CLUSTER_LABEL: source_cluster} if source_cluster else {}),
            },
        },
        "addressType": address_type,
        "ports": slice_ports,
        "endpoints": [
            {"addresses": [a], "conditions": {"ready": True}} for a in addresses
        ],
    }
    return service, endpoint_slice


def _ref(obj: JsonObj) -> ObjRef:
    meta = obj["metadata"]
    return (str(obj["kind"]), str(meta["namespace"]), str(meta["name"]))


def import_type(exporters: Sequence[tuple[str, CatalogEntry]]) -> str:
    """The ServiceImport type: the oldest export's (the MCS rule for a type conflict)."""
    if not exporters:
        return CLUSTER_SET_IP
    _, oldest = min(exporters, key=lambda ce: precedence(*ce))
    return HEADLESS if oldest.headless else CLUSTER_SET_IP


CLUSTER_SET_IP, HEADLESS = "ClusterSetIP", "Headless"


def service_import(key: ServiceKey, ports: Sequence[PortSpec], vip: str | None,
                   labels: Mapping[str, str], type_: str = CLUSTER_SET_IP) -> JsonObj:
    """The MCS ServiceImport beside a GlobalService: its type, the merged mirror Service's
    VIP (once it has one; a Headless import has none, its names answer the pods) and the
    merged ports. Its name is the Service's, as the MCS API has it."""
    namespace, svc = key
    si_ports: list[dict[str, Any]] = []
    for p, pname in zip(ports, port_names(ports), strict=True):
        sp: dict[str, Any] = {"port": p.port, "protocol": "TCP"}
        if pname:
            sp["name"] = pname
        if p.app_protocol:
            sp["appProtocol"] = p.app_protocol
        si_ports.append(sp)
    spec: dict[str, Any] = {"type": type_, "ports": si_ports}
    if vip and type_ == CLUSTER_SET_IP:
        spec["ips"] = [vip]
    return {
        "apiVersion": SERVICE_IMPORT_API_VERSION,
        "kind": "ServiceImport",
        "metadata": {"name": svc, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }


SERVICE_IMPORT_API_VERSION = "multicluster.x-k8s.io/v1alpha1"


def desired_service(
    key: ServiceKey,
    exporters: Sequence[tuple[PeerView, CatalogEntry]],
    *,
    gateway_addresses: Sequence[str],
    ports: Mapping[PortKey, int],
    import_vip: str | None = None,
    service_imports: bool = False,
) -> DesiredService:
    """The GlobalService, mirror Service/slice and pinned Services/slices for one key, for a
    headless export one Service/slice per named pod (docs/decisions/headless-per-pod-names.md),
    and with ``service_imports`` (the MCS CRD is served) a ServiceImport whose ``ips`` is
    ``import_vip``, the merged mirror Service's ClusterIP as observed."""
    namespace, svc = key
    owners = [p for p, _ in exporters]
    merged, conflict = merge_ports([(p.cluster, e) for p, e in exporters])
    merged_out = [ports[PortKey(namespace, svc, MERGED, p.port)] for p in merged]
    objects: dict[ObjRef, JsonObj] = {}

    mirror_name = mirror_service_name(svc)
    for obj in _service_and_slice(
        key, mirror_name, labels=_labels(key, owners, None), ports=merged, outbound=merged_out,
        gateway_addresses=gateway_addresses,
    ):
        objects[_ref(obj)] = obj

    endpoints: list[dict[str, Any]] = []
    stale: list[tuple[str, str]] = []
    for peer, entry in exporters:
        pinned_out = [ports[PortKey(namespace, svc, peer.cluster, p.port)] for p in entry.ports]
        for obj in _service_and_slice(
            key,
            pinned_service_name(svc, peer.cluster),
            labels=_labels(key, [peer], peer.cluster),
            ports=entry.ports,
            outbound=pinned_out,
            gateway_addresses=gateway_addresses,
            source_cluster=peer.cluster,
        ):
            objects[_ref(obj)] = obj
        pods: list[dict[str, Any]] = []
        for pod in entry.pods:
            pod_out = [ports[PortKey(namespace, svc, peer.cluster, p.port, pod)]
                       for p in entry.ports]
            for obj in _service_and_slice(
                key,
                pod_service_name(pod, svc, peer.cluster),
                labels={**_labels(key, [peer], peer.cluster), POD_LABEL: pod},
                ports=entry.ports,
                outbound=pod_out,
                gateway_addresses=gateway_addresses,
                source_cluster=peer.cluster,
            ):
                objects[_ref(obj)] = obj
            pods.append({"hostname": pod, "ports": [
                {"port": p.port, "outboundPort": out}
                for p, out in zip(entry.ports, pod_out, strict=True)]})
        if peer.stale_reason is not None:
            stale.append((peer.cluster, peer.stale_reason))
        healthy = peer.stale_reason is None and entry.ready_endpoints > 0
        endpoint: dict[str, Any] = {
            "cluster": peer.cluster,
            "address": peer.link.gateway_host,
            "port": peer.link.gateway_port,
            "weight": entry.weight,
            "health": "Healthy" if healthy else "Unhealthy",
            "readyEndpoints": entry.ready_endpoints,
            **({"exportedAtMs": entry.exported_at_ms} if entry.exported_at_ms else {}),
            "pinnedPorts": [
                {"port": p.port, "outboundPort": out}
                for p, out in zip(entry.ports, pinned_out, strict=True)
            ],
        }
        if pods:
            endpoint["pods"] = pods
        if peer.link.region or peer.link.zone:
            endpoint["locality"] = {"region": peer.link.region, "zone": peer.link.zone}
        endpoints.append(endpoint)

    gs_ports: list[dict[str, Any]] = []
    for p, pname, out in zip(merged, port_names(merged), merged_out, strict=True):
        gp: dict[str, Any] = {"port": p.port, "protocol": "TCP", "outboundPort": out}
        if pname:
            gp["name"] = pname
        if p.app_protocol:
            gp["appProtocol"] = p.app_protocol
        gs_ports.append(gp)
    global_service = {
        "apiVersion": ISTHMUS_API_VERSION,
        "kind": "GlobalService",
        "metadata": {
            "name": global_service_name(svc),
            "namespace": namespace,
            "labels": _labels(key, owners, None),
        },
        "spec": {
            "hosts": [f"{svc}.{namespace}.global"]
            + [f"{svc}.{namespace}.{p.cluster}.global" for p in owners],
            "ports": gs_ports,
            "endpoints": endpoints,
        },
    }
    objects[_ref(global_service)] = global_service
    if service_imports:
        si = service_import(key, merged, import_vip, _labels(key, owners, None),
                            import_type([(p.cluster, e) for p, e in exporters]))
        objects[_ref(si)] = si
    return DesiredService(
        key=key,
        objects=objects,
        clusters=tuple(p.cluster for p in owners),
        stale=tuple(stale),
        port_conflict=conflict,
    )


def desired(
    peers: Sequence[PeerView],
    *,
    gateway_addresses: Sequence[str],
    ports: Mapping[PortKey, int],
    namespaces: frozenset[str] | None,
    keys: Iterable[ServiceKey] | None = None,
    import_vips: Mapping[ServiceKey, str] | None = None,
    service_imports: bool = False,
) -> Desired:
    """The wanted objects for ``keys`` (all services any peer exports when None).

    A service whose namespace does not exist here (``namespaces`` given and without it) is
    not imported: it is reported in ``missing_namespaces`` instead (docs/mirror.md: the mirror never
    creates namespaces).
    """
    wanted = all_keys(peers) if keys is None else set(keys)
    services: dict[ServiceKey, DesiredService] = {}
    missing: dict[str, set[str]] = {}
    for key in sorted(wanted):
        exporters = exporters_of(peers, key)
        if not exporters:
            continue
        if namespaces is not None and key[0] not in namespaces:
            for peer, _ in exporters:
                missing.setdefault(peer.cluster, set()).add(key[0])
            continue
        services[key] = desired_service(
            key, exporters, gateway_addresses=gateway_addresses, ports=ports,
            import_vip=(import_vips or {}).get(key), service_imports=service_imports,
        )
    return Desired(
        services=services,
        missing_namespaces={c: frozenset(v) for c, v in missing.items()},
    )


def global_service_status(
    ds: DesiredService, vips: Mapping[str, str], conflicts: Sequence[str],
    failure: str | None = None,
) -> dict[str, Any]:
    """The status the GlobalService should carry (conditions without timestamps).

    ``vips`` maps mirror Service names to their ClusterIPs, as observed (only Services
    that exist give a name an address). ``failure``: why the last pass could not write
    everything (the import is then not Ready).
    """
    svc = ds.key[1]
    merged_ip = vips.get(mirror_service_name(svc))
    cluster_vips = []
    for cluster in ds.clusters:
        ip = vips.get(pinned_service_name(svc, cluster))
        cluster_vips.append({"cluster": cluster, "vips": [ip] if ip else []})
    conditions: list[dict[str, str]] = []
    if ds.stale:
        conditions.append({
            "type": "Stale", "status": "True", "reason": "PeerUnreachable",
            "message": "; ".join(f"{c}: {r}" for c, r in ds.stale),
        })
    else:
        conditions.append({"type": "Stale", "status": "False", "reason": "Fresh",
                           "message": "every exporting cluster is reachable"})
    if ds.port_conflict:
        conditions.append({"type": "PortConflict", "status": "True", "reason": "PortsDiffer",
                           "message": ds.port_conflict})
    else:
        conditions.append({"type": "PortConflict", "status": "False", "reason": "PortsAgree",
                           "message": ""})
    if conflicts:
        conditions.append({"type": "Conflict", "status": "True", "reason": "NameTaken",
                           "message": "; ".join(conflicts)})
    else:
        conditions.append({"type": "Conflict", "status": "False", "reason": "NoConflict",
                           "message": ""})
    ready = merged_ip is not None and not conflicts and not failure
    if failure:
        reason, message = "WriteFailed", failure[:1000]
    else:
        reason, message = ("Mirrored" if ready else ("Conflict" if conflicts else "Pending")), ""
    conditions.append({
        "type": "Ready", "status": "True" if ready else "False",
        "reason": reason, "message": message,
    })
    return {
        "vips": [merged_ip] if merged_ip else [],
        "clusterVips": cluster_vips,
        "conditions": conditions,
    }
