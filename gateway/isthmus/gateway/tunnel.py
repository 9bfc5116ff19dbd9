"""The data path: TLS over ``ssl.MemoryBIO`` on asyncio Protocols, plus the tunnel framing.

Why not asyncio's (or uvloop's) TLS transport: it drops the alert OpenSSL produces when a
handshake fails (the caller must see ``certificate_required``/``protocol_version``), it
cannot half-close a TLS stream, and it cannot carry several streams one after another on
one connection. Driving the ``SSLObject`` by hand costs no more per byte: OpenSSL does the
crypto, Python moves whole read buffers (up to 256 KiB) per call.

Two protocols, glued one to one for the life of a stream:

- ``Tunnel``: one TLS connection to or from a peer gateway. It handshakes, decodes frames
  (``wire``), and tells its ``owner`` (inbound server, outbound pool) about OPEN, STATUS,
  the end of a stream and its own end. DATA goes straight to the attached ``Plain`` side.
- ``Plain``: the plain TCP side of a stream (the application client on the outbound side,
  the backend on the inbound side). Its bytes become DATA frames; its EOF becomes END.

Backpressure: when one side's transport buffer passes its high-water mark, reading from
the other side is paused, both ways, so memory per connection stays bounded. Half-closes:
EOF on the plain side → END → ``write_eof()`` on the far plain side.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from isthmus.gateway import wire

if TYPE_CHECKING:
    from isthmus.trust import PeerIdentity

READ_MAX = 1 << 20
WRITE_HIGH = 1 << 20
WRITE_LOW = 1 << 18
_HEAD = struct.Struct("!I")
_ReadInto = Callable[[int, memoryview], int]  # SSLObject.read(n, buffer)
_READ_VIEW = memoryview(bytearray(READ_MAX))  # one loop per thread: shared safely
# Every socket reads into this one buffer (BufferedProtocol): its bytes are consumed before
# buffer_updated() returns (copied into the TLS BIO, or encrypted), so sharing is safe.
_RECV_VIEW = memoryview(bytearray(READ_MAX))


class TunnelOwner(Protocol):
    """What a tunnel reports to whoever runs it."""

    def handshake_done(self, tunnel: Tunnel) -> None: ...
    def handshake_failed(self, tunnel: Tunnel, exc: BaseException) -> None: ...
    def open_requested(self, tunnel: Tunnel, raw_target: bytes) -> None: ...
    def status_received(self, tunnel: Tunnel, status: int) -> None: ...
    def stream_done(self, tunnel: Tunnel, result: str) -> None: ...
    def tunnel_closed(self, tunnel: Tunnel) -> None: ...


class StreamStats:
    """Per stream: what the access log and the metrics need."""

    __slots__ = (
        "bytes_from_tunnel",
        "bytes_to_tunnel",
        "peer_cluster",
        "reason",
        "result",
        "service",
        "source",
        "started",
        "target",
        "upstream",
    )

    def __init__(self, started: float, source: str = "") -> None:
        self.started = started
        self.source = source
        self.target = ""
        self.service = ""
        self.peer_cluster = ""
        self.upstream = ""
        self.bytes_to_tunnel = 0
        self.bytes_from_tunnel = 0
        self.result = ""
        self.reason = ""


class Plain(asyncio.BufferedProtocol):
    """The plain TCP side of a stream."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.tunnel: Tunnel | None = None
        self.eof = False
        self.lost = False
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        t.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)

    def get_buffer(self, sizehint: int) -> memoryview:
        return _RECV_VIEW

    def buffer_updated(self, nbytes: int) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.send_data(_RECV_VIEW[:nbytes])
        else:
            self.data_received(bytes(_RECV_VIEW[:nbytes]))

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.send_data(data)
        else:  # not glued yet (a backend that speaks first): hold it
            self.pending.append(data)
            if self.transport is not None:
                self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        if self.tunnel is not None:
            self.tunnel.plain_eof()
        return True  # keep writing: a half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.tunnel is not None:
            self.tunnel.plain_lost(exc)

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.pause_reading("plain")

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.resume_reading("plain")


