"""Pydantic models of the isthmus custom resources (group ``isthmus.io``, ``v1alpha1``).

These mirror the OpenAPI schemas in manifests/crds/ field for field: the API server enforces
the schema on writes, and these models validate what we read back, once, at the boundary.
Field names are snake_case in Python and camelCase on the wire (``by_alias=True`` to dump).

- ``Link`` (cluster-scoped): one per peer cluster this cluster imports from.
- ``GlobalService`` (namespaced): the ServiceEntry-shaped mirror of ``<svc>.<ns>.global``,
  one endpoint per exporting cluster.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from isthmus.wellknown import (
    API_GROUP,
    API_VERSION,
    API_VERSION_NAME,
    GATEWAY_PORT,
    TrustDomain,
)

GROUP = API_GROUP
VERSION = API_VERSION_NAME

# RFC 1123 label, as Kubernetes uses for names of clusters, namespaces and services.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Wire(BaseModel):
    """camelCase on the wire, unknown fields kept out, values immutable once read."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(_Wire):
    name: str
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(_Wire):
    """The standard Kubernetes condition shape (metav1.Condition)."""

    type: str
    status: ConditionStatus
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime
    observed_generation: int | None = None


class Locality(_Wire):
    region: str = ""
    zone: str = ""


class GatewayAddress(_Wire):
    """Where a peer's east-west gateway listens: a host name or IP, and the inbound port."""

    host: str = Field(min_length=1, max_length=253)
    port: Port = GATEWAY_PORT


# --- Link -----------------------------------------------------------------------------------


class LinkSpec(_Wire):
    cluster: DnsLabel
    trust_domain: TrustDomain
    gateway_addresses: list[GatewayAddress] = Field(min_length=1)
    locality: Locality = Field(default_factory=Locality)
    # Namespaces this peer's services may be imported into (None: any the cluster allows).
    allowed_namespaces: list[DnsLabel] | None = Field(default=None, max_length=256)


class LinkStatus(_Wire):
    conditions: list[Condition] = Field(default_factory=list)
    last_sync_time: datetime | None = None
    imported_services: int | None = None
    catalog_version: int | None = None


class Link(_Wire):
    api_version: Literal["isthmus.io/v1alpha1"] = API_VERSION
    kind: Literal["Link"] = "Link"
    metadata: ObjectMeta
    spec: LinkSpec
    status: LinkStatus = Field(default_factory=LinkStatus)


# --- GlobalService ----------------------------------------------------------------------------


class Health(StrEnum):
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    UNKNOWN = "Unknown"


class ServicePort(_Wire):
    """One port of the global service; ``outbound_port`` is the local gateway listener the
    mirror allocated for it (stable across restarts)."""

    name: str = Field(default="", pattern=r"^([a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?)?$")
    port: Port
    protocol: Literal["TCP"] = "TCP"
    app_protocol: str | None = None
    outbound_port: Port | None = None


class PinnedPort(_Wire):
    """A service port's outbound listener that reaches one cluster only."""

    port: Port
    outbound_port: Port


class PodPorts(_Wire):
    """A named pod of a headless export: its outbound listeners, per service port."""

    hostname: DnsLabel
    ports: list[PinnedPort] = Field(default_factory=list)


class ClusterEndpoint(_Wire):
    """One exporting cluster, reached through its gateway."""

    cluster: DnsLabel
    address: str = Field(min_length=1, max_length=253)
    port: Port = GATEWAY_PORT
    locality: Locality = Field(default_factory=Locality)
    weight: int = Field(default=100, ge=0, le=10000)
    health: Health = Health.UNKNOWN
    ready_endpoints: int | None = Field(default=None, ge=0)
    exported_at_ms: int | None = Field(default=None, ge=0)
    pinned_ports: list[PinnedPort] = Field(default_factory=list)
    pods: list[PodPorts] = Field(default_factory=list)


class GlobalServiceSpec(_Wire):
    hosts: list[str] = Field(min_length=1)
    ports: list[ServicePort] = Field(min_length=1)
    endpoints: list[ClusterEndpoint] = Field(default_factory=list)


class ClusterVips(_Wire):
    """The VIPs of the pinned mirror for ``<svc>.<ns>.<cluster>.global``."""

    cluster: DnsLabel
    vips: list[str] = Field(default_factory=list)


def _check_ips(values: list[str]) -> list[str]:
    for v in values:
        ipaddress.ip_address(v)
    return values


class GlobalServiceStatus(_Wire):
    vips: list[str] = Field(default_factory=list)
    cluster_vips: list[ClusterVips] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    synced_from: str = Field(default="", max_length=128)

    _ips = field_validator("vips")(_check_ips)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def stale(self) -> bool:
        cond = self.condition("Stale")
        return cond is not None and cond.status is ConditionStatus.TRUE


class GlobalService(_Wire):
    api_version: Literal["isthmus.io/v1alpha1"] = API_VERSION
    kind: Literal["GlobalService"] = "GlobalService"
    metadata: ObjectMeta
    spec: GlobalServiceSpec
    status: GlobalServiceStatus = Field(default_factory=GlobalServiceStatus)
