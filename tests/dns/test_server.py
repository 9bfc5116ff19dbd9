"""The real server on loopback: dnslib's client, dig and kdig, over UDP and TCP."""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import subprocess

import pytest
from dns_fixtures import SERVICES, global_service, query
from dnslib import RCODE, DNSRecord

from isthmus.dns.responder import Responder
from isthmus.dns.server import DnsServer
from isthmus.dns.snapshot import SnapshotConfig, SnapshotHolder

pytestmark = pytest.mark.timeout(60)


async def udp_ask(port: int, packet: bytes, timeout: float = 2.0) -> bytes:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, packet)
        return await asyncio.wait_for(loop.sock_recv(sock, 65535), timeout)
    finally:
        sock.close()


async def tcp_exchange(port: int, packets: list[bytes]) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"".join(struct.pack("!H", len(p)) + p for p in packets))
        await writer.drain()
        replies = []
        for _ in packets:
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            replies.append(await reader.readexactly(size))
        return replies
    finally:
        writer.close()


async def test_dnslib_client_udp_and_tcp(live: DnsServer) -> None:
    q = DNSRecord.question("users.shop.global")
    for tcp in (False, True):
        raw = await asyncio.to_thread(q.send, "127.0.0.1", live.port, tcp=tcp, timeout=2)
        reply = DNSRecord.parse(raw)
        assert reply.header.id == q.header.id
        assert [str(r.rdata) for r in reply.rr] == ["10.96.0.10"]


async def test_several_queries_on_one_tcp_connection(live: DnsServer) -> None:
    names = ["users.shop.global", "nope.shop.global", "example.com", "Users.Shop.Global"] * 5
    packets = [query(n, msg_id=i) for i, n in enumerate(names)]
    replies = await tcp_exchange(live.port, packets)  # pipelined, answered in order
    parsed = [DNSRecord.parse(r) for r in replies]
    assert [p.header.id for p in parsed] == list(range(len(names)))
    assert [p.header.rcode for p in parsed[:4]] == [
        RCODE.NOERROR, RCODE.NXDOMAIN, RCODE.REFUSED, RCODE.NOERROR]


async def test_tcp_message_split_across_segments(live: DnsServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    framed = struct.pack("!H", len(packet := query("users.shop.global"))) + packet
    for byte in framed:  # one byte at a time
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0)
    (size,) = struct.unpack("!H", await reader.readexactly(2))
    assert DNSRecord.parse(await reader.readexactly(size)).rr
    writer.close()