class Tunnel(asyncio.BufferedProtocol):
    """One TLS connection between gateways, carrying streams one after another."""

    def __init__(
        self,
        ctx: ssl.SSLContext,
        *,
        server_side: bool,
        owner: TunnelOwner,
        handshake_timeout: float,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.ctx = ctx
        self.server_side = server_side
        self.owner = owner
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.ssl = ctx.wrap_bio(self._in, self._out, server_side=server_side)
        self.transport: asyncio.Transport | None = None
        self.handshaken = False
        self.closed = False
        self.peer: PeerIdentity | None = None
        self.peername: str = ""
        self.created = self.loop.time()
        self.last_io = self.created
        self.handshake_timeout = handshake_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._buf = b""
        self._data_left = 0
        self._hold = False  # parsing paused (the server is dialing)
        self._paused: set[str] = set()
        # stream state
        self.plain: Plain | None = None
        self.in_stream = False
        self.sent_end = False
        self.got_end = False
        self.stats: StreamStats | None = None
        self.streams = 0
        self.context: Any = None  # owner's per-tunnel data

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        t.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        self._timer = self.loop.call_later(self.handshake_timeout, self._handshake_timeout)
        peer = t.get_extra_info("peername")
        if peer:
            self.peername = f"{peer[0]}:{peer[1]}"
        if not self.server_side:
            self._step_handshake()

    def get_buffer(self, sizehint: int) -> memoryview:
        return _RECV_VIEW

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(_RECV_VIEW[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        self.last_io = self.loop.time()
        self._in.write(data)
        if not self.handshaken and not self._step_handshake():
            return
        # Decrypt into one preallocated buffer: SSLObject.read(n) alone would allocate n
        # bytes per call for at most one 16 KiB record.
        view = _READ_VIEW
        size = len(view)
        got = 0
        eof = False
        read = cast(_ReadInto, self.ssl.read)  # the buffer form
        bio = self._in
        pending = self.ssl.pending
        while got < size:
            # Nothing left in the BIO nor decrypted in OpenSSL: a read would only raise
            # SSLWantReadError, an exception per chunk on the hot path.
            if got and not bio.pending and not pending():
                break
            try:
                n = read(size - got, view[got:])
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                eof = True
                break
            except ssl.SSLError:
                self.abort("tls_error")
                return
            if not n:
                eof = True
                break
            got += n
        if self._out.pending:
            self._flush()
        if got:
            self._feed(bytes(view[:got]))
            if got == size and not self.closed:  # more may be buffered in the BIO
                self.data_received(b"")
                return
        if eof and not self.closed:
            self._peer_eof()

    def eof_received(self) -> bool:
        if not self.closed:
            self._peer_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.closed = True
        if self.in_stream:
            self._end_stream("tunnel_lost", reset_plain=True)
            self.owner.stream_done(self, "tunnel_lost")
        self.owner.tunnel_closed(self)

    def pause_writing(self) -> None:
        if self.plain is not None and self.plain.transport is not None:
            self.plain.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.plain is not None and self.plain.transport is not None and not self.plain.lost:
            self.plain.transport.resume_reading()

    # --- handshake --------------------------------------------------------------------------
    def _step_handshake(self) -> bool:
        try:
            self.ssl.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except (ssl.SSLError, OSError) as exc:
            self._flush()  # the alert
            self.closed = True
            self._cancel_timer()
            if self.transport is not None:
                self.transport.close()
            self.owner.handshake_failed(self, exc)
            return False
        self.handshaken = True
        self._cancel_timer()
        self._flush()
        self.owner.handshake_done(self)
        return not self.closed

    def _handshake_timeout(self) -> None:
        self._timer = None
        if not self.handshaken and not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
            self.owner.handshake_failed(self, TimeoutError("TLS handshake timed out"))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- output ---------------------------------------------------------------------------
    def _flush(self) -> None:
        out = self._out.read()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)

    def _send(self, payload: bytes) -> None:
        if self.closed:
            return
        try:
            self.ssl.write(payload)
        except ssl.SSLError:
            self.abort("tls_error")
            return
        self._flush()

    def send_open(self, target: str | bytes) -> None:
        if isinstance(target, bytes):
            frame = wire.open_frame_raw(target)
        else:
            frame = wire.open_frame(target)
        self.in_stream = True
        self.sent_end = self.got_end = False
        self._send(frame)

    def send_status(self, status: wire.Status) -> None:
        self._send(wire.status_frame(status))

    def send_data(self, data: bytes | memoryview) -> None:
        if self.stats is not None:
            self.stats.bytes_to_tunnel += len(data)
        self.last_io = self.loop.time()
        n = len(data)
        if n <= 4096:
            self._send(b"".join((wire.data_head(n), data)))
        elif n <= wire.MAX_FRAME:
            # two records, no copy of a large payload
            if self.closed:
                return
            try:
                self.ssl.write(wire.data_head(n))
                self.ssl.write(data)
            except ssl.SSLError:
                self.abort("tls_error")
                return
            self._flush()
        else:
            view = memoryview(data)
            for i in range(0, n, wire.MAX_FRAME):
                part = view[i : i + wire.MAX_FRAME]
                self._send(b"".join((wire.data_head(len(part)), part)))

    # --- input ----------------------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        if self._buf:
            data = self._buf + data
            self._buf = b""
        pos = 0
        n = len(data)
        while pos < n and not self._hold and not self.closed:
            left = self._data_left
            if left:
                take = min(left, n - pos)
                piece = data if (pos == 0 and take == n) else memoryview(data)[pos : pos + take]
                self._data_left = left - take
                pos += take
                plain = self.plain
                if plain is not None and plain.transport is not None and not plain.lost:
                    plain.transport.write(piece)
                    stats = self.stats
                    if stats is not None:
                        stats.bytes_from_tunnel += take
                continue
            kind = data[pos]
            if kind == wire.DATA:
                if n - pos < 5:
                    break
                (length,) = _HEAD.unpack_from(data, pos + 1)
                if length > wire.MAX_FRAME or not self.in_stream or self.got_end:
                    self.abort("protocol_error")
                    return
                self._data_left = length
                pos += 5
            elif kind == wire.OPEN:
                if n - pos < 3:
                    break
                length = (data[pos + 1] << 8) | data[pos + 2]
                if not self.server_side or self.in_stream or length > wire.MAX_TARGET:
                    self.abort("protocol_error")
                    return
                if n - pos < 3 + length:
                    break
                raw = data[pos + 3 : pos + 3 + length]
                pos += 3 + length
                self.in_stream = True
                self.sent_end = self.got_end = False
                self.streams += 1
                self.owner.open_requested(self, raw)
            elif kind == wire.STATUS:
                if n - pos < 2:
                    break
                status = data[pos + 1]
                pos += 2
                if self.server_side or not self.in_stream:
                    self.abort("protocol_error")
                    return
                if status != wire.Status.OK:
                    self.in_stream = False
                else:
                    self.hold()  # DATA may follow at once: keep it until attach()
                self.owner.status_received(self, status)
            elif kind == wire.END:
                pos += 1
                if not self.in_stream or self.got_end:
                    self.abort("protocol_error")
                    return
                self.got_end = True
                plain = self.plain
                if (
                    plain is not None
                    and plain.transport is not None
                    and not plain.lost
                    and plain.transport.can_write_eof()
                ):
                    plain.transport.write_eof()
                self._maybe_done()
            elif kind == wire.RESET:
                self.abort("reset_by_peer")
                return
            else:
                self.abort("protocol_error")
                return
        if pos < n and not self.closed:
            self._buf = data[pos:]

    def release_hold(self) -> None:
        """Resume parsing after the owner answered an OPEN."""
        self._hold = False
        self.resume_reading("hold")
        if self._buf and not self.closed:
            self._feed(b"")

    def hold(self) -> None:
        self._hold = True
        self.pause_reading("hold")

    def pause_reading(self, why: str) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused.add(why)

    def resume_reading(self, why: str) -> None:
        if why in self._paused:
            self._paused.discard(why)
            if not self._paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def _peer_eof(self) -> None:
        if self.in_stream:
            self.abort("tunnel_eof")
        else:
            self.close()

    # --- stream life ----------------------------------------------------------------------
    def attach(self, plain: Plain, stats: StreamStats | None) -> None:
        """Glue ``plain`` to this tunnel for the current stream."""
        self.plain = plain
        self.stats = stats
        plain.tunnel = self
        if plain.pending:
            for chunk in plain.pending:
                self.send_data(chunk)
            plain.pending.clear()
        if plain.transport is not None and not plain.lost:
            plain.transport.resume_reading()
        if self._hold:
            self.release_hold()
        if plain.eof:
            self.plain_eof()
        if plain.lost:
            self.plain_lost(None)

    def plain_eof(self) -> None:
        if self.in_stream and not self.sent_end:
            self.sent_end = True
            self._send(wire.END_FRAME)
            self._maybe_done()

    def plain_lost(self, exc: Exception | None) -> None:
        if not self.in_stream:
            return
        if self.sent_end and self.got_end:
            self._maybe_done()
            return
        self.abort("plain_reset" if exc is not None else "plain_closed")

    def _maybe_done(self) -> None:
        if self.sent_end and self.got_end and self.in_stream:
            self._end_stream("ok", reset_plain=False)
            if not self.closed:
                self.owner.stream_done(self, "ok")

    def _end_stream(self, result: str, *, reset_plain: bool) -> None:
        self.in_stream = False
        self._data_left = 0
        plain = self.plain
        self.plain = None
        self._paused.discard("plain")
        if plain is not None:
            plain.tunnel = None
            if plain.transport is not None and not plain.lost:
                if reset_plain:
                    plain.transport.abort()
                else:
                    plain.transport.close()
        if self.stats is not None and not self.stats.result:
            self.stats.result = result

    def abort(self, result: str) -> None:
        """End the stream with a RESET (the far side resets its plain side) and close."""
        if self.closed:
            return
        if self.in_stream:
            with contextlib.suppress(ssl.SSLError):
                self.ssl.write(wire.RESET_FRAME)
            self._end_stream(result, reset_plain=True)
            self.owner.stream_done(self, result)
        self.close(flush_reset=True)

    def close(self, *, flush_reset: bool = False) -> None:
        """Close the tunnel (close_notify, then TCP close)."""
        if self.closed:
            return
        self.closed = True
        self._cancel_timer()
        if self.in_stream:
            self._end_stream("closed", reset_plain=True)
            self.owner.stream_done(self, "closed")
        if self.handshaken:
            with contextlib.suppress(ssl.SSLError, ValueError):
                self.ssl.unwrap()
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self._flush_unchecked()
            self.transport.close()

    def _flush_unchecked(self) -> None:
        out = self._out.read()
        if out and self.transport is not None:
            self.transport.write(out)
