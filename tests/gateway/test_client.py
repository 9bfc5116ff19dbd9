"""open_tunnel / serve_forwarder: how the mirror reaches a peer's catalog."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from gw_helpers import MIRROR_SA, SYSTEM, Pki, Stalled, echo_backend, link, running, snapshot

from isthmus.api.models import GatewayAddress
from isthmus.gateway import (
    PeerIdentityError,
    Status,
    TunnelRefused,
    open_tunnel,
    serve_forwarder,
)


async def test_open_tunnel_catalog_for_mirror_only(pki: Pki) -> None:
    catalog = await echo_backend(greet=b"catalog v1\n")
    snap = snapshot(links=[link("west")], catalog=("127.0.0.1", catalog.port))
    async with running(pki.tls("east"), snap) as east:
        mirror = pki.tls("west", SYSTEM, MIRROR_SA)
        r, w = await open_tunnel(GatewayAddress(host="127.0.0.1", port=east.inbound_port),
                                 "catalog", mirror, cluster="east")
        assert await asyncio.wait_for(r.readline(), 5) == b"catalog v1\n"
        w.write(b"ping")
        w.write_eof()
        assert await asyncio.wait_for(r.read(), 5) == b"ping"
        w.close()
        # the west gateway's own identity may not read the catalog
        with pytest.raises(TunnelRefused) as info:
            await open_tunnel(("127.0.0.1", east.inbound_port), "catalog", pki.tls("west"))
        assert info.value.status == Status.FORBIDDEN
        # a mirror of an unlinked cluster neither
        with pytest.raises(TunnelRefused) as info:
            await open_tunnel(("127.0.0.1", east.inbound_port), "catalog",
                              pki.tls("central", SYSTEM, MIRROR_SA))
        assert info.value.status == Status.UNLINKED
        # and the caller checks who answered
        with pytest.raises(PeerIdentityError):
            await open_tunnel(("127.0.0.1", east.inbound_port), "catalog", mirror,
                              cluster="central")
    assert catalog.accepts == 1
    catalog.close()


def _ident(x: bytes) -> bytes:
    return x


async def test_forwarder_carries_grpc_streaming(pki: Pki) -> None:
    async def watch(request: bytes, _ctx: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        for i in range(20):
            yield b"delta %d" % i

    handler = grpc.method_handlers_generic_handler("isthmus.Catalog", {
        "Watch": grpc.unary_stream_rpc_method_handler(watch, _ident, _ident),
    })
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    snap = snapshot(links=[link("west")], catalog=("127.0.0.1", port))
    try:
        async with running(pki.tls("east"), snap) as east:
            mirror = pki.tls("west", SYSTEM, MIRROR_SA)
            fwd = await serve_forwarder(("127.0.0.1", 0), ("127.0.0.1", east.inbound_port),
                                        "catalog", mirror, cluster="east")
            async with fwd, grpc.aio.insecure_channel(f"127.0.0.1:{fwd.port}") as channel:
                call = channel.unary_stream("/isthmus.Catalog/Watch", _ident, _ident)
                got = [m async for m in call(b"from:0", timeout=5)]
                assert got == [b"delta %d" % i for i in range(20)]
    finally:
        await server.stop(None)


def opening_tasks() -> list[asyncio.Task[object]]:
    """Forwarded connections whose stream is still being opened."""
    return [t for t in asyncio.all_tasks() if "_ForwardedClient._run" in repr(t.get_coro())]


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


async def test_forwarder_close_cancels_and_awaits_pending_opens(pki: Pki) -> None:
    """close() while a connection's stream is still being opened (a peer that stalls the
    handshake, 5 s timeout): the open is cancelled and awaited, the client let go, the
    half-open tunnel closed; nothing keeps running after wait_closed()."""
    stalled = Stalled()
    port = await stalled.start()
    forwarder = await serve_forwarder(("127.0.0.1", 0), ("127.0.0.1", port), "catalog",
                                      pki.tls("west", SYSTEM, MIRROR_SA))
    r, _w = await asyncio.open_connection("127.0.0.1", forwarder.port)
    await until(lambda: stalled.accepted == 1, 2, "the forwarder dialled the peer")
    forwarder.close()
    await asyncio.wait_for(forwarder.wait_closed(), 1)
    assert not opening_tasks() and not forwarder.tasks
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(r.read(), 1) == b""  # the client is let go at once
    await until(lambda: stalled.open == 0, 1, "the half-open tunnel was closed")
    assert stalled.server is not None
    stalled.server.close()


def test_forwarder_failures_are_logged_without_flooding() -> None:
    from isthmus.gateway.client import FailureLog

    now = [0.0]
    log = FailureLog("catalog", every=30.0, clock=lambda: now[0])
    assert log.failed("refused")  # the first one is logged
    steps = [(0.2, False), (1.0, False), (29.9, False), (30.1, True), (31.0, False)]
    for at, logged in steps:
        now[0] = at
        assert log.failed("refused") is logged, at
    assert log.folded == 1
    now[0] = 32.0
    assert log.succeeded()  # the end of the run is logged once
    assert not log.succeeded()
    assert log.failed("refused")  # a new run starts with a logged line