async def test_idle_tcp_connection_is_closed(live: DnsServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    packet = query("users.shop.global")
    writer.write(struct.pack("!H", len(packet)) + packet)  # served first: open until idle
    (size,) = struct.unpack("!H", await reader.readexactly(2))
    assert DNSRecord.parse(await reader.readexactly(size)).rr
    # Then idle (tcp_idle=0.5 in the fixture): EOF from the server. The timeout only keeps a
    # server that never closes from hanging the test.
    assert await asyncio.wait_for(reader.read(), 10) == b""
    assert not live.tcp.connections
    writer.close()


async def test_active_tcp_connection_is_not_closed_early(live: DnsServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    for i in range(8):  # 0.2 s apart: 1.6 s in all, longer than the 0.5 s idle timeout
        packet = query("users.shop.global", msg_id=i)
        writer.write(struct.pack("!H", len(packet)) + packet)
        (size,) = struct.unpack("!H", await reader.readexactly(2))
        assert DNSRecord.parse(await reader.readexactly(size)).header.id == i
        await asyncio.sleep(0.2)
    writer.close()


async def test_connections_over_the_limit_are_closed_others_served(live: DnsServer) -> None:
    held = [await asyncio.open_connection("127.0.0.1", live.port) for _ in range(8)]
    extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", live.port)
    assert await asyncio.wait_for(extra_reader.read(), 2) == b""
    extra_writer.close()
    reply = await udp_ask(live.port, query("users.shop.global"))
    assert DNSRecord.parse(reply).rr  # UDP unaffected
    for _, w in held:
        w.close()


async def test_truncated_over_udp_then_whole_over_tcp(live: DnsServer) -> None:
    udp = DNSRecord.parse(await udp_ask(live.port, query("big.lab.global")))
    assert udp.header.tc == 1 and not udp.rr
    [tcp] = await tcp_exchange(live.port, [query("big.lab.global")])
    assert len(DNSRecord.parse(tcp).rr) == 40


async def test_garbage_then_valid_query_is_answered(live: DnsServer) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", live.port))
    for junk in (b"", b"\x00", b"\xff" * 11, b"\x12\x34" + b"\xff" * 40, query("x")[:-3]):
        await loop.sock_sendall(sock, junk)
    await loop.sock_sendall(sock, query("users.shop.global", msg_id=777))
    while True:  # FORMERR replies to some of the junk come first
        reply = DNSRecord.parse(await asyncio.wait_for(loop.sock_recv(sock, 4096), 2))
        if reply.header.id == 777:
            break
    assert [str(r.rdata) for r in reply.rr] == ["10.96.0.10"]
    sock.close()
    # TCP: garbage inside a frame gets FORMERR on the same connection, which stays usable.
    junk = b"\x12\x34\x00\x00" + b"\xff" * 20
    replies = await tcp_exchange(live.port, [junk, query("users.shop.global")])
    assert DNSRecord.parse(replies[0]).header.rcode == RCODE.FORMERR
    assert DNSRecord.parse(replies[1]).rr
    # A frame shorter than a header cannot be answered: the server closes the connection.
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(b"\x00\x03abc")
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


async def test_snapshot_change_answers_the_next_query() -> None:
    holder = SnapshotHolder(SnapshotConfig())
    responder = Responder(holder.current)
    holder.subscribe(responder.set_snapshot)
    holder.update(SERVICES)
    async with DnsServer(responder, "127.0.0.1", 0) as server:
        packet = query("users.shop.global")
        assert DNSRecord.parse(await udp_ask(server.port, packet)).rr  # warm the cache
        holder.update([global_service("users", "shop", ["10.96.7.7"])])
        reply = DNSRecord.parse(await udp_ask(server.port, packet))  # not the cached answer
        assert [str(r.rdata) for r in reply.rr] == ["10.96.7.7"]


# --- real clients ------------------------------------------------------------------------------

def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (apt-get install bind9-dnsutils knot-dnsutils)")
    return path


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=20).stdout


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
@pytest.mark.parametrize(
    ("name", "qtype", "status", "answer"),
    [
        pytest.param("users.shop.global", "A", "NOERROR", "10.96.0.10", id="a"),
        pytest.param("UsErS.sHoP.GlObAl", "AAAA", "NOERROR", "fd00::10", id="aaaa-mixed-case"),
        pytest.param("users.shop.west.global", "A", "NOERROR", "10.96.2.10", id="pinned"),
        pytest.param("_http._tcp.users.shop.global", "SRV", "NOERROR",
                     "0 100 8080 users.shop.global.", id="srv"),
        pytest.param("nope.shop.global", "A", "NXDOMAIN", "", id="nxdomain"),
        pytest.param("users.shop.global", "TXT", "NOERROR", "", id="nodata"),
        pytest.param("example.org", "A", "REFUSED", "", id="refused"),
        pytest.param("big.lab.global", "A", "NOERROR", "10.97.0.40", id="big"),
        # the Multi-Cluster Services zone
        pytest.param("users.shop.svc.clusterset.local", "A", "NOERROR", "10.96.0.10",
                     id="mcs-a"),
        pytest.param("users.shop.svc.clusterset.local", "AAAA", "NOERROR", "fd00::10",
                     id="mcs-aaaa"),
        pytest.param("_http._tcp.users.shop.svc.clusterset.local", "SRV", "NOERROR",
                     "0 100 8080 users.shop.svc.clusterset.local.", id="mcs-srv"),
        pytest.param("dns-version.clusterset.local", "TXT", "NOERROR", '"1.0.0"',
                     id="mcs-schema-version"),
        pytest.param("west.users.shop.svc.clusterset.local", "A", "NXDOMAIN", "",
                     id="mcs-no-per-cluster-name"),
        pytest.param("shop.svc.clusterset.local", "A", "NOERROR", "", id="mcs-nodata-ent"),
    ],
)
async def test_dig(live: DnsServer, transport: str, name: str, qtype: str, status: str,
                   answer: str) -> None:
    dig = _need("dig")
    out = await asyncio.to_thread(
        run, dig, "@127.0.0.1", "-p", str(live.port), name, qtype, transport,
        "+norecurse", "+time=2", "+tries=1")
    assert f"status: {status}" in out
    assert "flags: qr aa" in out or status == "REFUSED"
    if answer:
        assert answer in out
        assert f"{name}." in out  # the question echoed as asked
    if status in ("NXDOMAIN",) or (status == "NOERROR" and not answer):
        assert "IN\tSOA" in out


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
async def test_kdig(live: DnsServer, transport: str) -> None:
    kdig = _need("kdig")
    out = await asyncio.to_thread(
        run, kdig, "@127.0.0.1", "-p", str(live.port), "USERS.shop.global", "A", transport,
        "+edns", "+time=2", "+retry=0")
    assert "status: NOERROR" in out and "10.96.0.10" in out
    # (kdig prints names lower-cased, so case echo is checked with dig and dnslib.)
    assert "Version: 0" in out and "UDP size: 1232 B" in out
    soa = await asyncio.to_thread(
        run, kdig, "@127.0.0.1", "-p", str(live.port), "global", "SOA", transport)
    assert "isthmus-dns.isthmus-system.svc.cluster.local." in soa


async def test_dig_edns_version_1_gets_badvers(live: DnsServer) -> None:
    dig = _need("dig")
    out = await asyncio.to_thread(
        run, dig, "@127.0.0.1", "-p", str(live.port), "users.shop.global", "+edns=1",
        "+noednsnegotiation", "+time=2", "+tries=1")
    assert "status: BADVERS" in out


async def test_dig_truncation_falls_back_to_tcp(live: DnsServer) -> None:
    dig = _need("dig")
    out = await asyncio.to_thread(
        run, dig, "@127.0.0.1", "-p", str(live.port), "big.lab.global", "+noedns",
        "+time=2", "+tries=1")
    assert "Truncated, retrying in TCP mode" in out
    assert out.count("IN\tA\t10.97.0.") == 40


async def test_dig_any_is_minimal(live: DnsServer) -> None:
    dig = _need("dig")
    out = await asyncio.to_thread(
        run, dig, "@127.0.0.1", "-p", str(live.port), "users.shop.global", "ANY",
        "+noall", "+answer", "+time=2", "+tries=1")
    assert out.strip().splitlines() == ["users.shop.global.\t5\tIN\tA\t10.96.0.10"]


async def test_qr_set_gets_no_reply_from_the_server(live: DnsServer) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", live.port))
    response_like = bytearray(query("users.shop.global", msg_id=555))
    response_like[2] |= 0x80  # QR=1: a reply to us would invite reflection loops
    await loop.sock_sendall(sock, bytes(response_like))
    await loop.sock_sendall(sock, query("users.shop.global", msg_id=556))
    first = await asyncio.wait_for(loop.sock_recv(sock, 4096), 2)
    assert DNSRecord.parse(first).header.id == 556
    sock.close()
    assert live.responder.stats.outcomes["dropped_qr"] == 1
