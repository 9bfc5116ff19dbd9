"""The immutable view the resolver reads: every name the responder answers, per zone.

``build_snapshot`` is pure: a list of ``GlobalService`` models and a ``SnapshotConfig`` in,
a ``Snapshot`` out. ``SnapshotHolder`` is the only mutable part: it swaps in a new snapshot
and tells its listeners (the responder drops its answer cache on the same call).

Names, relative to each served zone (the same names are served under every zone):

- ``<svc>.<ns>``            A/AAAA: the merged mirror Service's ClusterIPs, else ``status.vips``
- ``<svc>.<ns>.<cluster>``  A/AAAA: that cluster's pinned mirror Service's ClusterIPs, else
                            ``status.clusterVips`` of that cluster
- ``_<port>._tcp.<svc>.<ns>`` SRV, target ``<svc>.<ns>.<zone>.``, port = ``spec.ports[].port``

A host must be exactly ``<svc>.<ns>.global`` (two labels below ``global``): three labels
always mean ``<svc>.<ns>.<cluster>``, so a host with three labels would be ambiguous with a
pinned name and is rejected (listed in ``Snapshot.rejected``). Every ancestor of a name that
is not itself a name (``<ns>``, ``_tcp.<svc>.<ns>``, ``<ns>.<cluster>``) is an empty
non-terminal: it exists, with no records (NODATA, not NXDOMAIN).

The ``clusterset.local`` zone (``SnapshotConfig.clusterset_zone``) serves the Multi-Cluster
Services names of the same services instead (``isthmus.dns.clusterset``).

A Stale service is still answered, with ``stale_ttl`` (default 1 s) instead of ``ttl``
(default 5 s), so clients come back soon and see the fresh answer once the peer returns.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from isthmus.api.models import GlobalService
from isthmus.dns import clusterset
from isthmus.dns.clusterset import McsName
from isthmus.dns.mirror_vips import VipKey
from isthmus.dns.pod_names import clusterset_pod_name, global_pod_name, pod_table, pods_of

Labels = tuple[bytes, ...]

# The suffix GlobalService hosts are written with; served under every configured zone.
HOST_SUFFIX = "global"


def labels_of(name: str) -> Labels:
    """``"Users.Shop.global."`` -> ``(b"users", b"shop", b"global")`` (lower-cased)."""
    text = name.strip().rstrip(".").lower()
    return tuple(part.encode("ascii") for part in text.split(".")) if text else ()


def text_of(labels: Labels) -> str:
    return ".".join(label.decode("ascii", "backslashreplace") for label in labels) + "."


@dataclass(frozen=True, slots=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: Labels


@dataclass(frozen=True, slots=True)
class NameData:
    """The records of one owner name (any of the tuples may be empty: NODATA)."""

    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    srv: tuple[Srv, ...] = ()
    ttl: int = 5
    txt: tuple[str, ...] = ()
    source: str = ""  # "<ns>/<name>" of the GlobalService, for logs


@dataclass(frozen=True, slots=True)
class Zone:
    origin: Labels
    serial: int
    ttl: int
    negative_ttl: int
    ns: Labels  # the NS target, also the SOA MNAME
    hostmaster: Labels  # SOA RNAME
    refresh: int = 60
    retry: int = 10
    expire: int = 3600


@dataclass(frozen=True, slots=True)
class SnapshotConfig:
    """What the operator chooses; the same for every snapshot of one process."""

    zones: tuple[str, ...] = ("global.",)
    ttl: int = 5
    stale_ttl: int = 1
    negative_ttl: int = 5
    ns_name: str = "isthmus-dns.isthmus-system.svc.cluster.local."
    hostmaster: str = ""  # default: hostmaster.<zone>
    clusterset_zone: str = clusterset.ZONE  # "": not served


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything ``resolve`` needs; never mutated after ``build_snapshot`` returns."""

    generation: int
    zones: tuple[Zone, ...]  # longest origin first, so the most specific zone wins
    names: Mapping[Labels, NameData]
    nonterminals: frozenset[Labels]
    rejected: tuple[str, ...] = ()
    services: int = 0

    def zone_for(self, name: Labels) -> Zone | None:
        for zone in self.zones:
            n = len(zone.origin)
            if n == 0 or name[-n:] == zone.origin:
                return zone
        return None


