"""Outbound: one listener per outbound port of the GlobalServices, each relaying to peers.

For each accepted client connection: read nothing yet; take the route of the listener's
port from the current snapshot; order the exporting clusters (``order_peers``: healthy,
then locality, then weight; ejected peers left out, an empty list is counted as
``no_healthy_upstream``); open a stream on a pooled tunnel to the first; on a connect or
tunnel failure (which counts towards ejection) or a refusal STATUS, try the next cluster,
all within the same client connection. When none is left the client gets a TCP reset at
once, never a hang. Then the client's reading is resumed and the relay runs.

Listeners follow the snapshot: a new outbound port opens a listener, a port that left
closes its listener (connections already open are left to finish).
"""

from __future__ import annotations

import asyncio

from isthmus.gateway.errors import TunnelError, TunnelRefused
from isthmus.gateway.health import PeerHealth
from isthmus.gateway.metrics import AccessLog, Metrics, record_stream
from isthmus.gateway.pool import PoolSet
from isthmus.gateway.route import order_peers
from isthmus.gateway.snapshot import PeerEndpoint, Snapshot
from isthmus.gateway.state import GatewayState
from isthmus.gateway.tunnel import Plain, StreamStats, Tunnel
from isthmus.gateway.wire import Status
from isthmus.logging import get_logger

# Lazy: structlog builds it on first use, after the process configured logging.
log = get_logger("isthmus.gateway.outbound")


class OutboundClient(Plain):
    """An application's connection to an outbound listener."""

    def __init__(self, server: OutboundServer, listen_port: int) -> None:
        super().__init__()
        self.server = server
        self.listen_port = listen_port
        self.task: asyncio.Task[None] | None = None
        self.stats: StreamStats | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()
        self.server.clients.add(self)
        self.task = asyncio.get_running_loop().create_task(self.server.setup(self))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.server.clients.discard(self)
        if self.task is not None and not self.task.done() and self.tunnel is None:
            self.task.cancel()


