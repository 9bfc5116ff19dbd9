"""TLS over an asyncio stream, driven by hand so a refusal still sends its alert.

asyncio's own TLS transport (``start_server(ssl=...)``, ``open_connection(ssl=...)``, and
uvloop's) closes the socket at once when a handshake fails, dropping the alert OpenSSL
produced: a client from another root sees a bare EOF instead of ``unknown_ca``, a client
without a certificate sees EOF instead of ``certificate_required``. ``accept_tls`` and
``connect_tls`` run the handshake over ``ssl.MemoryBIO`` on a plain stream and flush every
byte OpenSSL wants to send, the alert included, before closing. They also bound the
handshake with a timeout, which a stalled or plain-text client otherwise escapes.

    reader, writer = ...                       # a plain TCP stream (start_server, no ssl=)
    stream = await accept_tls(reader, writer, tls.server_context(), timeout=5)
    verdict = verify_tls_peer(stream.ssl_object, tls.bundle)
    data = await stream.read(65536); stream.write(b"..."); await stream.drain()
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

READ_CHUNK = 65536


class TlsStream:
    """An established TLS connection over a plain asyncio stream."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        sslobj: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.ssl_object = sslobj
        self._in = incoming
        self._out = outgoing

    def _flush(self) -> None:
        pending = self._out.read()
        if pending:
            self._writer.write(pending)

    async def read(self, n: int = READ_CHUNK) -> bytes:
        """Up to ``n`` bytes of plaintext; ``b""`` at a clean end of stream."""
        while True:
            try:
                data = self.ssl_object.read(n)
            except ssl.SSLWantReadError:
                self._flush()  # post-handshake messages (tickets, key updates)
                chunk = await self._reader.read(READ_CHUNK)
                if not chunk:
                    return b""
                self._in.write(chunk)
                continue
            except ssl.SSLZeroReturnError:
                return b""
            self._flush()
            return data

    async def readline(self) -> bytes:
        """Convenience for line protocols (tests, admin); buffers only within a record."""
        line = bytearray()
        while not line.endswith(b"\n"):
            byte = await self.read(1)
            if not byte:
                break
            line += byte
        return bytes(line)

    def write(self, data: bytes) -> None:
        self.ssl_object.write(data)
        self._flush()

    async def drain(self) -> None:
        await self._writer.drain()

    def get_extra_info(self, name: str) -> object:
        return self._writer.get_extra_info(name)

    async def close(self) -> None:
        with contextlib.suppress(ssl.SSLError):
            self.ssl_object.unwrap()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            self._flush()
        self._writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self._writer.wait_closed()


async def _handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ctx: ssl.SSLContext,
    *,
    server_side: bool,
    timeout: float,
) -> TlsStream:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sslobj = ctx.wrap_bio(incoming, outgoing, server_side=server_side)

    async def run() -> None:
        while True:
            try:
                sslobj.do_handshake()
            except ssl.SSLWantReadError:
                pending = outgoing.read()
                if pending:
                    writer.write(pending)
                    await writer.drain()
                chunk = await reader.read(READ_CHUNK)
                if not chunk:
                    raise ConnectionResetError("peer closed during the TLS handshake") from None
                incoming.write(chunk)
                continue
            pending = outgoing.read()
            if pending:
                writer.write(pending)
                await writer.drain()
            return

    try:
        async with asyncio.timeout(timeout):
            await run()
    except BaseException:
        # Send whatever OpenSSL queued (the alert), then close.
        with contextlib.suppress(Exception):
            pending = outgoing.read()
            if pending:
                writer.write(pending)
                async with asyncio.timeout(1.0):
                    await writer.drain()
        writer.close()
        raise
    return TlsStream(reader, writer, sslobj, incoming, outgoing)


async def accept_tls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ctx: ssl.SSLContext,
    *,
    timeout: float = 10.0,
) -> TlsStream:
    """Server side of the handshake. Raises ``ssl.SSLError`` (alert already sent),
    ``ConnectionError`` or ``TimeoutError``; the stream is closed on failure."""
    return await _handshake(reader, writer, ctx, server_side=True, timeout=timeout)


async def connect_tls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ctx: ssl.SSLContext,
    *,
    timeout: float = 10.0,
) -> TlsStream:
    """Client side of the handshake over an already connected plain stream."""
    return await _handshake(reader, writer, ctx, server_side=False, timeout=timeout)
