"""The mirror's own vocabulary: what a peer exports, what a link is, as frozen values.

Wire data (catalog messages, Link objects) is converted into these once, at the boundary;
the pure decision functions (``desired``, ``plan``) only ever see these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from isthmus.api.models import Link
from isthmus.labels import DEFAULT_WEIGHT

ServiceKey = tuple[str, str]  # (namespace, name) of the exported Service
ObjRef = tuple[str, str, str]  # (kind, namespace, name) of a written object
JsonObj = dict[str, Any]


@dataclass(frozen=True, order=True, slots=True)
class PortSpec:
    port: int
    name: str = ""
    app_protocol: str = ""


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One service as a peer exports it."""

    namespace: str
    name: str
    ports: tuple[PortSpec, ...]
    ready_endpoints: int
    version: int = 0
    changed_at_ms: int = 0
    weight: int = DEFAULT_WEIGHT  # the exporter's isthmus.io/weight (0-10000)
    # A headless export: the hostnames of its named pods, sorted (never their addresses).
    headless: bool = False
    pods: tuple[str, ...] = ()
    exported_at_ms: int = 0  # when the export began (0: unknown); the oldest wins conflicts

    @property
    def key(self) -> ServiceKey:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class LinkInfo:
    """A ``Link``, reduced to what the mirror uses."""

    name: str
    uid: str
    cluster: str
    trust_domain: str
    gateway_host: str
    gateway_port: int
    region: str = ""
    zone: str = ""
    gateway_addresses: tuple[tuple[str, int], ...] = ()
    # None: any the cluster allows. Sorted, not a set: the sync digest reads its repr.
    allowed_namespaces: tuple[str, ...] | None = None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> LinkInfo:
        link = Link.model_validate(obj)
        first = link.spec.gateway_addresses[0]
        return cls(
            name=link.metadata.name,
            uid=link.metadata.uid or "",
            cluster=link.spec.cluster,
            trust_domain=link.spec.trust_domain,
            gateway_host=first.host,
            gateway_port=first.port,
            region=link.spec.locality.region,
            zone=link.spec.locality.zone,
            gateway_addresses=tuple((a.host, a.port) for a in link.spec.gateway_addresses),
            allowed_namespaces=(None if link.spec.allowed_namespaces is None
                                else tuple(sorted(set(link.spec.allowed_namespaces)))),
        )


@dataclass(frozen=True)
class PeerView:
    """What ``desired`` needs to know about one linked peer at one moment."""

    link: LinkInfo
    entries: Mapping[ServiceKey, CatalogEntry] = field(default_factory=dict)
    stale_reason: str | None = None  # None: fresh

    @property
    def cluster(self) -> str:
        return self.link.cluster
