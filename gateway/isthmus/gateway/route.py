"""Pure routing decisions: nothing here does I/O, so every rule is a table test.

Inbound: ``route_inbound(snapshot, caller, raw_target, catalog_identity)`` normalizes the
target once and authorizes and routes with that one name; it returns ``Dial`` (ready
backends, in order of preference) or ``Refused`` (a status for the caller and a reason
for logs and metrics). Nothing is dialled unless it returns ``Dial``, and a ``Dial`` holds
only addresses the ``BackendPolicy`` allows (backend_policy.py); the others are listed
in ``refused_backends`` for the log. When every ready address is refused the caller gets
``UNKNOWN_TARGET``, as for any target it cannot reach, and never learns the address. A pod
target (``<pod>.<svc>.<ns>:<port>``) is dialled only at the current address of the named
ready pod of a headless export (``not_headless``, ``not_a_ready_pod`` otherwise).

Outbound: ``order_peers(route, ejected, locality, draw)`` orders the exporting clusters of
an outbound route: healthy (not ejected, not marked Unhealthy) first, then same zone,
same region, then a weighted random order (``draw`` is the random source, injected).
Ejected peers are left out; an empty answer is "no healthy upstream".
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from dataclasses import dataclass

from isthmus.gateway.backend_policy import BackendPolicy, backend_refusal
from isthmus.gateway.snapshot import OutboundRoute, PeerEndpoint, Snapshot
from isthmus.gateway.wire import BadTarget, Status, Target, normalize_target
from isthmus.labels import MIRROR_SERVICE_ACCOUNT, SYSTEM_NAMESPACE
from isthmus.trust import IsthmusIdentity

RefusedBackend = tuple[str, int, str]  # address, port, reason (for the log only)

_STRICT = BackendPolicy()


@dataclass(frozen=True)
class Dial:
    target: Target
    service: str  # "<name>.<namespace>" or "catalog", for metrics
    addresses: tuple[tuple[str, int], ...]
    refused_backends: tuple[RefusedBackend, ...] = ()


@dataclass(frozen=True)
class Refused:
    status: Status
    reason: str  # metric label / log field
    target: str = ""  # the normalized target when there was one
    refused_backends: tuple[RefusedBackend, ...] = ()


def _service_label(t: Target) -> str:
    return "catalog" if t.is_catalog else f"{t.service}.{t.namespace}"


def route_inbound(
    snapshot: Snapshot,
    caller: IsthmusIdentity,
    raw_target: bytes,
    *,
    rotate: int = 0,
    policy: BackendPolicy = _STRICT,
    verdicts: dict[tuple[str, int], str | None] | None = None,
) -> Dial | Refused:
    """Authorize ``caller`` for ``raw_target`` and pick where to dial (see module doc).

    ``verdicts``: the caller's memo of ``backend_refusal`` for this one ``snapshot`` and
    ``policy`` (judging an address parses it: tens of microseconds on every OPEN); the
    caller starts a new one whenever either changes."""
    target = normalize_target(raw_target)
    if isinstance(target, BadTarget):
        return Refused(Status.MALFORMED, f"target_{target.reason}")
    name = str(target)
    link = snapshot.links.get(caller.cluster)
    if link is None:
        return Refused(Status.UNLINKED, "cluster_not_linked", name)
    if link.trust_domain != caller.trust_domain:
        return Refused(Status.UNLINKED, "trust_domain_mismatch", name)
    if target.is_catalog:
        if (caller.namespace, caller.service_account) != (
            SYSTEM_NAMESPACE,
            MIRROR_SERVICE_ACCOUNT,
        ):
            return Refused(Status.FORBIDDEN, "catalog_not_mirror", name)
        if snapshot.catalog_address is None:
            return Refused(Status.NO_BACKEND, "no_catalog", name)
        return Dial(target, "catalog", (snapshot.catalog_address,))
    export = snapshot.exports.get((target.namespace, target.service))
    if export is None:
        known = (target.namespace, target.service) in snapshot.known_services
        return Refused(Status.UNKNOWN_TARGET, "not_exported" if known else "unknown_service", name)
    if not export.has_port(target.port):
        return Refused(Status.UNKNOWN_TARGET, "unknown_port", name)
    if not export.allows(caller.cluster):
        return Refused(Status.FORBIDDEN, "export_to_excludes_caller", name)
    if target.pod:
        # one exact pod: a named, ready pod of a headless export, or nothing
        if not export.headless:
            return Refused(Status.UNKNOWN_TARGET, "not_headless", name)
        pod = export.pods.find(target.pod)
        if pod is None or target.port not in pod.ports:
            return Refused(Status.UNKNOWN_TARGET, "not_a_ready_pod", name)
        candidates = [(pod.address, pod.ports[target.port])]
    else:
        candidates = [
            (b.address, b.ports[target.port]) for b in export.backends if target.port in b.ports
        ]
    if not candidates:
        return Refused(Status.NO_BACKEND, "no_ready_backend", name)
    allowed: list[tuple[str, int]] = []
    refused: list[RefusedBackend] = []
    listening = snapshot.outbound.keys()
    for host, port in candidates:
        if verdicts is not None and (host, port) in verdicts:
            why = verdicts[host, port]
        else:
            why = backend_refusal(policy, host, port, api_server=snapshot.api_server,
                                  listening=listening)
            if verdicts is not None:
                verdicts[host, port] = why
        if why is None:
            allowed.append((host, port))
        else:
            refused.append((host, port, why))
    if not allowed:
        return Refused(Status.UNKNOWN_TARGET, "backend_refused", name, tuple(refused))
    addresses = tuple(allowed)
    k = rotate % len(addresses)
    return Dial(target, _service_label(target), addresses[k:] + addresses[:k], tuple(refused))


def order_peers(
    route: OutboundRoute,
    ejected: Collection[tuple[str, str, int]],
    locality: tuple[str, str],
    draw: Callable[[], float] = random.random,
) -> tuple[PeerEndpoint, ...]:
    """Healthy first, then locality (zone, then region), then weighted random."""
    region, zone = locality

    def rank(p: PeerEndpoint) -> tuple[int, int, float]:
        near = 0 if (zone and p.zone == zone and p.region == region) else (
            1 if region and p.region == region else 2
        )
        # Weighted random order (Efraimidis-Spirakis): larger key first.
        w = max(p.weight, 0)
        key = draw() ** (1.0 / w) if w > 0 else -1.0
        return (0 if p.healthy else 1, near, -key)

    usable = [p for p in route.endpoints if p.key not in ejected and p.weight > 0]
    return tuple(sorted(usable, key=rank))
