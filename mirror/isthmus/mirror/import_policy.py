"""Pure: which of a peer's catalog entries this cluster imports (docs/mirror-import-policy.md).

A Link lets a peer's catalog drive writes here, so each entry is admitted by rules the peer
cannot change:

- namespaces: never ``kube-system``, ``kube-public``, ``kube-node-lease`` or the install
  namespace; never a namespace the operator denies; when the Link or the cluster lists
  allowed namespaces, only those (both lists, when both are given);
- limits per peer: ports per service, services per Link, and the peer's share of the
  outbound port range (each entry needs two outbound ports per service port: the merged and
  the pinned listener).

The limits take entries in (namespace, name) order, so the same catalog always gives the same
imports, whatever order it arrived in. Whether a namespace exists is decided later
(``desired``): it can change without the catalog changing.

``PeerAdmission`` keeps one peer's admitted entries up to date as its catalog changes; while
the peer is within its limits a change costs only the entries it touches, and the result is
always the one ``admit`` gives for the whole catalog.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from isthmus.mirror.model import CatalogEntry, ServiceKey
from isthmus.mirror.settings import MirrorSettings

PROTECTED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})

# Refusal reasons (also the Link conditions' reasons and the metric's label).
PROTECTED = "ProtectedNamespace"
DENIED = "DeniedNamespace"
NOT_ALLOWED = "NamespaceNotAllowed"
TOO_MANY_PORTS = "TooManyPorts"
TOO_MANY_PODS = "TooManyPods"
TOO_MANY_SERVICES = "TooManyServices"
PORT_SHARE = "PortShareExceeded"
NAMESPACE_REASONS = (PROTECTED, DENIED, NOT_ALLOWED)
LIMIT_REASONS = (TOO_MANY_PORTS, TOO_MANY_PODS, TOO_MANY_SERVICES, PORT_SHARE)


@dataclass(frozen=True)
class ImportPolicy:
    """The operator's rules, the same for every peer (the Link adds its own allow-list)."""

    install_namespace: str
    denied_namespaces: frozenset[str] = frozenset()
    allowed_namespaces: frozenset[str] | None = None  # None: any namespace not refused
    max_services: int = 20_000
    max_ports_per_service: int = 64
    port_budget: int = 5_000  # outbound ports one peer may hold
    max_pods_per_service: int = 256  # named pods of one headless import

    @classmethod
    def from_settings(cls, settings: MirrorSettings) -> ImportPolicy:
        return cls(
            install_namespace=settings.namespace,
            denied_namespaces=settings.denied,
            allowed_namespaces=settings.allowed,
            max_services=settings.max_services_per_link,
            max_ports_per_service=settings.max_ports_per_service,
            port_budget=settings.peer_port_budget,
            max_pods_per_service=settings.max_pods_per_service,
        )

    @functools.cached_property
    def protected(self) -> frozenset[str]:
        return PROTECTED_NAMESPACES | {self.install_namespace}


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


def namespace_refusal(policy: ImportPolicy, namespace: str,
                      link_allowed: Collection[str] | None) -> Refusal | None:
    """Why nothing may be imported into ``namespace`` from a Link (None: it may)."""
    if namespace in policy.protected:
        return Refusal(PROTECTED, f"namespace {namespace} is protected")
    if namespace in policy.denied_namespaces:
        return Refusal(DENIED, f"namespace {namespace} is denied by the operator")
    if policy.allowed_namespaces is not None and namespace not in policy.allowed_namespaces:
        return Refusal(NOT_ALLOWED, f"namespace {namespace} is not in the cluster's allowed "
                       "namespaces")
    if link_allowed is not None and namespace not in link_allowed:
        return Refusal(NOT_ALLOWED, f"namespace {namespace} is not in the Link's "
                       "allowedNamespaces")
    return None


def same_content(a: CatalogEntry | None, b: CatalogEntry | None) -> bool:
    """Equal as far as the mirrored objects go: ports, readiness, weight, export age and
    named pods (not the version or change time, which a snapshot after a restart always
    brings anew)."""
    if a is None or b is None:
        return a is b
    return ((a.ports, a.ready_endpoints, a.weight, a.exported_at_ms, a.headless, a.pods)
            == (b.ports, b.ready_endpoints, b.weight, b.exported_at_ms, b.headless, b.pods))


def demand(entry: CatalogEntry) -> int:
    """Outbound ports an entry takes: a merged and a pinned listener per service port, and
    one per named pod and service port."""
    return (2 + len(entry.pods)) * len(entry.ports)


def entry_refusal(policy: ImportPolicy, entry: CatalogEntry,
                  link_allowed: Collection[str] | None) -> Refusal | None:
    """What refuses ``entry`` on its own (namespace, ports), None if nothing does."""
    refusal = namespace_refusal(policy, entry.namespace, link_allowed)
    if refusal is not None:
        return refusal
    if len(entry.ports) > policy.max_ports_per_service:
        return Refusal(TOO_MANY_PORTS, f"{entry.namespace}/{entry.name} has "
                       f"{len(entry.ports)} ports, the limit is {policy.max_ports_per_service}")
    if len(entry.pods) > policy.max_pods_per_service:
        return Refusal(TOO_MANY_PODS, f"{entry.namespace}/{entry.name} has {len(entry.pods)} "
                       f"named pods, the limit is {policy.max_pods_per_service}")
    return None