class OutboundServer:
    def __init__(
        self,
        state: GatewayState,
        pools: PoolSet,
        health: PeerHealth,
        metrics: Metrics,
        access_log: AccessLog,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - a gateway listens for the pod network
        locality: tuple[str, str] = ("", ""),
        max_connections: int = 10000,
        reuse_port: bool = False,
    ) -> None:
        self.state = state
        self.pools = pools
        self.health = health
        self.metrics = metrics
        self.access_log = access_log
        self.host = host
        self.locality = locality
        self.max_connections = max_connections
        self.reuse_port = reuse_port
        self.listeners: dict[int, asyncio.Server] = {}
        self.clients: set[OutboundClient] = set()
        self.draining = False
        self.bind_errors: dict[int, str] = {}
        self._active = metrics.active.labels("outbound")
        self._sync_lock = asyncio.Lock()

    # --- listeners ------------------------------------------------------------------------
    async def sync_listeners(self, snapshot: Snapshot) -> None:
        async with self._sync_lock:
            if self.draining:
                return
            loop = asyncio.get_running_loop()
            wanted = set(snapshot.outbound)
            for port in sorted(set(self.listeners) - wanted):
                self.listeners.pop(port).close()
                log.info("outbound listener closed", port=port)
            for port in sorted(wanted - set(self.listeners)):
                try:
                    self.listeners[port] = await loop.create_server(
                        lambda p=port: self._factory(p), self.host, port,
                        reuse_port=self.reuse_port or None, backlog=4096,
                    )
                except OSError as exc:
                    self.bind_errors[port] = str(exc)
                    log.error("cannot open outbound listener", port=port, error=str(exc))
                    continue
                self.bind_errors.pop(port, None)
                route = snapshot.outbound[port]
                log.info("outbound listener open", port=port, target=route.target,
                            pinned_cluster=route.pinned_cluster)
            keep = {p.key for r in snapshot.outbound.values() for p in r.endpoints}
            self.health.forget(keep)

    def _factory(self, port: int) -> asyncio.BaseProtocol:
        if self.draining or len(self.clients) >= self.max_connections:
            self.metrics.limit_rejections.labels("outbound").inc()
            return _Reject()
        return OutboundClient(self, port)

    # --- one client connection --------------------------------------------------------------
    async def setup(self, client: OutboundClient) -> None:
        loop = asyncio.get_running_loop()
        transport = client.transport
        assert transport is not None
        peer = transport.get_extra_info("peername")
        stats = client.stats = StreamStats(loop.time(), f"{peer[0]}:{peer[1]}" if peer else "")
        route = self.state.snapshot.outbound.get(client.listen_port)
        if route is None:
            stats.result, stats.reason = "refused", "no_route"
            self._give_up(client, stats)
            return
        stats.target = route.target
        stats.service = f"{route.service}.{route.namespace}"
        peers = order_peers(route, self.health.ejected, self.locality)
        if not peers:
            self.metrics.no_healthy_upstream.labels(stats.service).inc()
            stats.result, stats.reason = "no_healthy_upstream", "all_ejected_or_none"
            self._give_up(client, stats)
            return
        for endpoint in peers:
            tunnel = await self._try(endpoint, route.target, stats)
            if tunnel is None:
                continue
            if client.lost:
                tunnel.abort("client_gone")
                stats.result = "client_gone"
                self._log_done(stats)
                return
            stats.peer_cluster = endpoint.cluster
            stats.upstream = f"{endpoint.host}:{endpoint.port}"
            self._active.inc()
            tunnel.context.on_stream_done = self._stream_done
            tunnel.attach(client, stats)
            return
        stats.result, stats.reason = "upstream_failed", "every_cluster_failed"
        self._give_up(client, stats)

    async def _try(self, endpoint: PeerEndpoint, target: str, stats: StreamStats) -> Tunnel | None:
        loop = asyncio.get_running_loop()
        pool = self.pools.get(endpoint.host, endpoint.port, endpoint.cluster)
        started = loop.time()
        try:
            tunnel = await pool.open_stream(target)
        except TunnelRefused as exc:
            try:
                reason = Status(exc.status).name.lower()
            except ValueError:
                reason = f"status_{exc.status}"
            self.metrics.upstream_failures.labels("outbound", endpoint.cluster, reason).inc()
            log.info("peer refused stream", peer_cluster=endpoint.cluster, target=target,
                        reason=reason)
            return None
        except (TunnelError, OSError, TimeoutError) as exc:
            self.metrics.upstream_failures.labels("outbound", endpoint.cluster, "unreachable").inc()
            log.info("peer gateway unreachable", peer_cluster=endpoint.cluster,
                        address=f"{endpoint.host}:{endpoint.port}", error=str(exc))

            async def probe() -> None:
                pool.release(await pool.connect())

            self.health.failure(endpoint.key, probe)
            return None
        self.health.success(endpoint.key)
        self.metrics.child(self.metrics.connect_latency, "outbound", endpoint.cluster).observe(
            loop.time() - started
        )
        return tunnel

    def _give_up(self, client: OutboundClient, stats: StreamStats) -> None:
        if client.transport is not None and not client.lost:
            client.transport.abort()  # a prompt reset, never a hang
        self._log_done(stats)

    def _stream_done(self, tunnel: Tunnel, result: str) -> None:
        stats = tunnel.stats
        self._active.dec()
        if stats is not None:
            if not stats.result:
                stats.result = result
            tunnel.stats = None
            self._log_done(stats)

    def _log_done(self, stats: StreamStats) -> None:
        record_stream(self.metrics, "outbound", stats)
        self.access_log.write("outbound", stats, asyncio.get_running_loop().time())

    # --- lifecycle ------------------------------------------------------------------------
    def stop_accepting(self) -> None:
        self.draining = True
        for server in self.listeners.values():
            server.close()
        self.listeners.clear()

    @property
    def active_streams(self) -> int:
        return len(self.clients)

    def close_all(self) -> None:
        for client in list(self.clients):
            if client.transport is not None:
                client.transport.abort()


class _Reject(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()
