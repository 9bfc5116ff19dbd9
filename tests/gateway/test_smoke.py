from __future__ import annotations

import asyncio

from gw_helpers import Pki, pair


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
