"""The server: sockets and framing only; every answer comes from a ``Responder``.

- UDP: on Linux, batches of datagrams per system call (``udp_batch.BatchedUdp``, registered
  with the loop as a reader); elsewhere, or with ``udp_batch=False``, one
  ``DatagramProtocol`` answering each datagram inline in its callback. Neither makes a task
  per packet (a task costs more than the answer on the fast path).
- TCP (RFC 7766): two-byte length framing, any number of queries per connection, answered
  in order; a connection idle for ``tcp_idle`` seconds is closed; reading pauses while the
  peer does not read its replies (a slow reader cannot grow our buffers); at most
  ``max_tcp`` connections, newer ones are closed at once; a framed message shorter than a
  DNS header closes the connection (the framing is out of step; no reply could be sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from dataclasses import dataclass, field
from typing import cast

from isthmus.dns.responder import Responder
from isthmus.dns.udp_batch import BatchedUdp
from isthmus.dns.udp_batch import available as batch_available
from isthmus.logging import get_logger

log = get_logger("isthmus.dns.server")

RCVBUF = 4 * 1024 * 1024  # absorb bursts (a benchmark or a node's worth of resolvers)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's; they provide the same methods.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.responder.handle(data, udp=True)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a client that went away: nothing to do.
        log.debug("dns_udp_error", error=str(exc))


@dataclass
class _TcpState:
    connections: set[_Tcp] = field(default_factory=set)


class _Tcp(asyncio.Protocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.last_seen = time.monotonic()
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        state = self.server.tcp
        if len(state.connections) >= self.server.max_tcp:
            self.server.responder.stats.outcomes["tcp_refused_limit"] += 1
            transport.abort()
            return
        state.connections.add(self)
        # High-water mark: pause reading (not writing) when replies pile up unread.
        transport.set_write_buffer_limits(high=64 * 1024)
        self._arm(self.server.tcp_idle)

    def _arm(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        # Re-armed lazily: cheaper than cancelling a timer on every message.
        idle = time.monotonic() - self.last_seen
        if idle >= self.server.tcp_idle:
            self.server.responder.stats.outcomes["tcp_idle_closed"] += 1
            if self.transport is not None:
                self.transport.close()
        else:
            self._arm(self.server.tcp_idle - idle)

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        buf = self.buffer
        buf += data
        transport = self.transport
        assert transport is not None
        replies: list[bytes] = []
        while len(buf) >= 2:
            size = (buf[0] << 8) | buf[1]
            if len(buf) < 2 + size:
                break
            message = bytes(buf[2 : 2 + size])
            del buf[: 2 + size]
            reply = self.server.responder.handle(message, udp=False)
            if reply is not None:
                replies.append(len(reply).to_bytes(2, "big") + reply)
            elif len(message) < 12:
                # Not even a header: the stream is likely out of step, and the client would
                # wait for an answer that never comes. Close, after what is already owed.
                if replies:
                    transport.write(b"".join(replies))
                transport.close()
                return
        if replies:
            transport.write(b"".join(replies))

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.tcp.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()


class DnsServer:
    """UDP and TCP listeners on one address and port, answering from ``responder``."""

    def __init__(
        self, responder: Responder, host: str = "127.0.0.1", port: int = 53, *,
        tcp_idle: float = 10.0, max_tcp: int = 1024, udp_batch: bool | None = None,
    ) -> None:
        """``udp_batch``: None uses batched UDP where the platform has it; False never."""
        self.responder = responder
        self.host = host
        self.port = port
        self.tcp_idle = tcp_idle
        self.max_tcp = max_tcp
        self.tcp = _TcpState()
        self._udp: asyncio.DatagramTransport | None = None
        self.batch: BatchedUdp | None = None
        self._batch_sock: socket.socket | None = None
        self.udp_batch = batch_available() if udp_batch is None else udp_batch
        self._tcp_server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind both; port 0 picks a free port that is free for UDP and TCP alike."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _attempt in range(20):
            udp_sock = socket.socket(family, socket.SOCK_DGRAM)
            udp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            udp_sock.bind((self.host, self.port))
            port = udp_sock.getsockname()[1]
            try:
                self._tcp_server = await loop.create_server(
                    lambda: _Tcp(self), self.host, port, family=family, reuse_address=True,
                    backlog=1024,
                )
            except OSError as exc:
                udp_sock.close()
                if exc.errno == errno.EADDRINUSE and self.port == 0:
                    continue
                raise
            if self.udp_batch:
                self.batch = BatchedUdp(udp_sock, self.responder)
                self._batch_sock = udp_sock
                loop.add_reader(udp_sock.fileno(), self.batch.drain)
            else:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Udp(self.responder), sock=udp_sock
                )
                self._udp = transport
            self.port = port
            log.info("dns_listening", host=self.host, port=port, tcp_idle=self.tcp_idle,
                     udp_batch=self.udp_batch)
            return
        raise OSError(errno.EADDRINUSE, "no port free for both UDP and TCP")

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._batch_sock is not None:
            asyncio.get_running_loop().remove_reader(self._batch_sock.fileno())
            self._batch_sock.close()
            self._batch_sock = None
        if self._tcp_server is not None:
            self._tcp_server.close()
            for conn in list(self.tcp.connections):
                if conn.transport is not None:
                    conn.transport.close()
            with contextlib.suppress(Exception):
                await self._tcp_server.wait_closed()

    async def __aenter__(self) -> DnsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
