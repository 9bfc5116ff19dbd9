"""Inbound: the one exposed port (15443). Handshake, authorize, route, then relay.

Order of events for each tunnel, and what is refused where:

1. TCP accept: over ``max_connections`` → closed at once (``limit_rejections``).
2. TLS 1.3 handshake, client certificate required, chain to the bundle (``ssl``), bounded by
   ``handshake_timeout``; failures send OpenSSL's alert (``certificate_required``,
   ``protocol_version``, ``unknown_ca``) and are counted by reason.
3. ``verify_tls_peer``: SPIFFE and SVID rules; a refusal closes the tunnel.
4. For each OPEN: ``route_inbound`` (pure) decides with the current snapshot: the caller's
   cluster must be linked (same trust domain), the normalized target exported to it, with a
   ready backend. A refusal answers a STATUS and dials nothing; the tunnel stays usable.
5. Only then a backend endpoint is dialled (endpoints in turn, ``connect_timeout`` each);
   STATUS OK, and the relay runs until both sides END, or a RESET.

Open streams when a service is unexported, a Link removed or a certificate rotated: they
are left to finish (the decision was made when they opened); the next OPEN on the same
tunnel is decided with the new snapshot, and new handshakes use the new certificate.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl

from isthmus.gateway.metrics import AccessLog, Metrics, record_stream
from isthmus.gateway.peer_cache import PeerVerdicts
from isthmus.gateway.route import Dial, Refused, route_inbound
from isthmus.gateway.state import GatewayState
from isthmus.gateway.tunnel import Plain, StreamStats, Tunnel
from isthmus.gateway.wire import Status
from isthmus.logging import get_logger
from isthmus.trust import Refusal, ReloadableTls

# Lazy: structlog builds it on first use, after the process configured logging.
log = get_logger("isthmus.gateway.inbound")


def handshake_reason(exc: BaseException) -> str:
    """A short metric label for a failed handshake."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "ssl_error").lower()
        if "http" in reason:
            return "plain_http"
        return reason
    if isinstance(exc, ConnectionError):
        return "connection_lost"
    return type(exc).__name__.lower()