def _relative_host(host: str) -> Labels | None:
    labels = labels_of(host)
    if len(labels) == 3 and labels[-1] == HOST_SUFFIX.encode():
        return labels[:2]
    return None


def _pinned_host(host: str, bases: set[Labels],
                 pinned: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> bool:
    """Whether ``host`` is the pinned name of one of this GlobalService's exporting
    clusters (the mirror lists those in spec.hosts too)."""
    labels = labels_of(host)
    return (len(labels) == 4 and labels[-1] == HOST_SUFFIX.encode()
            and labels[:2] in bases and labels[2].decode(errors="replace") in pinned)


def _split_ips(values: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    v4: list[str] = []
    v6: list[str] = []
    for value in values:
        ip = ipaddress.ip_address(value)
        (v4 if ip.version == 4 else v6).append(str(ip))
    return tuple(v4), tuple(v6)


def build_snapshot(
    services: Iterable[GlobalService],
    config: SnapshotConfig = SnapshotConfig(),
    *,
    vips: Mapping[VipKey, tuple[str, ...]] = MappingProxyType({}),
    generation: int = 0,
    serial: int = 1,
) -> Snapshot:
    """Build the snapshot. Pure: the same input gives an equal snapshot.

    ``vips`` are the mirror Services' ClusterIPs (``isthmus.dns.mirror_vips``): they win
    over the status, which repeats them later (and may lag behind a re-created Service).
    They fill in only names the GlobalService already has; they never add a cluster.
    Bad objects are rejected one by one (``Snapshot.rejected`` says why); a name claimed by
    two GlobalServices goes to the first in (namespace, name) order, deterministically.
    """
    relative: dict[Labels, NameData] = {}
    mcs: dict[Labels, NameData] = {
        clusterset.owner(McsName("version")): NameData(txt=(clusterset.SCHEMA_VERSION,),
                                                       ttl=config.ttl, source="schema")}
    rejected: list[str] = []
    ordered = sorted(services, key=lambda s: (s.metadata.namespace or "", s.metadata.name))
    try:
        pods = pod_table(ordered, vips)
    except ValueError as exc:  # mirror_vips parsed them: only a caller's bad table
        rejected.append(f"bad per-pod VIP: {exc}")
        pods = {}
    for svc in ordered:
        ns, name = svc.metadata.namespace or "", svc.metadata.name
        source = f"{ns}/{name}"
        ttl = config.stale_ttl if svc.status.stale else config.ttl
        try:
            merged = _split_ips(vips.get((ns, name, "", "")) or svc.status.vips)
            pinned = {cv.cluster: _split_ips(cv.vips) for cv in svc.status.cluster_vips}
        except ValueError as exc:
            rejected.append(f"{source}: bad VIP: {exc}")
            continue
        for ep in svc.spec.endpoints:
            pinned.setdefault(ep.cluster, ((), ()))
        for cluster in pinned:
            own = vips.get((ns, name, cluster, ""))
            if own:  # checked IPs (mirror_vips parsed them)
                pinned[cluster] = _split_ips(own)
        bases = {b for b in map(_relative_host, svc.spec.hosts) if b is not None}
        for host in svc.spec.hosts:
            base = _relative_host(host)
            if base is None and _pinned_host(host, bases, pinned):
                continue  # <svc>.<ns>.<cluster>.global: served below, from clusterVips
            if base is None:
                rejected.append(f"{source}: host {host!r} is not <svc>.<ns>.{HOST_SUFFIX}")
                continue
            if base in relative:
                rejected.append(f"{source}: {text_of(base)} already served from "
                                f"{relative[base].source}")
                continue
            headless = pods_of(pods, ns, name) if base == (name.encode(), ns.encode()) else []
            if headless:  # as a headless Service's name: every pod's address
                merged = (tuple(a for _, p in headless for a in p.v4),
                          tuple(a for _, p in headless for a in p.v6))
            relative[base] = NameData(a=merged[0], aaaa=merged[1], ttl=ttl, source=source)
            svc_name, ns_name = (label.decode() for label in base)
            mcs_base = clusterset.owner(McsName("service", svc_name, ns_name))
            mcs[mcs_base] = relative[base]
            for cluster, pinned_ips in sorted(pinned.items()):
                own_pods = [p for key, p in headless if key[2] == cluster]
                # that cluster's pods, as the merged name gives every pod
                v4, v6 = ((tuple(a for p in own_pods for a in p.v4),
                           tuple(a for p in own_pods for a in p.v6)) if own_pods else pinned_ips)
                relative[(*base, cluster.encode())] = NameData(v4, v6, ttl=ttl, source=source)
            for key, addrs in headless:
                pod_data = NameData(addrs.v4, addrs.v6, ttl=ttl, source=source)
                relative[global_pod_name(key)] = pod_data
                mcs[clusterset_pod_name(key)] = pod_data
            for port in svc.spec.ports:
                if port.name:  # an unnamed port has no SRV name
                    owner = (b"_" + port.name.encode(), b"_tcp", *base)
                    records = tuple(Srv(0, 100, port.port, global_pod_name(key))
                                    for key, _ in headless) or (Srv(0, 100, port.port, base),)
                    relative[owner] = NameData(srv=records, ttl=ttl, source=source)
                    mcs_owner = clusterset.owner(McsName("srv", svc_name, ns_name,
                                                         port=port.name))
                    mcs_records = tuple(Srv(0, 100, port.port, clusterset_pod_name(key))
                                        for key, _ in headless)
                    mcs[mcs_owner] = NameData(
                        srv=mcs_records or (Srv(0, 100, port.port, mcs_base),), ttl=ttl,
                        source=source)

    zones: list[Zone] = []
    names: dict[Labels, NameData] = {}
    nonterminals: set[Labels] = set()
    served_zones: dict[str, dict[Labels, NameData]] = {
        z: relative for z in dict.fromkeys(config.zones)}  # keeps order, drops repeats
    if config.clusterset_zone:
        served_zones[config.clusterset_zone] = mcs  # its own names, even if listed above
    for zone_name, zone_names in served_zones.items():
        origin = labels_of(zone_name)
        hostmaster = labels_of(config.hostmaster) if config.hostmaster else (b"hostmaster", *origin)
        zones.append(
            Zone(origin, serial, config.ttl, config.negative_ttl, labels_of(config.ns_name),
                 hostmaster)
        )
        for rel, data in zone_names.items():
            served = data
            if data.srv:  # SRV targets are absolute, in the zone being served
                served = NameData(
                    srv=tuple(Srv(s.priority, s.weight, s.port, s.target + origin)
                              for s in data.srv),
                    ttl=data.ttl, source=data.source,
                )
            names[rel + origin] = served
            for cut in range(1, len(rel)):
                nonterminals.add(rel[cut:] + origin)
    zones.sort(key=lambda z: len(z.origin), reverse=True)
    return Snapshot(
        generation=generation,
        zones=tuple(zones),
        names=MappingProxyType(names),
        nonterminals=frozenset(n for n in nonterminals if n not in names),
        rejected=tuple(rejected),
        services=len(ordered),
    )


Listener = Callable[[Snapshot], None]


@dataclass
class SnapshotHolder:
    """Holds the current snapshot; ``update`` builds and swaps, listeners hear at once.

    Single-threaded by design (the asyncio loop): a swap is one reference assignment, so a
    query sees either the old snapshot with the old cache or the new one with a new cache.
    """

    config: SnapshotConfig = field(default_factory=SnapshotConfig)
    current: Snapshot = field(init=False)
    _listeners: list[Listener] = field(default_factory=list, init=False)
    _serial: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.current = build_snapshot((), self.config, generation=0, serial=self._next_serial())

    def _next_serial(self) -> int:
        # Seconds since the epoch, but never going backwards within one process.
        self._serial = max(self._serial + 1, int(time.time()) & 0xFFFFFFFF)
        return self._serial

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)
        listener(self.current)

    def update(self, services: Iterable[GlobalService],
               vips: Mapping[VipKey, tuple[str, ...]] = MappingProxyType({})) -> Snapshot:
        snapshot = build_snapshot(
            services, self.config, vips=vips, generation=self.current.generation + 1,
            serial=self._next_serial(),
        )
        self.swap(snapshot)
        return snapshot

    def swap(self, snapshot: Snapshot) -> None:
        self.current = snapshot
        for listener in self._listeners:
            listener(snapshot)
