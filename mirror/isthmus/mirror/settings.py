"""Settings of the mirror controller (env ``ISTHMUS_MIRROR_<FIELD>`` or ``--<field>``)."""

from __future__ import annotations

import re
from typing import Literal

import pydantic
from pydantic_settings import SettingsConfigDict

from isthmus.labels import MIRROR_LEASE, SYSTEM_NAMESPACE
from isthmus.settings import ComponentSettings
from isthmus.wellknown import CATALOG_PORT

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class MirrorSettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="ISTHMUS_MIRROR_", extra="forbid", frozen=True)

    kubeconfig: str | None = pydantic.Field(
        default=None, description="Kubeconfig file (default: in-cluster, or $KUBECONFIG).")
    context: str | None = pydantic.Field(default=None, description="Kubeconfig context.")
    namespace: str = pydantic.Field(
        default=SYSTEM_NAMESPACE, description="Namespace of the CA Secret, bundle and Lease.")
    catalog_host: str = pydantic.Field(
        default="0.0.0.0", description="Address the gRPC catalog server binds.")  # noqa: S104
    catalog_port: int = pydantic.Field(
        default=CATALOG_PORT, ge=0, le=65535,
        description="Port of the gRPC catalog server (0: any).")
    catalog_via: Literal["gateway", "direct"] = pydantic.Field(
        default="gateway",
        description="Reach peers' catalogs through their gateway (production), or dial the "
        "Link's address directly with mTLS (tests, or a catalog exposed on its own).")
    metrics_host: str = pydantic.Field(
        default="0.0.0.0", description="Address of /metrics, /healthz, /readyz.")  # noqa: S104
    metrics_port: int = pydantic.Field(
        default=9464, ge=-1, le=65535, description="Metrics port (0: any, -1: off).")
    identity: str | None = pydantic.Field(
        default=None, description="Lease holder identity (default: $HOSTNAME).")
    pod_ip: str | None = pydantic.Field(
        default=None,
        description="This pod's IP: the leader points the selector-less catalog Service "
        "(isthmus-mirror) at it. Unset: no catalog Service endpoint is written.")
    leader_election: bool = pydantic.Field(
        default=True, description="Take a Lease before writing (two replicas are safe).")
    lease_name: str = pydantic.Field(
        default=MIRROR_LEASE, description="Lease name (install creates it; RBAC names it).")
    lease_seconds: float = pydantic.Field(default=15.0, gt=0, description="Lease duration.")
    lease_renew_seconds: float = pydantic.Field(default=5.0, gt=0, description="Renew period.")
    stale_grace_seconds: float = pydantic.Field(
        default=3600.0, gt=0,
        description="How long mirrors of an unreachable peer are kept (Stale) before removal.")
    resync_seconds: float = pydantic.Field(
        default=300.0, gt=0, description="Period of the full resync / orphan GC.")
    heartbeat_seconds: float = pydantic.Field(
        default=10.0, gt=0, description="Catalog heartbeat period when nothing changes.")
    idle_timeout_seconds: float = pydantic.Field(
        default=35.0, gt=0, description="A peer stream silent this long is considered down.")
    reconnect_max_seconds: float = pydantic.Field(
        default=10.0, gt=0, description="Longest wait between catalog reconnects.")
    port_range: str = pydantic.Field(
        default="20000-29999", pattern=r"^\d+-\d+$",
        description="Local gateway outbound ports the mirror allocates from.")
    concurrency: int = pydantic.Field(
        default=64, ge=1, description="Services reconciled in parallel.")
    api_in_flight: int = pydantic.Field(
        default=16, ge=1,
        description="API requests in flight at once (watches not counted); each holds a "
                    "TLS connection and its buffers.")
    write_attempts: int = pydantic.Field(
        default=5, ge=1, description="Attempts per API write (409/429/5xx/transport).")
    requeue_limit: int = pydantic.Field(
        default=3, ge=0, description="Times a service is requeued after its writes failed.")
    catalog_history: int = pydantic.Field(
        default=100_000, ge=1, description="Changes kept for catalog resume.")
    watch_timeout_seconds: int = pydantic.Field(
        default=300, ge=1, description="Longest single WATCH request.")
    leaf_hours: float = pydantic.Field(default=24.0, gt=0, description="Leaf lifetime.")
    denied_namespaces: str = pydantic.Field(
        default="", description="Comma-separated namespaces nothing is imported into (besides "
        "kube-system, kube-public, kube-node-lease and the install namespace, always refused).")
    allowed_namespaces: str = pydantic.Field(
        default="", description="Comma-separated namespaces imports are limited to, for every "
        "Link (empty: any namespace not refused); a Link may narrow it further.")
    max_services_per_link: int = pydantic.Field(
        default=20_000, ge=0, description="Services imported from one peer at most; the rest "
        "(in namespace/name order) are refused.")
    max_ports_per_service: int = pydantic.Field(
        default=64, ge=1, le=64, description="Ports of one imported service at most (64 is "
        "the GlobalService's own limit).")
    max_pods_per_service: int = pydantic.Field(
        default=256, ge=0, le=1024, description="Named pods of one headless Service at most: an "
        "export names the first ones in hostname order, an import with more is refused.")
    peer_port_share: float = pydantic.Field(
        default=0.5, gt=0, le=1, description="Share of the outbound port range one peer's "
        "imports may hold (each service port takes two: merged and pinned).")

    @pydantic.field_validator("denied_namespaces", "allowed_namespaces")
    @classmethod
    def _namespace_list(cls, value: str) -> str:
        for name in _split(value):
            if not _DNS_LABEL.match(name):
                raise ValueError(f"{name!r} is not a namespace name")
        return value

    @property
    def denied(self) -> frozenset[str]:
        return frozenset(_split(self.denied_namespaces))

    @property
    def allowed(self) -> frozenset[str] | None:
        """None: no cluster-wide allow-list."""
        names = _split(self.allowed_namespaces)
        return frozenset(names) if names else None

    @property
    def peer_port_budget(self) -> int:
        low, high = self.ports
        return int((high - low + 1) * self.peer_port_share)

    @property
    def ports(self) -> tuple[int, int]:
        low, high = (int(x) for x in self.port_range.split("-"))
        return low, high
