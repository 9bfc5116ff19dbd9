"""Batched UDP (recvmmsg/sendmmsg): many datagrams per call, each reply to its own peer.

A burst is queued on the server's socket before the event loop runs again, so the server
reads it in batches that mix cache hits, misses, datagrams with no reply (QR=1, shorter
than a header) and several peers: every answerable query must get exactly its own reply,
byte for byte what the slow path says, and nothing else.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from dns_fixtures import query

from isthmus.dns.responder import respond
from isthmus.dns.server import DnsServer
from isthmus.dns.udp_batch import BATCH, available

pytestmark = pytest.mark.timeout(60)

NAMES = ["users.shop.global", "USERS.Shop.global", "nope.shop.global", "users.shop.east.global",
         "_http._tcp.users.shop.global", "global", "example.com"]
PEERS = 4
PER_PEER = 150


def burst(peer: int) -> list[tuple[bytes, bool]]:
    """(datagram, expects a reply) for one peer: IDs unique per peer."""
    out = []
    for i in range(PER_PEER):
        msg_id = peer * 1000 + i
        if i % 13 == 5:
            packet = bytearray(query("users.shop.global", msg_id=msg_id))
            packet[2] |= 0x80  # QR=1: a response; never answered
            out.append((bytes(packet), False))
        elif i % 17 == 3:
            out.append((b"\x01\x02\x03", False))  # shorter than a header: no reply possible
        else:
            qtype = "SRV" if NAMES[i % len(NAMES)].startswith("_") else "A"
            edns = 1232 if i % 3 == 0 else None
            out.append((query(NAMES[i % len(NAMES)], qtype, edns=edns, msg_id=msg_id), True))
    return out


async def test_burst_from_several_peers_gets_exactly_its_replies(live: DnsServer) -> None:
    socks = []
    for _ in range(PEERS):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.connect(("127.0.0.1", live.port))
        socks.append(sock)
    plans = [burst(peer) for peer in range(PEERS)]
    try:
        # Blocking sends, no await in between: the whole burst waits on the server's socket.
        for i in range(PER_PEER):
            for sock, plan in zip(socks, plans, strict=True):
                sock.send(plan[i][0])
        loop = asyncio.get_running_loop()
        for sock, plan in zip(socks, plans, strict=True):
            expected = {p[:2]: p for p, answered in plan if answered}
            sock.setblocking(False)
            got: dict[bytes, bytes] = {}
            while len(got) < len(expected):
                reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
                assert reply[:2] not in got, "a query was answered twice"
                got[reply[:2]] = reply
            assert set(got) == set(expected)
            snapshot = live.responder.snapshot
            for msg_id, reply in got.items():
                assert reply == respond(expected[msg_id], snapshot, udp=True)
            await asyncio.sleep(0.2)  # nothing else arrives (no reply to QR=1 or junk)
            with pytest.raises(BlockingIOError):
                sock.recv(65535)
    finally:
        for sock in socks:
            sock.close()
    stats = live.responder.stats
    assert stats.outcomes["dropped_qr"] >= PEERS * 11
    assert stats.outcomes.get("udp_send_dropped", 0) == 0
    if live.batch is not None:
        # Batching really happened: far fewer receive calls than datagrams.
        assert live.batch.batches <= PEERS * PER_PEER // 4
        assert stats.cache_hits > 0


@pytest.mark.skipif(not available(), reason="no recvmmsg/sendmmsg on this platform")
async def test_batched_ipv6_listener() -> None:
    from dns_fixtures import CONFIG, SERVICES

    from isthmus.dns.responder import Responder
    from isthmus.dns.snapshot import build_snapshot

    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    responder = Responder(build_snapshot(SERVICES, CONFIG, generation=1, serial=1))
    async with DnsServer(responder, "::1", 0, udp_batch=True) as server:
        assert server.batch is not None
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("::1", server.port))
            for msg_id in range(BATCH + 5):
                await loop.sock_sendall(sock, query("users.shop.global", msg_id=msg_id))
            ids = set()
            for _ in range(BATCH + 5):
                reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
                ids.add(int.from_bytes(reply[:2], "big"))
            assert ids == set(range(BATCH + 5))
        finally:
            sock.close()
