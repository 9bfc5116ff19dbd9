"""Warm pools of tunnels to peer gateways, and opening a stream on one.

A pool per peer gateway address keeps up to ``max_idle`` handshaken tunnels. A stream takes
an idle tunnel (no handshake on the client's critical path), sends OPEN and waits for the
STATUS; when the stream ends cleanly the tunnel goes back to the pool. ``min_idle`` tunnels
are kept warm in the background. Idle tunnels are dropped when the client TLS context
changed (certificate or bundle rotated), when their peer would now fail verification
(its root left our bundle, or its chain expired: ``peer_revoked``), or after ``idle_ttl``
seconds (shorter than the peer's idle timeout), so a pooled tunnel is never older than the
material in use. ``revoke`` also resets busy tunnels whose peer would now be refused.

The peer's certificate must name a gateway: ``.../ns/isthmus-system/sa/isthmus-gateway``,
and, when the caller knows it, of the expected cluster.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from isthmus.gateway.errors import PeerIdentityError, TunnelError, TunnelRefused
from isthmus.gateway.peer_cache import PeerVerdicts
from isthmus.gateway.revocation import peer_revoked
from isthmus.gateway.tunnel import Tunnel
from isthmus.gateway.wire import Status
from isthmus.labels import GATEWAY_SERVICE_ACCOUNT, SYSTEM_NAMESPACE
from isthmus.logging import get_logger
from isthmus.trust import Refusal, ReloadableTls

# Lazy: structlog builds it on first use, after the process configured logging.
log = get_logger("isthmus.gateway.pool")


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # nobody may be waiting any more (the client left)


@dataclass
class _TunnelCtx:
    pool: PeerPool
    ready: asyncio.Future[None]
    status: asyncio.Future[int] | None = None
    on_stream_done: Any = None


@dataclass
class PoolSettings:
    min_idle: int = 2
    max_idle: int = 512
    idle_ttl: float = 30.0
    connect_timeout: float = 5.0
    handshake_timeout: float = 5.0
    open_timeout: float = 10.0
    max_handshakes: int = 32  # concurrent new tunnels per peer; others wait for a slot


class PeerPool:
    """Tunnels to one peer gateway address."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: ReloadableTls,
        *,
        cluster: str | None = None,
        settings: PoolSettings | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.cluster = cluster
        self.settings = settings or PoolSettings()
        self.idle: collections.deque[Tunnel] = collections.deque()
        self.all: set[Tunnel] = set()
        self.handshakes = 0
        self.closed = False
        self._filling: asyncio.Task[None] | None = None
        self.verdicts = PeerVerdicts()
        self._slots = asyncio.Semaphore(self.settings.max_handshakes)

    # --- TunnelOwner ----------------------------------------------------------------------
    def handshake_done(self, tunnel: Tunnel) -> None:
        ctx: _TunnelCtx = tunnel.context
        verdict = self.verdicts.verify(tunnel.ssl, self.tls.bundle)
        error: Exception | None = None
        if isinstance(verdict, Refusal):
            error = PeerIdentityError(f"peer gateway {self.host}:{self.port} refused: {verdict}")
        else:
            ident = verdict.identity
            if (ident.namespace, ident.service_account) != (
                SYSTEM_NAMESPACE,
                GATEWAY_SERVICE_ACCOUNT,
            ) or (self.cluster is not None and ident.cluster != self.cluster):
                error = PeerIdentityError(
                    f"{self.host}:{self.port} is {ident.uri}, not the gateway of "
                    f"{self.cluster or 'a linked cluster'}"
                )
            tunnel.peer = verdict
        if error is not None:
            tunnel.close()
            if not ctx.ready.done():
                ctx.ready.set_exception(error)
            return
        if not ctx.ready.done():
            ctx.ready.set_result(None)

    def handshake_failed(self, tunnel: Tunnel, exc: BaseException) -> None:
        ctx: _TunnelCtx = tunnel.context
        if not ctx.ready.done():
            where = f"{self.host}:{self.port}"
            ctx.ready.set_exception(TunnelError(f"TLS handshake with {where}: {exc}"))

    def open_requested(self, tunnel: Tunnel, raw_target: bytes) -> None:  # pragma: no cover
        tunnel.abort("protocol_error")

    def status_received(self, tunnel: Tunnel, status: int) -> None:
        ctx: _TunnelCtx = tunnel.context
        if ctx.status is not None and not ctx.status.done():
            ctx.status.set_result(status)

    def stream_done(self, tunnel: Tunnel, result: str) -> None:
        ctx: _TunnelCtx = tunnel.context
        callback, ctx.on_stream_done = ctx.on_stream_done, None
        if callback is not None:
            callback(tunnel, result)
        if result == "ok" and not tunnel.closed:
            self.release(tunnel)

    def tunnel_closed(self, tunnel: Tunnel) -> None:
        ctx: _TunnelCtx = tunnel.context
        self.all.discard(tunnel)
        if not ctx.ready.done():
            ctx.ready.set_exception(TunnelError(f"{self.host}:{self.port} closed the connection"))
        if ctx.status is not None and not ctx.status.done():
            ctx.status.set_exception(TunnelError(f"{self.host}:{self.port} closed the tunnel"))

    # --- pool -----------------------------------------------------------------------------
    async def connect(self) -> Tunnel:
        """A new handshaken tunnel (not pooled yet)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        ready.add_done_callback(_retrieve)
        tunnel = Tunnel(
            self.tls.client_context(),
            server_side=False,
            owner=self,
            handshake_timeout=self.settings.handshake_timeout,
        )
        tunnel.context = _TunnelCtx(self, ready)
        self.handshakes += 1
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await loop.create_connection(lambda: tunnel, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise TunnelError(f"connect to {self.host}:{self.port}: {exc or 'timeout'}") from exc
        self.all.add(tunnel)
        try:
            await ready
        except BaseException:
            tunnel.close()
            raise
        return tunnel

    def _usable(self, tunnel: Tunnel, now: float, wall: dt.datetime) -> bool:
        return (
            not tunnel.closed
            and tunnel.ctx is self.tls.client_context()
            and now - tunnel.last_io < self.settings.idle_ttl
            and tunnel.peer is not None
            and peer_revoked(tunnel.peer, self.tls.bundle, wall) is None
        )

    async def acquire(self) -> tuple[Tunnel, bool]:
        """A tunnel for one stream, and whether it came from the pool."""
        pooled = self._take_idle()
        if pooled is not None:
            return pooled, True
        async with self._slots:
            pooled = self._take_idle()  # released while we waited for a slot
            if pooled is not None:
                return pooled, True
            tunnel = await self.connect()
        self._keep_warm()
        return tunnel, False

    def _take_idle(self) -> Tunnel | None:
        now = asyncio.get_running_loop().time()
        wall = dt.datetime.now(dt.UTC)
        while self.idle:
            tunnel = self.idle.pop()
            if self._usable(tunnel, now, wall):
                self._keep_warm()
                return tunnel
            tunnel.close()
        return None

    def release(self, tunnel: Tunnel) -> None:
        if self.closed or tunnel.closed or len(self.idle) >= self.settings.max_idle:
            tunnel.close()
            return
        if tunnel.ctx is not self.tls.client_context():
            tunnel.close()
            return
        self.idle.append(tunnel)

    def _keep_warm(self) -> None:
        if self.closed or len(self.idle) >= self.settings.min_idle:
            return
        if self._filling is None or self._filling.done():
            self._filling = asyncio.get_running_loop().create_task(self._fill())

    async def _fill(self) -> None:
        while not self.closed and len(self.idle) < self.settings.min_idle:
            try:
                tunnel = await self.connect()
            except (TunnelError, OSError) as exc:
                log.debug("warming the pool failed", peer=f"{self.host}:{self.port}",
                             error=str(exc))
                return
            self.release(tunnel)

    def sweep(self, now: float) -> None:
        wall = dt.datetime.now(dt.UTC)
        for tunnel in list(self.idle):
            if not self._usable(tunnel, now, wall):
                self.idle.remove(tunnel)
                tunnel.close()

    def revoke(self, wall: dt.datetime) -> list[tuple[Tunnel, str, bool]]:
        """Close every tunnel whose peer our current bundle would now refuse at ``wall``
        (idle ones closed, busy ones reset); what was closed: (tunnel, reason, busy)."""
        bundle = self.tls.bundle
        closed: list[tuple[Tunnel, str, bool]] = []
        for tunnel in list(self.all):
            if tunnel.closed or tunnel.peer is None:
                continue
            why = peer_revoked(tunnel.peer, bundle, wall)
            if why is None:
                continue
            busy = tunnel.in_stream
            closed.append((tunnel, why, busy))
            if tunnel in self.idle:
                self.idle.remove(tunnel)
            if busy:
                if tunnel.stats is not None:
                    tunnel.stats.result, tunnel.stats.reason = "revoked", why
                tunnel.abort("revoked")
            else:
                tunnel.close()
        return closed

    async def open_stream(self, target: str | bytes) -> Tunnel:
        """A tunnel with a stream open to ``target`` (STATUS OK received).

        Raises ``TunnelRefused`` (the tunnel went back to the pool) or ``TunnelError``.
        A pooled tunnel that turns out dead is replaced once by a fresh one."""
        for attempt in (0, 1):
            tunnel, pooled = await self.acquire()
            loop = asyncio.get_running_loop()
            ctx: _TunnelCtx = tunnel.context
            ctx.status = loop.create_future()
            tunnel.send_open(target)
            try:
                async with asyncio.timeout(self.settings.open_timeout):
                    status = await ctx.status
            except TunnelError:
                if pooled and attempt == 0:
                    continue
                raise
            except TimeoutError as exc:
                tunnel.close()
                raise TunnelError(f"{self.host}:{self.port} did not answer OPEN") from exc
            except asyncio.CancelledError:
                tunnel.abort("cancelled")  # the client left while we waited: reset the stream
                raise
            finally:
                ctx.status = None
            if status != Status.OK:
                self.release(tunnel)
                try:
                    name = Status(status).name.lower()
                except ValueError:
                    name = f"status_{status}"
                raise TunnelRefused(status, f"{self.host}:{self.port} refused {target!r}: {name}")
            return tunnel
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.closed = True
        if self._filling is not None:
            self._filling.cancel()
        for tunnel in list(self.all):
            if not tunnel.in_stream:
                tunnel.close()
        self.idle.clear()


@dataclass
class PoolSet:
    """Pools keyed by (host, port); created on first use."""

    tls: ReloadableTls
    settings: PoolSettings = field(default_factory=PoolSettings)
    pools: dict[tuple[str, int, str | None], PeerPool] = field(default_factory=dict)

    def get(self, host: str, port: int, cluster: str | None) -> PeerPool:
        key = (host, port, cluster)
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = PeerPool(host, port, self.tls, cluster=cluster,
                                              settings=self.settings)
        return pool

    def sweep(self, now: float) -> None:
        for pool in self.pools.values():
            pool.sweep(now)

    def revoke(self, wall: dt.datetime) -> list[tuple[PeerPool, Tunnel, str, bool]]:
        return [(pool, t, why, busy) for pool in self.pools.values()
                for t, why, busy in pool.revoke(wall)]

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