class _Reject(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class InboundServer:
    """Owner of every inbound tunnel (see the module docstring)."""

    def __init__(
        self,
        state: GatewayState,
        tls: ReloadableTls,
        metrics: Metrics,
        access_log: AccessLog,
        *,
        handshake_timeout: float = 10.0,
        idle_timeout: float = 300.0,
        connect_timeout: float = 5.0,
        max_connections: int = 10000,
    ) -> None:
        self.state = state
        self.tls = tls
        self.metrics = metrics
        self.access_log = access_log
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.tunnels: set[Tunnel] = set()
        self.draining = False
        self.dial_attempts = 0
        self._rotate = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._servers: list[asyncio.Server] = []
        self._active = metrics.active.labels("inbound")
        self.verdicts = PeerVerdicts()

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            self._factory, host, port, reuse_port=reuse_port or None, backlog=4096
        )
        self._servers.append(server)
        return server

    @property
    def active_streams(self) -> int:
        return sum(1 for t in self.tunnels if t.in_stream)

    def _factory(self) -> asyncio.BaseProtocol:
        if self.draining or len(self.tunnels) >= self.max_connections:
            self.metrics.limit_rejections.labels("inbound").inc()
            return _Reject()
        tunnel = Tunnel(
            self.tls.server_context(),
            server_side=True,
            owner=self,
            handshake_timeout=self.handshake_timeout,
        )
        self.tunnels.add(tunnel)
        return tunnel

    # --- TunnelOwner ----------------------------------------------------------------------
    def handshake_done(self, tunnel: Tunnel) -> None:
        verdict = self.verdicts.verify(tunnel.ssl, self.tls.bundle)
        if isinstance(verdict, Refusal):
            self.metrics.handshake_failures.labels("inbound", "-", str(verdict.reason)).inc()
            log.warning("peer refused", source=tunnel.peername, reason=str(verdict.reason),
                           detail=verdict.detail)
            tunnel.close()
            return
        tunnel.peer = verdict

    def handshake_failed(self, tunnel: Tunnel, exc: BaseException) -> None:
        reason = handshake_reason(exc)
        self.metrics.handshake_failures.labels("inbound", "-", reason).inc()
        log.info("handshake failed", source=tunnel.peername, reason=reason)

    def open_requested(self, tunnel: Tunnel, raw_target: bytes) -> None:
        assert tunnel.peer is not None
        caller = tunnel.peer.identity
        stats = StreamStats(tunnel.loop.time(), tunnel.peername)
        stats.peer_cluster = caller.cluster
        tunnel.stats = stats
        if self.draining:
            decision: Dial | Refused = Refused(Status.DRAINING, "draining")
        else:
            decision = route_inbound(
                self.state.snapshot, caller, raw_target, rotate=next(self._rotate)
            )
        if isinstance(decision, Refused):
            stats.target = decision.target or repr(raw_target[:64])[2:-1]
            stats.result = "refused"
            stats.reason = decision.reason
            self.metrics.refusals.labels(caller.cluster, "-", decision.reason).inc()
            log.warning("stream refused", caller=str(caller.uri), source=tunnel.peername,
                           target=stats.target, reason=decision.reason)
            tunnel.in_stream = False
            tunnel.send_status(decision.status)
            self._finish(tunnel, stats)
            return
        stats.target = str(decision.target)
        stats.service = decision.service
        tunnel.hold()
        task = asyncio.get_running_loop().create_task(self._dial(tunnel, decision, stats))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dial(self, tunnel: Tunnel, decision: Dial, stats: StreamStats) -> None:
        loop = asyncio.get_running_loop()
        for host, port in decision.addresses:
            if tunnel.closed:
                return
            plain = Plain()
            started = loop.time()
            self.dial_attempts += 1
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await loop.create_connection(lambda: plain, host, port)  # noqa: B023 - awaited here
            except (OSError, TimeoutError) as exc:
                reason = "timeout" if isinstance(exc, TimeoutError) else "refused"
                self.metrics.upstream_failures.labels("inbound", stats.peer_cluster, reason).inc()
                log.info("backend connect failed", backend=f"{host}:{port}",
                            target=stats.target, error=str(exc) or reason)
                continue
            self.metrics.connect_latency.labels("inbound", stats.peer_cluster).observe(
                loop.time() - started
            )
            if tunnel.closed:
                if plain.transport is not None:
                    plain.transport.abort()
                return
            stats.upstream = f"{host}:{port}"
            self._active.inc()
            tunnel.send_status(Status.OK)
            tunnel.attach(plain, stats)
            tunnel.release_hold()
            return
        if tunnel.closed:
            return
        stats.result = "refused"
        stats.reason = "upstream_failed"
        self.metrics.refusals.labels(stats.peer_cluster, stats.service, "upstream_failed").inc()
        tunnel.in_stream = False
        tunnel.send_status(Status.UPSTREAM_FAILED)
        self._finish(tunnel, stats)
        tunnel.release_hold()

    def status_received(self, tunnel: Tunnel, status: int) -> None:  # pragma: no cover
        tunnel.abort("protocol_error")

    def stream_done(self, tunnel: Tunnel, result: str) -> None:
        stats = tunnel.stats
        if stats is not None and stats.upstream:
            self._active.dec()
            if not stats.result:
                stats.result = result
            self._finish(tunnel, stats)

    def _finish(self, tunnel: Tunnel, stats: StreamStats) -> None:
        tunnel.stats = None
        record_stream(self.metrics, "inbound", stats)
        self.access_log.write("inbound", stats, tunnel.loop.time())

    def tunnel_closed(self, tunnel: Tunnel) -> None:
        self.tunnels.discard(tunnel)

    # --- housekeeping -----------------------------------------------------------------------
    def sweep(self, now: float) -> None:
        """Close tunnels idle past the timeout (a slow or silent peer, a stuck stream)."""
        for tunnel in list(self.tunnels):
            if tunnel.handshaken and now - tunnel.last_io > self.idle_timeout:
                if tunnel.in_stream and tunnel.stats is not None:
                    tunnel.stats.reason = "idle_timeout"
                tunnel.abort("idle_timeout")

    def stop_accepting(self) -> None:
        self.draining = True
        for server in self._servers:
            server.close()
        for tunnel in list(self.tunnels):
            if not tunnel.in_stream and tunnel.handshaken:
                tunnel.close()

    def close_all(self) -> None:
        for tunnel in list(self.tunnels):
            tunnel.abort("shutdown")
        for task in self._tasks:
            task.cancel()
