"""Through a real west→east gateway pair over mTLS: a connection to each pod's outbound
listener reaches exactly that pod (three backends on one port, each on its own loopback
address, answering with their hostname), a pod that leaves has its open stream reset and
new connections refused, and the others keep working."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from gw_helpers import Pki, free_port, gs_endpoint, link, running, snapshot
from test_pod_routes import headless, pods_slice

from isthmus.gateway.snapshot import Snapshot

PODS = {"db-0": "127.0.0.1", "db-1": "127.0.0.2", "db-2": "127.0.0.3"}


@contextlib.asynccontextmanager
async def pod_backends() -> AsyncIterator[int]:
    """One TCP server per pod, all on one port: each sends its hostname, then echoes."""
    servers: list[asyncio.Server] = []

    def answer(hostname: str):  # type: ignore[no-untyped-def]
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(hostname.encode() + b"\n")
            with contextlib.suppress(ConnectionError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()
        return handle

    first = await asyncio.start_server(answer("db-0"), PODS["db-0"], 0)
    servers.append(first)
    port = first.sockets[0].getsockname()[1]
    try:
        for hostname in ("db-1", "db-2"):
            servers.append(await asyncio.start_server(answer(hostname), PODS[hostname], port))
        yield port
    finally:
        for server in servers:
            server.close()


def east_pods(backend_port: int, pods: list[str], version: int = 1) -> Snapshot:
    sl = pods_slice([(p, PODS[p]) for p in pods])
    sl["ports"] = [{"name": "p", "port": backend_port, "protocol": "TCP"}]
    return snapshot(services=[headless()], slices=[sl], links=[link("west")], version=version)


def west_pods(east_port: int, listeners: dict[str, int]) -> Snapshot:
    endpoint = gs_endpoint("east", east_port, pinned=[(26257, free_port())])
    endpoint["pods"] = [{"hostname": p, "ports": [{"port": 26257, "outboundPort": o}]}
                        for p, o in listeners.items()]
    gs = {"apiVersion": "isthmus.io/v1alpha1", "kind": "GlobalService",
          "metadata": {"namespace": "shop", "name": "db"},
          "spec": {"hosts": ["db.shop.global", "db.shop.east.global"],
                   "ports": [{"name": "p", "port": 26257, "outboundPort": free_port()}],
                   "endpoints": [endpoint]}}
    return snapshot(links=[link("east", port=east_port)], gss=[gs])


async def hello(port: int) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    line = await asyncio.wait_for(r.readline(), 10)
    return line.decode().strip(), r, w


@pytest.mark.timeout(60)
async def test_each_pod_name_reaches_exactly_that_pod(pki: Pki) -> None:
    async with pod_backends() as backend_port, running(
            pki.tls("east"), east_pods(backend_port, list(PODS)),
            backend_allow_loopback=True) as east:
        listeners = {p: free_port() for p in PODS}
        async with running(pki.tls("west"), west_pods(east.inbound_port, listeners)):
            for _ in range(3):  # every time, not by chance
                for pod, port in listeners.items():
                    got, _, w = await hello(port)
                    assert got == pod
                    w.close()
            # an open stream to db-2, then db-2 leaves (scale down)
            got, r, w = await hello(listeners["db-2"])
            assert got == "db-2"
            w.write(b"ping\n")
            assert await asyncio.wait_for(r.readline(), 5) == b"ping\n"
            east.state.swap(east_pods(backend_port, ["db-0", "db-1"], version=2))
            with contextlib.suppress(ConnectionResetError):
                assert await asyncio.wait_for(r.read(), 5) == b""  # reset through both
            w.close()
            # a new connection to db-2 is refused: closed without its hostname
            r2, w2 = await asyncio.open_connection("127.0.0.1", listeners["db-2"])
            with contextlib.suppress(ConnectionResetError):
                assert await asyncio.wait_for(r2.read(), 5) == b""
            w2.close()
            # the others are untouched
            for pod in ("db-0", "db-1"):
                got, _, w = await hello(listeners[pod])
                assert got == pod
                w.close()