@dataclass(frozen=True)
class Admission:
    entries: dict[ServiceKey, CatalogEntry]
    refused: dict[ServiceKey, Refusal]


def admit(offered: Mapping[ServiceKey, CatalogEntry], policy: ImportPolicy,
          link_allowed: Collection[str] | None) -> Admission:
    """The entries of one peer's catalog that may be imported, and why the rest may not."""
    entries: dict[ServiceKey, CatalogEntry] = {}
    refused: dict[ServiceKey, Refusal] = {}
    ports = 0
    for key in sorted(offered):
        entry = offered[key]
        refusal = entry_refusal(policy, entry, link_allowed)
        if refusal is None and len(entries) >= policy.max_services:
            refusal = Refusal(TOO_MANY_SERVICES, f"the peer exports more than "
                              f"{policy.max_services} services")
        if refusal is None and ports + demand(entry) > policy.port_budget:
            refusal = Refusal(PORT_SHARE, f"{key[0]}/{key[1]} would take the peer past its "
                              f"{policy.port_budget} outbound ports")
        if refusal is None:
            entries[key] = entry
            ports += demand(entry)
        else:
            refused[key] = refusal
    return Admission(entries, refused)


@dataclass
class PeerAdmission:
    """One peer's catalog as offered, and the part of it that is admitted (``entries``)."""

    policy: ImportPolicy
    link_allowed: Collection[str] | None = None
    offered: dict[ServiceKey, CatalogEntry] = field(default_factory=dict)
    entries: dict[ServiceKey, CatalogEntry] = field(default_factory=dict)
    refused: dict[ServiceKey, Refusal] = field(default_factory=dict)
    _ports: int = 0
    _over: int = 0  # refusals by an aggregate limit (services, port share)

    def replace(self, offered: Mapping[ServiceKey, CatalogEntry]) -> set[ServiceKey]:
        """A whole new catalog; the keys whose admitted entry changed."""
        self.offered = dict(offered)
        return self._recompute()

    def reconfigure(self, policy: ImportPolicy,
                    link_allowed: Collection[str] | None) -> set[ServiceKey]:
        if policy == self.policy and link_allowed == self.link_allowed:
            return set()
        self.policy, self.link_allowed = policy, link_allowed
        return self._recompute()

    def update(self, upserts: Iterable[CatalogEntry],
               removed: Iterable[ServiceKey]) -> set[ServiceKey]:
        """A delta; the keys whose admitted entry changed."""
        changed: dict[ServiceKey, CatalogEntry | None] = {}
        for entry in upserts:
            changed[entry.key] = entry
        for key in removed:
            changed[key] = None
        for key, new in changed.items():
            if new is None:
                self.offered.pop(key, None)
            else:
                self.offered[key] = new
        if self._over:
            return self._recompute()
        # Within the limits every entry that passes its own checks is admitted, as ``admit``
        # would; a change that would cross a limit is decided by ``admit`` itself.
        ports, count = self._ports, len(self.entries)
        plan: dict[ServiceKey, tuple[CatalogEntry | None, Refusal | None]] = {}
        for key, new in changed.items():
            old = self.entries.get(key)
            if old is not None:
                ports -= demand(old)
                count -= 1
            refusal = None if new is None else entry_refusal(self.policy, new,
                                                             self.link_allowed)
            if new is not None and refusal is None:
                ports += demand(new)
                count += 1
            plan[key] = (new if refusal is None else None, refusal)
        if ports > self.policy.port_budget or count > self.policy.max_services:
            return self._recompute()
        out: set[ServiceKey] = set()
        for key, (new, refusal) in plan.items():
            if not same_content(self.entries.get(key), new):
                out.add(key)
            if new is None:
                self.entries.pop(key, None)
            else:
                self.entries[key] = new
            if refusal is None:
                self.refused.pop(key, None)
            else:
                self.refused[key] = refusal
        self._ports = ports
        return out

    def clear(self) -> set[ServiceKey]:
        """Forget the catalog (a peer past its stale grace period)."""
        return self.replace({})

    def _recompute(self) -> set[ServiceKey]:
        result = admit(self.offered, self.policy, self.link_allowed)
        changed = {k for k in set(self.entries) | set(result.entries)
                   if not same_content(self.entries.get(k), result.entries.get(k))}
        # the same dict object stays: callers hold it (PeerView)
        self.entries.clear()
        self.entries.update(result.entries)
        self.refused = result.refused
        self._ports = sum(demand(e) for e in self.entries.values())
        self._over = sum(1 for r in self.refused.values()
                         if r.reason in (TOO_MANY_SERVICES, PORT_SHARE))
        return changed
