from __future__ import annotations

import asyncio

import pytest
from gw_helpers import Pki, pair, settings

from isthmus.gateway.server import Gateway
from isthmus.gateway.state import GatewayState


async def test_echo_through_pair(pki: Pki) -> None:
    async with pair(pki) as p:
        r, w = await p.connect()
        w.write(b"hello")
        await w.drain()
        assert await r.readexactly(5) == b"hello"
        w.write_eof()
        assert await asyncio.wait_for(r.read(), 5) == b""
        w.close()
        # second connection reuses a pooled tunnel
        r, w = await p.connect()
        w.write(b"x" * 1_000_000)
        w.write_eof()
        got = await asyncio.wait_for(r.read(), 10)
        assert len(got) == 1_000_000
        w.close()


async def test_close_itself_can_be_cancelled(pki: Pki) -> None:
    """close() waits for its tasks to end; a cancel of close() while it waits must reach
    the caller (an older close() suppressed CancelledError around each wait, and so
    swallowed it), and a second close() finishes the job."""
    gw = Gateway(settings(), pki.tls("east"), GatewayState())
    await gw.start()
    release = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await release.wait()  # cleanup that takes a while
            raise

    gw.spawn(slow_to_stop())
    await asyncio.sleep(0)
    closing = asyncio.create_task(gw.close())
    await asyncio.sleep(0.05)
    assert not closing.done()
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    release.set()
    await gw.close()
    assert not gw._tasks
