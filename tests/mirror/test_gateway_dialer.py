"""GatewayDialer's lifetime: close() leaves nothing behind (listeners, tasks, sockets)."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from gw_helpers import Stalled
from mirror_helpers import Pki, eventually

from isthmus.mirror.gateway_dialer import GatewayDialer
from isthmus.mirror.model import LinkInfo
from isthmus.mirror.names import mirror_server_name
from isthmus.trust import Issuer, TlsMaterial


def ours() -> list[asyncio.Task[object]]:
    """Tasks of the dialer and its forwarders still alive."""
    names = ("_ForwardedClient._run", "ReloadableTls.watch", "GatewayDialer")
    return [t for t in asyncio.all_tasks()
            if any(n in repr(t.get_coro()) for n in names)]


async def refused(port: int) -> bool:
    try:
        _r, w = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    w.close()
    return False


async def test_close_releases_listeners_tasks_and_sockets(pki: Pki) -> None:
    stalled = Stalled()
    gateway_port = await stalled.start()
    key = Issuer(pki.ca("east")).issue("isthmus-system", "isthmus-mirror",
                                       dns_names=[mirror_server_name("east")])
    material = TlsMaterial.from_certified(key, pki.bundle)
    creds = grpc.ssl_channel_credentials(pki.bundle.to_pem(), key.key_pem(), key.chain_pem())
    dialer = GatewayDialer(lambda: creds, lambda: material)
    link = LinkInfo(name="west", uid="u", cluster="west", trust_domain="example.org",
                    gateway_host="127.0.0.1", gateway_port=gateway_port)
    channel = dialer.channel(link)
    try:
        # gRPC connects to the forwarder, which dials the (stalled) gateway
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(channel.channel_ready(), 1.0)
        (port,) = dialer.ports.values()
        assert stalled.accepted >= 1 and ours()
        assert not await refused(port)
    finally:
        await channel.close(grace=None)
    await asyncio.wait_for(dialer.close(), 2)
    assert not ours(), ours()
    assert await refused(port)

    async def tunnels_closed() -> bool:
        assert stalled.open == 0, "a tunnel to the gateway was left open"
        return True

    await eventually(tunnels_closed, timeout=2, interval=0.02, what="tunnels closed")
    assert dialer.ports == {}
    assert stalled.server is not None
    stalled.server.close()
