"""Backend down, several exporting clusters, a peer gateway killed (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import contextlib

from gw_helpers import (
    Pki,
    east_snapshot,
    echo_backend,
    free_port,
    global_service,
    gs_endpoint,
    link,
    running,
    snapshot,
)


async def roundtrip(port: int, payload: bytes = b"hi") -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(payload)
        w.write_eof()
        return await asyncio.wait_for(r.read(), 5)
    finally:
        w.close()


def counter(metric: object, **labels: str) -> float:
    total = 0.0
    for m in metric.collect():  # type: ignore[attr-defined]
        for s in m.samples:
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def test_backend_down_prompt_reset(pki: Pki) -> None:
    dead = free_port()  # nothing listens here
    # Timeouts far past the read's deadline below: only acting on the refusal ends the stream.
    slow = {"connect_timeout": 60.0, "idle_timeout": 60.0}
    async with running(pki.tls("east"), east_snapshot(dead), **slow) as east:
        port = free_port()
        west_snap = snapshot(links=[link("east", port=east.inbound_port)],
                             gss=[global_service("shop", "echo", 80, port,
                                                 [gs_endpoint("east", east.inbound_port)])])
        async with running(pki.tls("west"), west_snap, **slow) as west:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"x")
            try:
                data = await asyncio.wait_for(r.read(), 10)
                assert data == b""
            except ConnectionResetError:
                pass
            w.close()
            assert counter(west.metrics.upstream_failures, reason="upstream_failed") == 1
            # a refusal by the peer does not eject its gateway
            assert not west.health.ejected


async def test_next_cluster_when_one_backend_refuses(pki: Pki) -> None:
    good = await echo_backend()
    dead = free_port()
    async with running(pki.tls("east"), east_snapshot(dead)) as east, \
            running(pki.tls("central"), east_snapshot(good.port)) as central:
        port = free_port()
        west_snap = snapshot(
            links=[link("east", port=east.inbound_port), link("central", port=central.inbound_port)],
            gss=[global_service("shop", "echo", 80, port, [
                gs_endpoint("east", east.inbound_port, weight=10000),
                gs_endpoint("central", central.inbound_port, weight=1),
            ])],
        )
        async with running(pki.tls("west"), west_snap, region="r") as west:
            for _ in range(5):
                assert await roundtrip(port) == b"hi"
            assert good.accepts == 5
            assert counter(west.metrics.connections, peer_cluster="central", result="ok") == 5
    good.close()


async def test_peer_gateway_killed_ejected_and_probed_back(pki: Pki) -> None:
    b1 = await echo_backend()
    b2 = await echo_backend()
    async with running(pki.tls("central"), east_snapshot(b2.port)) as central:
        east_port = free_port()
        east_cm = running(pki.tls("east"), east_snapshot(b1.port),
                          inbound_address=f"127.0.0.1:{east_port}")
        await east_cm.__aenter__()
        port = free_port()
        west_snap = snapshot(
            links=[link("east", port=east_port), link("central", port=central.inbound_port)],
            gss=[global_service("shop", "echo", 80, port, [
                gs_endpoint("east", east_port, zone="a", region="r"),
                gs_endpoint("central", central.inbound_port, zone="b", region="r"),
            ])],
        )
        async with running(pki.tls("west"), west_snap, region="r", zone="a",
                           eject_after=2, probe_interval=0.3) as west:
            assert await roundtrip(port) == b"hi"
            assert b1.accepts == 1  # same zone first
            await east_cm.__aexit__(None, None, None)  # kill east's gateway
            for _ in range(10):  # every new connection still succeeds, via central
                assert await roundtrip(port) == b"hi"
            assert b2.accepts == 10
            assert ("east", "127.0.0.1", east_port) in west.health.ejected
            assert counter(west.metrics.ejections, peer_cluster="east") == 1
            # bring east back on the same port: the probe readmits it
            async with running(pki.tls("east"), east_snapshot(b1.port),
                               inbound_address=f"127.0.0.1:{east_port}"):
                for _ in range(50):
                    if not west.health.ejected:
                        break
                    await asyncio.sleep(0.1)
                assert not west.health.ejected
                assert counter(west.metrics.readmissions, peer_cluster="east") == 1
                assert await roundtrip(port) == b"hi"
                assert b1.accepts == 2
    b1.close()
    b2.close()


async def test_no_healthy_upstream_counted(pki: Pki) -> None:
    port = free_port()
    dead = free_port()
    west_snap = snapshot(links=[link("east", port=dead)],
                         gss=[global_service("shop", "echo", 80, port,
                                             [gs_endpoint("east", dead)])])
    async with running(pki.tls("west"), west_snap, eject_after=1,
                       probe_interval=30) as west:
        for _ in range(3):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            with contextlib.suppress(ConnectionResetError):
                assert await asyncio.wait_for(r.read(), 3) == b""
            w.close()
        assert counter(west.metrics.no_healthy_upstream, service="echo.shop") == 2
