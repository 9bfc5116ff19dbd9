"""Prometheus metrics and the access log: per peer cluster and per service.

All series live in one ``CollectorRegistry`` per ``Metrics`` (tests make their own).
Counted once per connection or stream, never per chunk, so they cost nothing on the
byte path. Every refusal has a ``reason`` label, the same word as in the log line.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from isthmus.gateway.tunnel import StreamStats
from isthmus.logging import get_logger

M = TypeVar("M", bound=MetricWrapperBase)

CONNECT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.connections = Counter(
            "isthmus_gateway_connections", "Streams relayed, by direction, peer cluster, "
            "service and result.", ["direction", "peer_cluster", "service", "result"], registry=r)
        self.active = Gauge("isthmus_gateway_active_connections",
                            "Open client/backend connections.", ["direction"], registry=r)
        self.bytes = Counter(
            "isthmus_gateway_bytes", "Bytes relayed (sent = towards the peer gateway).",
            ["direction", "peer_cluster", "service", "way"], registry=r)
        self.handshake_failures = Counter(
            "isthmus_gateway_handshake_failures", "TLS handshakes or peer checks that failed.",
            ["direction", "peer_cluster", "reason"], registry=r)
        self.refusals = Counter(
            "isthmus_gateway_refusals", "Inbound streams refused before any dial.",
            ["peer_cluster", "service", "reason"], registry=r)
        self.connect_latency = Histogram(
            "isthmus_gateway_connect_seconds", "Time to a connected upstream (outbound: "
            "peer gateway stream open; inbound: backend TCP connect).",
            ["direction", "peer_cluster"], buckets=CONNECT_BUCKETS, registry=r)
        self.upstream_failures = Counter(
            "isthmus_gateway_upstream_failures", "Upstream attempts that failed.",
            ["direction", "peer_cluster", "reason"], registry=r)
        self.no_healthy_upstream = Counter(
            "isthmus_gateway_no_healthy_upstream", "Client connections closed because no "
            "exporting cluster was usable.", ["service"], registry=r)
        self.ejections = Counter("isthmus_gateway_ejections", "Peer gateways ejected.",
                                 ["peer_cluster"], registry=r)
        self.readmissions = Counter("isthmus_gateway_readmissions",
                                    "Ejected peer gateways probed back in.", ["peer_cluster"],
                                    registry=r)
        self.tunnels = Gauge("isthmus_gateway_tunnels", "Open tunnels to peer gateways "
                             "(outbound, idle + busy).", ["peer_cluster"], registry=r)
        self.snapshot_version = Gauge("isthmus_gateway_snapshot_version",
                                      "Version of the routing snapshot in use.", registry=r)
        self.backend_refusals = Counter(
            "isthmus_gateway_backend_refusals", "Backend addresses from routing data that "
            "were not dialled (loopback, link-local, the gateway itself, the API server...).",
            ["reason"], registry=r)
        self.skipped_slices = Gauge(
            "isthmus_gateway_skipped_endpointslices", "EndpointSlices whose endpoints are "
            "never dialled (addressType FQDN or unknown).", registry=r)
        self.revoked_streams = Counter(
            "isthmus_gateway_revoked_streams", "Open streams closed because the peer lost "
            "the right to them (Link removed, root removed, certificate expired, unexported, "
            "export-to narrowed).", ["direction", "peer_cluster", "reason"], registry=r)
        self.revoked_tunnels = Counter(
            "isthmus_gateway_revoked_tunnels", "Idle tunnels closed because their peer "
            "would now be refused.", ["direction", "peer_cluster", "reason"], registry=r)
        self.limit_rejections = Counter("isthmus_gateway_limit_rejections",
                                        "Connections closed at the connection limit.",
                                        ["direction"], registry=r)
        # labelled series already looked up: labels() costs microseconds (a lock, a dict,
        # validation) and every stream needs several
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: M, *values: str) -> M:
        """``metric.labels(*values)``, looked up once per label set."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found


class AccessLog:
    """One structured line per connection (stream)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._log: Any = get_logger("isthmus.gateway.access")

    def write(self, direction: str, stats: StreamStats, now: float) -> None:
        if not self.enabled:
            return
        outbound = direction == "outbound"
        sent = stats.bytes_to_tunnel if outbound else stats.bytes_from_tunnel
        received = stats.bytes_from_tunnel if outbound else stats.bytes_to_tunnel
        self._log.info(
            "connection",
            direction=direction,
            source=stats.source,
            target=stats.target,
            peer_cluster=stats.peer_cluster,
            upstream=stats.upstream,
            bytes_sent=sent,
            bytes_received=received,
            duration_ms=round((now - stats.started) * 1000, 3),
            result=stats.result,
            reason=stats.reason or None,
        )


def record_stream(m: Metrics, direction: str, stats: StreamStats) -> None:
    service = stats.service or "-"
    peer = stats.peer_cluster or "-"
    m.child(m.connections, direction, peer, service, stats.result or "ok").inc()
    if stats.bytes_to_tunnel:
        m.child(m.bytes, direction, peer, service, "sent").inc(stats.bytes_to_tunnel)
    if stats.bytes_from_tunnel:
        m.child(m.bytes, direction, peer, service, "received").inc(stats.bytes_from_tunnel)
