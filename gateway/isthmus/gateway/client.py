"""Reaching a peer cluster through its gateway, for other components (the mirror).

::

    reader, writer = await open_tunnel(peer, "catalog", tls)
    forwarder = await serve_forwarder(("127.0.0.1", 0), peer, "catalog", tls)
    channel = grpc.aio.secure_channel(f"127.0.0.1:{forwarder.port}", ...)   # mTLS inside

``peer`` is a ``GatewayAddress`` (from a Link) or ``(host, port)``. The peer's certificate
must name ``.../ns/isthmus-system/sa/isthmus-gateway`` (and ``cluster`` when given).
Our own certificate (``tls``) is what the peer authorizes: only a mirror identity of a
linked cluster may open ``catalog``. A refusal raises ``TunnelRefused`` with the status.
A forwarder checks its tunnels every ``REVOKE_INTERVAL`` seconds: one whose peer our
current bundle would now refuse (root removed, chain expired) is closed, or reset if busy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

from isthmus.api.models import GatewayAddress
from isthmus.gateway.errors import TunnelError
from isthmus.gateway.pool import PeerPool, PoolSettings
from isthmus.gateway.tunnel import Plain
from isthmus.logging import get_logger
from isthmus.trust import ReloadableTls

Peer = GatewayAddress | tuple[str, int]
_log = get_logger("isthmus.gateway.client")
REVOKE_INTERVAL = 1.0


def _split(peer: Peer) -> tuple[str, int]:
    if isinstance(peer, GatewayAddress):
        return peer.host, peer.port
    return peer[0], int(peer[1])


async def _glue(pool: PeerPool, target: str, plain: Plain) -> None:
    tunnel = await pool.open_stream(target)
    tunnel.attach(plain, None)


async def open_tunnel(
    peer: Peer,
    target: str,
    tls: ReloadableTls,
    *,
    cluster: str | None = None,
    timeout: float = 10.0,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """One stream to ``target`` through the peer gateway, as an asyncio stream pair.

    Raises ``TunnelRefused`` (a status from the peer) or ``TunnelError``."""
    host, port = _split(peer)
    settings = PoolSettings(min_idle=0, max_idle=0, connect_timeout=timeout,
                            handshake_timeout=timeout, open_timeout=timeout)
    pool = PeerPool(host, port, tls, cluster=cluster, settings=settings)
    tunnel = await pool.open_stream(target)
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    plain = Plain()
    try:
        await loop.create_connection(lambda: plain, sock=ours)
        tunnel.attach(plain, None)
        return await asyncio.open_connection(sock=theirs)
    except BaseException:
        tunnel.abort("local_error")
        theirs.close()
        raise


class _ForwardedClient(Plain):
    def __init__(self, forwarder: Forwarder) -> None:
        super().__init__()
        self.forwarder = forwarder
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()
        self.task = self.forwarder.spawn(self._run())

    async def _run(self) -> None:
        try:
            await _glue(self.forwarder.pool, self.forwarder.target, self)
        except asyncio.CancelledError:
            if self.transport is not None:
                self.transport.abort()
            raise
        except (TunnelError, OSError, Exception) as exc:
            self.forwarder.failures.failed(str(exc))
            if self.transport is not None:
                self.transport.abort()
        else:
            self.forwarder.failures.succeeded()


class FailureLog:
    """Logs a forwarder's failures without flooding: gRPC redials an unreachable peer
    several times a second, so the first failure is logged, then at most one line per
    ``every`` seconds with how many were folded into it, and one line when it works again."""

    def __init__(self, target: str, every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self.every = every
        self.clock = clock
        self.folded = 0  # failures not logged since the last line
        self.failing = False
        self.last_logged = float("-inf")

    def failed(self, error: str) -> bool:
        """Record one failure; True if it was logged."""
        now = self.clock()
        self.failing = True
        if now - self.last_logged < self.every:
            self.folded += 1
            return False
        _log.warning("forwarded connection failed", target=self.target, error=error,
                     repeated=self.folded)
        self.folded = 0
        self.last_logged = now
        return True

    def succeeded(self) -> bool:
        """Record a success; True if it ended a run of failures (and was logged)."""
        if not self.failing:
            return False
        _log.info("forwarded connections work again", target=self.target,
                  failures_not_logged=self.folded)
        self.failing = False
        self.folded = 0
        self.last_logged = float("-inf")
        return True


class Forwarder:
    """A local listener whose connections are carried to one target through a peer."""

    def __init__(self, pool: PeerPool, target: str) -> None:
        self.pool = pool
        self.target = target
        self.failures = FailureLog(target)
        self.server: asyncio.Server | None = None
        # One task per accepted connection while its stream opens; kept here (the loop
        # holds tasks only weakly) and cancelled by close().
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def watch_revocation(self, interval: float = REVOKE_INTERVAL) -> None:
        """Drop pooled tunnels that went stale, and close (or reset) every tunnel whose peer
        would now fail verification, for as long as the forwarder runs."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            self.pool.sweep(loop.time())
            for _tunnel, why, busy in self.pool.revoke(dt.datetime.now(dt.UTC)):
                _log.warning("stream revoked" if busy else "tunnel closed: peer no longer "
                             "accepted", target=self.target, reason=why,
                             peer=f"{self.pool.host}:{self.pool.port}")

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in self.tasks:
            task.cancel()
        self.pool.close()

    async def wait_closed(self) -> None:
        """Until the listener is closed and no connection is still being opened."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def __aenter__(self) -> Forwarder:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
        await self.wait_closed()


async def serve_forwarder(
    listen: tuple[str, int],
    peer: Peer,
    target: str,
    tls: ReloadableTls,
    *,
    cluster: str | None = None,
    sock: socket.socket | None = None,
) -> Forwarder:
    """Listen on ``listen`` (port 0: any), or on an already listening ``sock``, and carry
    each connection to ``target`` via ``peer``, on warm pooled tunnels. ``close()`` it when
    done. (A caller that must know the port before it can await, such as a gRPC dialer,
    binds and listens on ``sock`` itself: connections queue in the kernel meanwhile.)"""
    host, port = _split(peer)
    forwarder = Forwarder(PeerPool(host, port, tls, cluster=cluster), target)
    loop = asyncio.get_running_loop()
    if sock is not None:
        forwarder.server = await loop.create_server(
            lambda: _ForwardedClient(forwarder), sock=sock
        )
    else:
        forwarder.server = await loop.create_server(
            lambda: _ForwardedClient(forwarder), listen[0], listen[1]
        )
    forwarder.spawn(forwarder.watch_revocation())
    return forwarder
