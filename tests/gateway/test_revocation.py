"""Revocation under traffic, real TLS and real sockets: a stream is open when the change
lands; the affected stream is cut (counted and logged with its reason), an unrelated one
stays up. Also: new OPENs on existing tunnels are checked against the state of now, and
the client side (pool, forwarder) drops tunnels whose peer it would now refuse."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gw_helpers import (
    GW_SA,
    MIRROR_SA,
    SYSTEM,
    Pki,
    echo_backend,
    endpoint_slice,
    free_port,
    global_service,
    gs_endpoint,
    link,
    running,
    service,
    snapshot,
)
from structlog.testing import capture_logs

from isthmus.gateway import TunnelError, open_tunnel, serve_forwarder
from isthmus.gateway.pool import PeerPool, PoolSettings
from isthmus.gateway.snapshot import Snapshot
from isthmus.trust import Issuer, ReloadableTls, TlsMaterial, TrustBundle

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def east_routes(port: int, *, links: tuple[str, ...] = ("west", "central"),
                export_echo: bool = True, echo_to: str | None = None,
                version: int = 1) -> Snapshot:
    return snapshot(
        services=[service("shop", "echo", 80, export=export_echo, export_to=echo_to),
                  service("shop", "other", 80)],
        slices=[endpoint_slice("shop", "echo", [("127.0.0.1", port)]),
                endpoint_slice("shop", "other", [("127.0.0.1", port)])],
        links=[link(c) for c in links],
        version=version,
    )


async def open_stream(port: int, tls: ReloadableTls, target: str) -> Stream:
    r, w = await open_tunnel(("127.0.0.1", port), target, tls)
    assert await roundtrip((r, w), b"hello")
    return r, w


async def roundtrip(stream: Stream, data: bytes) -> bool:
    r, w = stream
    try:
        w.write(data)
        await w.drain()
        return await asyncio.wait_for(r.readexactly(len(data)), 5) == data
    except (ConnectionError, asyncio.IncompleteReadError):
        return False


async def cut(stream: Stream, timeout: float = 10.0) -> None:
    """Wait until the stream is closed by the far side (EOF or reset)."""
    r, _w = stream
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(r.read(), timeout) == b""


def counted(metric: Any, **labels: str) -> float:
    total = 0.0
    for m in metric.collect():
        for s in m.samples:
            if s.name.endswith("_total") and all(s.labels.get(k) == v
                                                 for k, v in labels.items()):
                total += s.value
    return total


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def east_gateway(tls: ReloadableTls, **routes: Any) -> AsyncIterator[Any]:
    backend = await echo_backend()
    try:
        async with running(tls, east_routes(backend.port, **routes)) as east:
            east.backend_port = backend.port  # type: ignore[attr-defined]
            yield east
    finally:
        backend.close()


def close_all(*streams: Stream) -> None:
    for _r, w in streams:
        w.close()


async def test_unexport_cuts_only_streams_to_that_service(pki: Pki) -> None:
    async with east_gateway(pki.tls("east")) as east:
        west = pki.tls("west")
        to_echo = await open_stream(east.inbound_port, west, "echo.shop:80")
        to_other = await open_stream(east.inbound_port, west, "other.shop:80")
        central_other = await open_stream(east.inbound_port, pki.tls("central"),
                                          "other.shop:80")
        with capture_logs() as logs:
            east.state.swap(east_routes(east.backend_port, export_echo=False, version=2))
            await cut(to_echo)
        assert await roundtrip(to_other, b"still")
        assert await roundtrip(central_other, b"still")
        assert counted(east.metrics.revoked_streams, direction="inbound",
                       peer_cluster="west", reason="unexported") == 1
        assert counted(east.metrics.revoked_streams) == 1
        revoked = [e for e in logs if e["event"] == "stream revoked"]
        assert len(revoked) == 1 and revoked[0]["reason"] == "unexported"
        assert revoked[0]["target"] == "echo.shop:80"
        access = [e for e in logs if e["event"] == "connection" and e["result"] == "revoked"]
        assert len(access) == 1 and access[0]["reason"] == "unexported"
        close_all(to_echo, to_other, central_other)


async def test_narrowed_export_to_cuts_the_excluded_caller_only(pki: Pki) -> None:
    async with east_gateway(pki.tls("east"), echo_to="west,central") as east:
        west_echo = await open_stream(east.inbound_port, pki.tls("west"), "echo.shop:80")
        central_echo = await open_stream(east.inbound_port, pki.tls("central"),
                                         "echo.shop:80")
        east.state.swap(east_routes(east.backend_port, echo_to="central", version=2))
        await cut(west_echo)
        assert await roundtrip(central_echo, b"still")
        assert counted(east.metrics.revoked_streams, peer_cluster="west",
                       reason="export_to_excludes_caller") == 1
        assert counted(east.metrics.revoked_streams) == 1
        close_all(west_echo, central_echo)


async def test_link_removed_cuts_that_clusters_streams_and_idle_tunnels(pki: Pki) -> None:
    async with east_gateway(pki.tls("east")) as east:
        west = pki.tls("west")
        west_echo = await open_stream(east.inbound_port, west, "echo.shop:80")
        west_other = await open_stream(east.inbound_port, west, "other.shop:80")
        central_echo = await open_stream(east.inbound_port, pki.tls("central"),
                                         "echo.shop:80")
        # an idle, already authenticated tunnel of west: closed too
        pool = PeerPool("127.0.0.1", east.inbound_port, west,
                        settings=PoolSettings(min_idle=0))
        idle = await pool.connect()
        pool.release(idle)
        try:
            east.state.swap(east_routes(east.backend_port, links=("central",), version=2))
            await cut(west_echo)
            await cut(west_other)
            await wait_for(lambda: idle.closed)
            assert await roundtrip(central_echo, b"still")
            assert counted(east.metrics.revoked_streams, peer_cluster="west",
                           reason="link_removed") == 2
            assert counted(east.metrics.revoked_tunnels, peer_cluster="west",
                           reason="link_removed") == 1
            assert counted(east.metrics.revoked_streams, peer_cluster="central") == 0
        finally:
            pool.close()
        close_all(west_echo, west_other, central_echo)


def two_root_material(pki: Pki, cluster: str, bundle: TrustBundle,
                      sa: str = GW_SA) -> ReloadableTls:
    return ReloadableTls(TlsMaterial.from_certified(pki.leaf(cluster, SYSTEM, sa), bundle))


async def test_root_removed_from_bundle_cuts_streams_under_that_root(
        pki: Pki, other_pki: Pki) -> None:
    both = TrustBundle.of([pki.root.cert, other_pki.root.cert])
    east_tls = two_root_material(pki, "east", both)
    async with east_gateway(east_tls) as east:
        west = two_root_material(pki, "west", both)  # under the root that stays
        central = two_root_material(other_pki, "central", both)  # under the one removed
        west_echo = await open_stream(east.inbound_port, west, "echo.shop:80")
        central_echo = await open_stream(east.inbound_port, central, "echo.shop:80")
        central_other = await open_stream(east.inbound_port, central, "other.shop:80")
        with capture_logs() as logs:
            east_tls.update(TlsMaterial(east_tls.material.chain_pem,
                                        east_tls.material.key_pem,
                                        TrustBundle.of([pki.root.cert])))
            await cut(central_echo)
            await cut(central_other)
        assert await roundtrip(west_echo, b"still")
        assert counted(east.metrics.revoked_streams, peer_cluster="central",
                       reason="root_removed") == 2
        assert counted(east.metrics.revoked_streams, peer_cluster="west") == 0
        assert {e["reason"] for e in logs if e["event"] == "stream revoked"} == {
            "root_removed"}
        close_all(west_echo, central_echo, central_other)


async def test_open_on_an_existing_tunnel_is_checked_against_the_bundle_of_now(
        pki: Pki, other_pki: Pki) -> None:
    both = TrustBundle.of([pki.root.cert, other_pki.root.cert])
    east_tls = two_root_material(pki, "east", both)
    async with east_gateway(east_tls) as east:
        central = two_root_material(other_pki, "central", both)
        pool = PeerPool("127.0.0.1", east.inbound_port, central,
                        settings=PoolSettings(min_idle=0))
        try:
            tunnel = await pool.connect()
            # east has verified it (TLS 1.3: the server finishes after the client)
            await wait_for(lambda: any(t.peer is not None for t in east.inbound.tunnels))
            east_tls.update(TlsMaterial(east_tls.material.chain_pem,
                                        east_tls.material.key_pem,
                                        TrustBundle.of([pki.root.cert])))
            # the already authenticated tunnel asks for a stream: no stream, no tunnel
            ctx = tunnel.context
            ctx.status = asyncio.get_running_loop().create_future()
            tunnel.send_open("echo.shop:80")
            with pytest.raises(TunnelError):
                await asyncio.wait_for(ctx.status, 5)
            await wait_for(lambda: tunnel.closed)
            assert counted(east.metrics.revoked_tunnels, peer_cluster="central",
                           reason="root_removed") == 1
        finally:
            pool.close()


async def test_peer_certificate_expiry_cuts_its_streams(pki: Pki) -> None:
    async with east_gateway(pki.tls("east")) as east:
        short = Issuer(pki.cas["west"]).issue(SYSTEM, GW_SA, lifetime=dt.timedelta(seconds=3))
        west = ReloadableTls(TlsMaterial.from_certified(short, pki.bundle))
        west_echo = await open_stream(east.inbound_port, west, "echo.shop:80")
        central_echo = await open_stream(east.inbound_port, pki.tls("central"),
                                         "echo.shop:80")
        await cut(west_echo, timeout=15)
        assert dt.datetime.now(dt.UTC) > short.cert.not_valid_after_utc
        assert await roundtrip(central_echo, b"still")
        assert counted(east.metrics.revoked_streams, peer_cluster="west",
                       reason="peer_expired") == 1
        assert counted(east.metrics.revoked_streams, peer_cluster="central") == 0
        close_all(west_echo, central_echo)


async def test_outbound_resets_streams_and_drops_tunnels_to_a_peer_it_no_longer_trusts(
        pki: Pki, other_pki: Pki) -> None:
    """Client side: west's bundle loses the root of east's certificate; west's open
    outbound stream to east is reset and its pool keeps nothing to east."""
    both = TrustBundle.of([pki.root.cert, other_pki.root.cert])
    east_tls = two_root_material(other_pki, "east", both)
    backend = await echo_backend()
    east_snap = snapshot(services=[service("shop", "echo", 80)],
                         slices=[endpoint_slice("shop", "echo", [("127.0.0.1", backend.port)])],
                         links=[link("west")])
    try:
        async with running(east_tls, east_snap) as east:
            west_tls = two_root_material(pki, "west", both)
            port = free_port()
            west_snap = snapshot(links=[link("east", port=east.inbound_port)],
                                 gss=[global_service("shop", "echo", 80, port,
                                                     [gs_endpoint("east", east.inbound_port)])])
            async with running(west_tls, west_snap) as west:
                stream = await asyncio.open_connection("127.0.0.1", port)
                assert await roundtrip(stream, b"hello")
                pool = next(iter(west.pools.pools.values()))
                await wait_for(lambda: len(pool.idle) >= 1)  # warm tunnels (min_idle=1)
                west_tls.update(TlsMaterial(west_tls.material.chain_pem,
                                            west_tls.material.key_pem,
                                            TrustBundle.of([pki.root.cert])))
                await cut(stream)
                await wait_for(lambda: not pool.idle)
                assert counted(west.metrics.revoked_streams, direction="outbound",
                               peer_cluster="east", reason="root_removed") == 1
                stream[1].close()
    finally:
        backend.close()


async def test_forwarder_drops_tunnels_to_a_peer_it_no_longer_trusts(
        pki: Pki, other_pki: Pki) -> None:
    """The mirror's catalog path (serve_forwarder): an open forwarded stream is reset and
    pooled tunnels dropped once the peer gateway's root leaves our bundle."""
    both = TrustBundle.of([pki.root.cert, other_pki.root.cert])
    catalog = await echo_backend()
    east_tls = two_root_material(other_pki, "east", both)
    snap = snapshot(links=[link("west")], catalog=("127.0.0.1", catalog.port))
    try:
        async with running(east_tls, snap) as east:
            mirror = two_root_material(pki, "west", both, sa=MIRROR_SA)
            async with await serve_forwarder(("127.0.0.1", 0),
                                             ("127.0.0.1", east.inbound_port),
                                             "catalog", mirror, cluster="east") as fwd:
                stream = await asyncio.open_connection("127.0.0.1", fwd.port)
                assert await roundtrip(stream, b"hello")
                await wait_for(lambda: len(fwd.pool.idle) >= 1)
                mirror.update(TlsMaterial(mirror.material.chain_pem, mirror.material.key_pem,
                                          TrustBundle.of([pki.root.cert])))
                await cut(stream)
                await wait_for(lambda: not fwd.pool.all)
                stream[1].close()
    finally:
        catalog.close()
