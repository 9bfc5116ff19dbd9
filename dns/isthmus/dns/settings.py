"""Settings of ``isthmus dns``: flags, ``ISTHMUS_DNS_*`` variables, defaults (in that order)."""

from __future__ import annotations

from pathlib import Path

import pydantic
from pydantic_settings import SettingsConfigDict

from isthmus.dns.snapshot import SnapshotConfig, labels_of
from isthmus.settings import ComponentSettings


class DnsSettings(ComponentSettings):
    model_config = SettingsConfigDict(env_prefix="ISTHMUS_DNS_", extra="forbid", frozen=True)

    listen_address: str = pydantic.Field(
        default="0.0.0.0",  # noqa: S104 - a responder in a pod serves the pod network
        description="Address to answer on, UDP and TCP.",
    )
    port: int = pydantic.Field(
        default=5353, ge=0, le=65535,
        description="Port for UDP and TCP (the Service maps 53 to it; 0 picks a free one).",
    )
    zones: str = pydantic.Field(
        default="global.",
        description="Comma-separated zones to be authoritative for; each serves every name.",
    )
    clusterset_zone: str = pydantic.Field(
        default="clusterset.local.",
        description="The Multi-Cluster Services zone, with its own names "
                    "(<svc>.<ns>.svc.<zone>); empty: not served.",
    )
    ttl: int = pydantic.Field(default=5, ge=0, le=86400, description="TTL of answers, seconds.")
    stale_ttl: int = pydantic.Field(
        default=1, ge=0, le=86400,
        description="TTL of answers for a GlobalService marked Stale (its peer is unreachable).",
    )
    negative_ttl: int = pydantic.Field(
        default=5, ge=0, le=86400,
        description="SOA MINIMUM: how long NXDOMAIN/NODATA may be cached (RFC 2308).",
    )
    edns_udp_size: int = pydantic.Field(
        default=1232, ge=512, le=65535,
        description="Largest UDP reply to an EDNS query (also advertised in our OPT).",
    )
    tcp_idle_timeout: float = pydantic.Field(
        default=10.0, gt=0, description="Close a TCP connection idle this long, seconds."
    )
    max_tcp_connections: int = pydantic.Field(
        default=1024, ge=1, description="Open TCP connections at most; more are closed at once."
    )
    ns_name: str = pydantic.Field(
        default="isthmus-dns.isthmus-system.svc.cluster.local.",
        description="Name server in the apex NS and SOA records (outside the zone: no glue).",
    )
    metrics_port: int = pydantic.Field(
        default=0, ge=0, le=65535,
        description="Serve Prometheus /metrics on this port (same address); 0 turns it off.",
    )
    cache: bool = pydantic.Field(
        default=True, description="Precomputed-answer cache (turn off only to measure it)."
    )
    udp_batch: bool = pydantic.Field(
        default=True, description="Receive and send UDP in batches (recvmmsg/sendmmsg, Linux); "
        "off: one datagram per call through asyncio.",
    )
    static_file: Path | None = pydantic.Field(
        default=None,
        description="Serve the GlobalServices in this YAML/JSON file (local source; SIGHUP "
        "re-reads it) instead of watching a cluster.",
    )
    kubeconfig: str | None = pydantic.Field(
        default=None, description="Kubeconfig to watch GlobalServices with (default: in-cluster "
        "or $KUBECONFIG)."
    )
    context: str | None = pydantic.Field(default=None, description="Kubeconfig context.")
    namespace: str | None = pydantic.Field(
        default=None, description="Watch GlobalServices in this namespace only (default: all)."
    )

    @pydantic.field_validator("zones")
    @classmethod
    def _zones_are_names(cls, value: str) -> str:
        for zone in value.split(","):
            labels = labels_of(zone)
            if not labels or any(not 0 < len(label) < 64 for label in labels):
                raise ValueError(f"not a zone name: {zone!r}")
        return value

    @pydantic.field_validator("clusterset_zone")
    @classmethod
    def _clusterset_zone_is_a_name(cls, value: str) -> str:
        if value.strip():
            labels = labels_of(value)
            if not labels or any(not 0 < len(label) < 64 for label in labels):
                raise ValueError(f"not a zone name: {value!r}")
        return value

    def snapshot_config(self) -> SnapshotConfig:
        return SnapshotConfig(
            zones=tuple(z.strip().rstrip(".").lower() + "." for z in self.zones.split(",")),
            ttl=self.ttl, stale_ttl=self.stale_ttl, negative_ttl=self.negative_ttl,
            ns_name=self.ns_name,
            clusterset_zone=(self.clusterset_zone.strip().rstrip(".").lower() + "."
                             if self.clusterset_zone.strip() else ""),
        )
