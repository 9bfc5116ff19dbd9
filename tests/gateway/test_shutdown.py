"""SIGTERM in a pod: the gateway stops being Ready at once but keeps accepting new
connections for ``shutdown_delay`` (kube-proxy on every node needs a moment to stop sending
them), then drains. And it is not Ready before its outbound ports are open."""

from __future__ import annotations

import asyncio

import aiohttp
from gw_helpers import Pair, Pki, pair


async def _ready(admin_port: int) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{admin_port}/readyz") as resp:
        return resp.status, await resp.text()


async def _echo(p: Pair, payload: bytes) -> bytes:
    r, w = await p.connect()
    w.write(payload)
    w.write_eof()
    async with asyncio.timeout(5):
        got = await r.read()
    w.close()
    return got


async def test_not_ready_but_still_serving_during_the_shutdown_delay(pki: Pki) -> None:
    async with pair(pki, shutdown_delay=30.0) as p:
        assert (await _ready(p.west.admin_port))[0] == 200
        stop = asyncio.Event()
        stop.set()  # the first SIGTERM has arrived
        delaying = asyncio.ensure_future(p.west.shutdown_delay(stop))
        try:
            await asyncio.sleep(0)  # the delay has begun: it sets the flag before it waits
            assert p.west.shutting_down
            status, body = await _ready(p.west.admin_port)
            assert status == 503 and "shutting down" in body
            # a connection kube-proxy still sends here is served, end to end
            assert await _echo(p, b"late caller") == b"late caller"
            assert not delaying.done()
            stop.set()  # a second signal cuts the delay short
            async with asyncio.timeout(5):
                await delaying
        finally:
            delaying.cancel()


async def test_no_delay_when_it_is_zero(pki: Pki) -> None:
    async with pair(pki, shutdown_delay=0.0) as p:
        stop = asyncio.Event()
        async with asyncio.timeout(5):
            await p.west.shutdown_delay(stop)
        assert not p.west.shutting_down


async def test_not_ready_until_outbound_listeners_are_open(pki: Pki) -> None:
    async with pair(pki) as p:
        assert p.west.ready() == (True, "ready")
        p.west._listeners_open = False  # as between the first routes and their listeners
        assert p.west.ready() == (False, "outbound listeners not open")
