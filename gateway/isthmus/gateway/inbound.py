"""Inbound: the one exposed port (15443). Handshake, authorize, route, then relay.

Order of events for each tunnel, and what is refused where:

1. TCP accept: over ``max_connections`` → closed at once (``limit_rejections``).
2. TLS 1.3 handshake, client certificate required, chain to the bundle (``ssl``), bounded by
   ``handshake_timeout``; failures send OpenSSL's alert (``certificate_required``,
   ``protocol_version``, ``unknown_ca``) and are counted by reason.
3. ``verify_tls_peer``: SPIFFE and SVID rules; a refusal closes the tunnel.
4. For each OPEN: the peer is checked again against the bundle and the clock of *now*
   (``peer_revoked``: its root still trusted, no certificate of its chain expired); if it
   would now be refused the tunnel is closed. Then ``route_inbound`` (pure) decides with
   the current snapshot: the caller's cluster must be linked (same trust domain), the
   normalized target exported to it, with a ready backend the ``BackendPolicy`` allows.
   A refusal answers a STATUS and dials nothing; the tunnel stays usable.
5. Only then a backend endpoint is dialled (IP literals only, never resolved; endpoints in
   turn, ``connect_timeout`` each); STATUS OK, and the relay runs until both sides END, or
   a RESET.

Open streams are not trusted for life: ``revoke`` asks ``stream_revoked`` (pure) about each
one whenever the snapshot or the bundle changes, and on the sweeper's tick for expiry. A
stream whose peer lost the right to it (Link removed, root removed from the bundle, peer
certificate expired, Service unexported, ``export-to`` narrowed) is reset, counted in
``isthmus_gateway_revoked_streams`` and logged with its reason; every other stream is left
alone. Idle tunnels whose peer would now be refused are closed too
(docs/decisions/open-streams-on-revocation.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import socket
import ssl

from isthmus.gateway.backend_policy import BackendPolicy
from isthmus.gateway.metrics import AccessLog, Metrics, record_stream
from isthmus.gateway.peer_cache import PeerVerdicts
from isthmus.gateway.revocation import (
    OpenStream,
    link_revoked,
    peer_revoked,
    stream_revoked,
)
from isthmus.gateway.route import Dial, Refused, RefusedBackend, route_inbound
from isthmus.gateway.snapshot import Snapshot
from isthmus.gateway.state import GatewayState
from isthmus.gateway.tunnel import Plain, StreamStats, Tunnel
from isthmus.gateway.wire import Status
from isthmus.logging import get_logger
from isthmus.trust import PeerIdentity, Refusal, ReloadableTls, TrustBundle

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
        policy: BackendPolicy | None = None,
    ) -> None:
        self.state = state
        self.policy = policy or BackendPolicy()
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
        # revoke() skips its walk when nothing it depends on changed since the last one
        self._revoke_seen: tuple[int, tuple[str, ...]] | None = None
        self._next_expiry: dt.datetime | None = None
        self._verdicts_for: tuple[Snapshot | None, BackendPolicy | None] = (None, None)
        self._verdicts: dict[tuple[str, int], str | None] = {}

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
        if self._next_expiry is None or verdict.not_after < self._next_expiry:
            self._next_expiry = verdict.not_after

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
        tunnel.context = None
        revoked = peer_revoked(tunnel.peer, self.tls.bundle, dt.datetime.now(dt.UTC))
        if revoked is not None:
            # The peer would be refused at a handshake now: no stream, and no tunnel.
            stats.target = repr(raw_target[:64])[2:-1]
            stats.result, stats.reason = "refused", revoked
            self._count_revoked_tunnel(tunnel.peer, revoked)
            tunnel.in_stream = False
            self._finish(tunnel, stats)
            tunnel.close()
            return
        snapshot = self.state.snapshot
        if self.draining:
            decision: Dial | Refused = Refused(Status.DRAINING, "draining")
        else:
            decision = route_inbound(
                snapshot, caller, raw_target, rotate=next(self._rotate), policy=self.policy,
                verdicts=self.backend_verdicts(snapshot),
            )
        if decision.refused_backends:
            self._log_refused_backends(decision.refused_backends, caller.cluster,
                                       decision.target if isinstance(decision, Refused)
                                       else str(decision.target))
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
        tunnel.context = OpenStream(tunnel.peer, decision.target)
        tunnel.hold()
        task = asyncio.get_running_loop().create_task(self._dial(tunnel, decision, stats))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dial(self, tunnel: Tunnel, decision: Dial, stats: StreamStats) -> None:
        loop = asyncio.get_running_loop()
        # Backends are IP literals: resolving is never allowed (only the catalog address,
        # which the operator configured, may be a name).
        flags = 0 if decision.target.is_catalog else socket.AI_NUMERICHOST
        for host, port in decision.addresses:
            if tunnel.closed:
                return
            plain = Plain()
            started = loop.time()
            self.dial_attempts += 1
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await loop.create_connection(
                        lambda: plain, host, port, flags=flags  # noqa: B023 - awaited here
                    )
            except (OSError, TimeoutError) as exc:
                reason = "timeout" if isinstance(exc, TimeoutError) else "refused"
                self.metrics.upstream_failures.labels("inbound", stats.peer_cluster, reason).inc()
                log.info("backend connect failed", backend=f"{host}:{port}",
                            target=stats.target, error=str(exc) or reason)
                continue
            self.metrics.child(self.metrics.connect_latency, "inbound", stats.peer_cluster).observe(
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

    def backend_verdicts(self, snapshot: Snapshot) -> dict[tuple[str, int], str | None]:
        """The memo of backend verdicts for ``snapshot`` and the current policy: a new,
        empty one when either changed (verdicts depend on both)."""
        if self._verdicts_for[0] is not snapshot or self._verdicts_for[1] is not self.policy:
            self._verdicts_for = (snapshot, self.policy)
            self._verdicts = {}
        return self._verdicts

    # --- revocation -------------------------------------------------------------------------
    def _log_refused_backends(
        self, refused: tuple[RefusedBackend, ...], cluster: str, target: str
    ) -> None:
        for host, port, reason in refused:
            self.metrics.backend_refusals.labels(reason).inc()
            log.warning("backend address refused", backend=f"{host}:{port}", target=target,
                        peer_cluster=cluster, reason=reason)

    def _count_revoked_tunnel(self, peer: PeerIdentity, reason: str) -> None:
        self.metrics.revoked_tunnels.labels("inbound", peer.cluster, reason).inc()
        log.warning("tunnel closed: peer no longer accepted", peer=peer.identity.uri,
                    reason=reason)

    def revoke(
        self, snapshot: Snapshot, bundle: TrustBundle, now: dt.datetime, *, force: bool = False
    ) -> int:
        """Cut every open stream (and close every idle tunnel) whose peer lost its right;
        the number of streams cut. Cheap when nothing changed: the walk only happens when
        the snapshot or the bundle changed, or a peer's chain reached its end."""
        seen = (snapshot.version, bundle.fingerprints)
        due = self._next_expiry is not None and now > self._next_expiry
        if not force and not due and seen == self._revoke_seen:
            return 0
        self._revoke_seen = seen
        self._next_expiry = None
        cut = 0
        for tunnel in list(self.tunnels):
            peer = tunnel.peer
            if tunnel.closed:
                continue
            if peer is None:  # mid-handshake: judged with this state at the next tick
                self._revoke_seen = None
                continue
            stream = tunnel.context if tunnel.in_stream else None
            if isinstance(stream, OpenStream):
                why = stream_revoked(snapshot, bundle, now, stream)
                if why is not None:
                    self._cut(tunnel, peer, stream, why)
                    cut += 1
                    continue
            elif not tunnel.in_stream:
                why = peer_revoked(peer, bundle, now) or link_revoked(snapshot, peer)
                if why is not None:
                    self._count_revoked_tunnel(peer, why)
                    tunnel.close()
                    continue
            if self._next_expiry is None or peer.not_after < self._next_expiry:
                self._next_expiry = peer.not_after
        return cut

    def _cut(self, tunnel: Tunnel, peer: PeerIdentity, stream: OpenStream, why: str) -> None:
        stats = tunnel.stats
        if stats is not None:
            stats.result, stats.reason = "revoked", why
        self.metrics.revoked_streams.labels("inbound", peer.cluster, why).inc()
        log.warning("stream revoked", peer=peer.identity.uri, target=str(stream.target),
                    source=tunnel.peername, reason=why)
        tunnel.abort("revoked")
        if stats is not None and not stats.upstream:
            # still dialling: stream_done() records only relayed streams, and _dial()
            # gives up silently on a closed tunnel
            self._finish(tunnel, stats)

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
