"""Fuzzing (hypothesis): random and mutated packets never raise, never confuse the fast path,
and the next valid query is still answered (docs/reliability.md: DNS responder).

A packet that made the parser loop would trip the test timeout; test_wire.py shows why none
can (compression pointers must point backwards). Time per query is measured in bench/dns."""

from __future__ import annotations

import asyncio
import random
import socket
import struct

from dns_fixtures import query
from dnslib import DNSRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isthmus.dns.responder import Responder, respond
from isthmus.dns.server import DnsServer
from isthmus.dns.snapshot import Snapshot

SEEDS = [
    query("users.shop.global"),
    query("USERS.shop.global", "AAAA", edns=1232),
    query("_http._tcp.users.shop.global", "SRV", edns=4096, do=True),
    query("nope.shop.global", "ANY"),
    query("big.lab.global", edns=512),
    query("global", "SOA", edns=1232, version=1),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    packet = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "extend", "counts"]))
        pos = draw(st.integers(0, max(len(packet) - 1, 0)))
        if op == "flip" and packet:
            packet[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and packet:
            packet[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del packet[pos:]
        elif op == "insert":
            packet[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "extend":
            packet += draw(st.binary(max_size=64))
        elif op == "counts" and len(packet) >= 12:
            index = draw(st.sampled_from([4, 6, 8, 10]))
            packet[index : index + 2] = draw(st.integers(0, 65535)).to_bytes(2, "big")
    return bytes(packet)


def walk(message: bytes) -> tuple[int, int, int, int, int]:
    """Oracle: check a reply is a well-formed message (names, records, exact length) and
    return (flags, qd, an, ns, ar). Written here rather than with dnslib, which refuses
    labels that are not UTF-8 although DNS allows any octets (RFC 2181 §11)."""
    assert len(message) >= 12
    flags, qd, an, ns, ar = struct.unpack_from("!HHHHH", message, 2)
    pos = 12

    def name(pos: int) -> int:
        while True:
            length = message[pos]
            if length & 0xC0 == 0xC0:
                assert ((length & 0x3F) << 8 | message[pos + 1]) < pos  # backwards only
                return pos + 2
            assert length < 64
            if length == 0:
                return pos + 1
            pos += 1 + length

    for _ in range(qd):
        pos = name(pos) + 4
    for _ in range(an + ns + ar):
        pos = name(pos)
        (rdlen,) = struct.unpack_from("!H", message, pos + 8)
        pos += 10 + rdlen
    assert pos == len(message)
    return flags, qd, an, ns, ar


def check_reply(packet: bytes, reply: bytes | None) -> None:
    if reply is None:
        return
    flags = walk(reply)[0]
    assert flags & 0x8000  # QR
    assert reply[:2] == packet[:2]  # the ID is echoed


def exercise(responder: Responder, snapshot: Snapshot, packet: bytes) -> None:
    for udp in (True, False):
        first = responder.handle(packet, udp=udp)
        second = responder.handle(packet, udp=udp)  # possibly from the cache now
        slow = respond(packet, snapshot, udp=udp)
        check_reply(packet, first)
        assert (first is None) == (slow is None) == (second is None)
        if first is not None and slow is not None and second is not None:
            check_reply(packet, second)
            # Same verdict, flags and section sizes on both paths (names may differ in case
            # only inside compressed answers, which the table test compares in detail).
            assert walk(first) == walk(second) == walk(slow)
            if packet[12:].islower() or not any(65 <= b <= 90 for b in packet[12:]):
                assert first == slow  # nothing to re-case: byte for byte the same


def still_answers(responder: Responder) -> None:
    for udp in (True, False):
        reply = responder.handle(query("users.shop.global", msg_id=31337), udp=udp)
        assert reply is not None
        assert [str(r.rdata) for r in DNSRecord.parse(reply).rr] == ["10.96.0.10"]


FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(packet=st.binary(max_size=600))
def test_random_bytes(snapshot: Snapshot, packet: bytes) -> None:
    responder = Responder(snapshot)
    exercise(responder, snapshot, packet)
    still_answers(responder)


@FUZZ
@given(packet=mutated())
def test_mutated_queries(snapshot: Snapshot, packet: bytes) -> None:
    responder = Responder(snapshot)
    exercise(responder, snapshot, packet)
    still_answers(responder)


@FUZZ
@given(header=st.binary(min_size=12, max_size=12), tail=st.sampled_from([s[12:] for s in SEEDS]))
def test_random_headers_on_valid_questions(snapshot: Snapshot, header: bytes, tail: bytes) -> None:
    responder = Responder(snapshot)
    exercise(responder, snapshot, header + tail)
    still_answers(responder)


async def test_live_server_survives_a_packet_storm(live: DnsServer) -> None:
    rng = random.Random(7)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", live.port))
    answered = asyncio.Event()

    async def read() -> None:  # keep draining, so our own buffer never drops the answer
        while True:
            data = await loop.sock_recv(sock, 65535)
            if data[:2] == b"\x10\xe1":
                assert [str(r.rdata) for r in DNSRecord.parse(data).rr] == ["10.96.0.10"]
                answered.set()

    reader = asyncio.create_task(read())
    try:
        for i in range(2000):
            seed = bytearray(rng.choice(SEEDS))
            if i % 2:
                seed[rng.randrange(len(seed))] = rng.randrange(256)
                packet = bytes(seed)
            else:
                packet = rng.randbytes(rng.randrange(0, 300))
            await loop.sock_sendall(sock, packet)
            if i % 100 == 0:
                await asyncio.sleep(0)
        for _ in range(5):  # UDP: retry like a resolver would
            await loop.sock_sendall(sock, query("users.shop.global", msg_id=4321))
            try:
                await asyncio.wait_for(answered.wait(), 1)
                break
            except TimeoutError:
                continue
        assert answered.is_set(), "the valid query after the storm was not answered"
    finally:
        reader.cancel()
        sock.close()
    assert live.responder.stats.outcomes.get("internal_error", 0) == 0
