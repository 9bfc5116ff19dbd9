"""Certificates and routes reload without dropping open connections."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from gw_helpers import Pki, east_snapshot, free_port, pair, west_snapshot

from isthmus.gateway import Status, TunnelRefused
from isthmus.gateway.pool import PeerPool


async def echo_once(r: asyncio.StreamReader, w: asyncio.StreamWriter, data: bytes) -> bytes:
    w.write(data)
    await w.drain()
    return await asyncio.wait_for(r.readexactly(len(data)), 5)


async def test_certificate_rotation_keeps_open_connections(pki: Pki) -> None:
    async with pair(pki) as p:
        r, w = await p.connect()
        assert await echo_once(r, w, b"before") == b"before"
        old_east = p.east.tls.material
        p.east.tls.update(pki.material("east"))
        p.west.tls.update(pki.material("west"))
        assert p.east.tls.material is not old_east
        # the open connection survives both rotations
        assert await echo_once(r, w, b"after") == b"after"
        # new connections work, on tunnels made with the new material
        r2, w2 = await p.connect()
        assert await echo_once(r2, w2, b"new") == b"new"
        pool = next(iter(p.west.pools.pools.values()))
        busy = [t for t in pool.all if t.in_stream]
        assert any(t.ctx is p.west.tls.client_context() for t in busy)
        fingerprints = set()
        for t in busy:
            der = t.ssl.getpeercert(binary_form=True)
            assert der is not None
            fingerprints.add(der)
        assert len(fingerprints) == 2  # old and new east leaf, side by side
        for writer in (w, w2):
            writer.close()


async def test_unexport_cuts_the_open_stream_and_refuses_new_ones(pki: Pki) -> None:
    """Decided (docs/decisions/open-streams-on-revocation.md): a stream whose Service is
    unexported is cut within one sync; the next OPEN is refused."""
    async with pair(pki) as p:
        r, w = await p.connect()
        assert await echo_once(r, w, b"one") == b"one"
        p.east.state.swap(east_snapshot(p.backend.port, version=2, export=False))
        # the open connection is reset through both gateways
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(r.read(), 5) == b""
        w.close()
        # new connections are refused (the client sees a reset, the backend no dial)
        accepts = p.backend.accepts
        r2, w2 = await p.connect()
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(r2.read(), 3) == b""
        w2.close()
        assert p.backend.accepts == accepts
        with pytest.raises(TunnelRefused) as info:
            pool = PeerPool("127.0.0.1", p.east.inbound_port, pki.tls("west"))
            try:
                await pool.open_stream("echo.shop:80")
            finally:
                pool.close()
        assert info.value.status == Status.UNKNOWN_TARGET


async def test_link_removed_refuses_new_streams_on_open_tunnels(pki: Pki) -> None:
    async with pair(pki) as p:
        r, w = await p.connect()
        assert await echo_once(r, w, b"x") == b"x"
        w.close()
        await asyncio.sleep(0.1)
        p.east.state.swap(east_snapshot(p.backend.port, links=(), version=2))
        # pooled, already authenticated tunnels do not bypass the link check
        r2, w2 = await p.connect()
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(r2.read(), 3) == b""
        w2.close()


async def test_outbound_listeners_follow_routes(pki: Pki) -> None:
    async with pair(pki) as p:
        r, w = await p.connect()
        assert await echo_once(r, w, b"x") == b"x"
        new_port = free_port()
        p.west.state.swap(west_snapshot(new_port, [("east", p.east.inbound_port)], version=2))
        await p.west.listeners_synced()
        assert set(p.west.outbound.listeners) == {new_port}
        # the old listener is closed, its open connection keeps working
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", p.outbound_port)
        assert await echo_once(r, w, b"still") == b"still"
        r2, w2 = await asyncio.open_connection("127.0.0.1", new_port)
        assert await echo_once(r2, w2, b"new") == b"new"
        w.close()
        w2.close()


async def test_sigterm_style_drain_lets_streams_finish(pki: Pki) -> None:
    async with pair(pki) as p:
        r, w = await p.connect()
        assert await echo_once(r, w, b"x") == b"x"
        drain = asyncio.ensure_future(p.west.drain(timeout=5))
        await asyncio.sleep(0.2)
        assert not p.west.ready()[0]
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", p.outbound_port)
        assert await echo_once(r, w, b"y") == b"y"  # still served while draining
        w.write_eof()
        assert await asyncio.wait_for(r.read(), 3) == b""
        w.close()
        await asyncio.wait_for(drain, 3)
