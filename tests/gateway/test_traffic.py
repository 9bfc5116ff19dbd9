"""HTTP/1.1, gRPC (unary and streaming) and raw TCP across a west→east gateway pair."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator

import aiohttp
import grpc
from aiohttp import web
from gw_helpers import Pki, east_snapshot, free_port, running, west_snapshot


@contextlib.asynccontextmanager
async def via_pair(pki: Pki, backend_port: int) -> AsyncIterator[int]:
    async with running(pki.tls("east"), east_snapshot(backend_port)) as east:
        port = free_port()
        async with running(pki.tls("west"), west_snapshot(port, [("east", east.inbound_port)])):
            yield port


async def test_http11(pki: Pki) -> None:
    async def hello(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=hashlib.sha256(body).hexdigest().encode(),
                            headers={"x-len": str(len(body))})

    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    backend_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with via_pair(pki, backend_port) as port, aiohttp.ClientSession() as http:
            payload = os.urandom(5 << 20)
            for _ in range(20):  # keep-alive: many requests on few connections
                async with http.post(f"http://127.0.0.1:{port}/x", data=b"abc") as resp:
                    assert resp.status == 200
                    assert await resp.text() == hashlib.sha256(b"abc").hexdigest()
            async with http.post(f"http://127.0.0.1:{port}/big", data=payload) as resp:
                assert await resp.text() == hashlib.sha256(payload).hexdigest()
                assert resp.headers["x-len"] == str(len(payload))
    finally:
        await runner.cleanup()


def _ident(x: bytes) -> bytes:
    return x


async def test_grpc_unary_and_streaming(pki: Pki) -> None:
    async def unary(request: bytes, _ctx: grpc.aio.ServicerContext) -> bytes:
        return b"echo:" + request

    async def server_stream(request: bytes, _ctx: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        for i in range(50):
            yield request + str(i).encode()

    async def bidi(requests: AsyncIterator[bytes], _ctx: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        async for req in requests:
            yield req[::-1]

    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, _ident, _ident),
        "Stream": grpc.unary_stream_rpc_method_handler(server_stream, _ident, _ident),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, _ident, _ident),
    })
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    backend_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with via_pair(pki, backend_port) as port, \
                grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/test.Echo/Unary", _ident, _ident)
            assert await call(b"hi", timeout=5) == b"echo:hi"
            big = os.urandom(3 << 20)
            assert await call(big, timeout=10) == b"echo:" + big
            stream = channel.unary_stream("/test.Echo/Stream", _ident, _ident)
            got = [m async for m in stream(b"m", timeout=5)]
            assert got == [b"m" + str(i).encode() for i in range(50)]
            bidi_call = channel.stream_stream("/test.Echo/Bidi", _ident, _ident)

            async def requests() -> AsyncIterator[bytes]:
                for i in range(100):
                    yield f"req{i}".encode()

            answers = [m async for m in bidi_call(requests(), timeout=10)]
            assert answers == [f"req{i}".encode()[::-1] for i in range(100)]
    finally:
        await server.stop(None)


async def test_raw_tcp_half_close_both_ways(pki: Pki) -> None:
    """The client half-closes; the backend reads to EOF, then answers and closes."""
    received = asyncio.get_running_loop().create_future()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        data = await r.read()  # until the client's half-close arrives
        w.write(hashlib.sha256(data).digest())
        w.write(b"late data after the client's FIN")
        await w.drain()
        w.close()
        received.set_result(len(data))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    backend_port = server.sockets[0].getsockname()[1]
    try:
        async with via_pair(pki, backend_port) as port:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            payload = os.urandom(2 << 20)
            w.write(payload)
            w.write_eof()
            answer = await asyncio.wait_for(r.read(), 10)
            assert answer == hashlib.sha256(payload).digest() + b"late data after the client's FIN"
            assert await received == len(payload)
            w.close()
            # backend speaks first, then the client half-closes
    finally:
        server.close()


async def test_server_speaks_first(pki: Pki) -> None:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"220 hello\r\n")
        await w.drain()
        line = await r.readline()
        w.write(b"echo " + line)
        await w.drain()
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        async with via_pair(pki, server.sockets[0].getsockname()[1]) as port:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(r.readline(), 5) == b"220 hello\r\n"
            w.write(b"QUIT\r\n")
            assert await asyncio.wait_for(r.read(), 5) == b"echo QUIT\r\n"
            w.close()
    finally:
        server.close()
