"""parse_query verdicts, and the replies they become (docs/reliability.md: DNS responder)."""

from __future__ import annotations

import struct

import pytest
from dns_fixtures import query
from dnslib import RCODE, DNSRecord

from isthmus.dns.errors import DroppedMessage, FormatError, OpcodeNotImplemented
from isthmus.dns.responder import Responder, respond
from isthmus.dns.snapshot import Snapshot
from isthmus.dns.wire import parse_query

GOOD = query("users.shop.global")
OPT_EMPTY = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"  # root, OPT, 1232, v0, no options


def with_counts(packet: bytes, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return packet[:4] + struct.pack("!HHHH", qd, an, ns, ar) + packet[12:]


def opt(options: bytes, owner: bytes = b"\x00", version: int = 0) -> bytes:
    return owner + struct.pack("!HHBBHH", 41, 1232, 0, version, 0, len(options)) + options


@pytest.mark.parametrize(
    ("packet", "error"),
    [
        pytest.param(b"", DroppedMessage, id="empty"),
        pytest.param(GOOD[:11], DroppedMessage, id="truncated-header"),
        pytest.param(GOOD[:2] + bytes([GOOD[2] | 0x80]) + GOOD[3:], DroppedMessage, id="qr-set"),
        pytest.param(GOOD[:2] + bytes([GOOD[2] | (2 << 3)]) + GOOD[3:], OpcodeNotImplemented,
                     id="opcode-status"),
        pytest.param(GOOD[:2] + bytes([GOOD[2] | (5 << 3)]) + GOOD[3:], OpcodeNotImplemented,
                     id="opcode-update"),
        pytest.param(GOOD[:12], FormatError, id="header-only"),
        pytest.param(with_counts(GOOD, qd=0), FormatError, id="qdcount-0"),
        pytest.param(with_counts(GOOD + GOOD[12:], qd=2), FormatError, id="qdcount-2"),
        pytest.param(GOOD[:-2], FormatError, id="truncated-question"),
        pytest.param(GOOD + b"\x00", FormatError, id="trailing-byte"),
        pytest.param(GOOD[:12] + b"\xc0\x0c" + GOOD[-4:], FormatError, id="pointer-in-question"),
        # Pointers go strictly backwards, so no name can make the parser loop.
        pytest.param(with_counts(GOOD + struct.pack("!H", 0xC000 | len(GOOD)), an=1),
                     FormatError, id="pointer-to-itself"),
        pytest.param(with_counts(GOOD + struct.pack("!H", 0xC000 | len(GOOD) + 2) + b"\x00", an=1),
                     FormatError, id="pointer-forward"),
        pytest.param(with_counts(GOOD + b"\x01a" + struct.pack("!H", 0xC000 | len(GOOD)), an=1),
                     FormatError, id="pointer-cycle"),
        pytest.param(GOOD[:12] + b"\x41" + b"a" * 65 + b"\x00" + GOOD[-4:], FormatError,
                     id="label-over-63"),
        pytest.param(GOOD[:12] + (b"\x3f" + b"a" * 63) * 4 + b"\x00" + GOOD[-4:], FormatError,
                     id="name-over-255"),
        pytest.param(with_counts(GOOD, ar=1), FormatError, id="arcount-without-record"),
        pytest.param(with_counts(GOOD + OPT_EMPTY + OPT_EMPTY, ar=2), FormatError, id="two-opts"),
        pytest.param(with_counts(GOOD + opt(b"", owner=b"\x01a\x00"), ar=1), FormatError,
                     id="opt-not-root"),
        pytest.param(with_counts(GOOD + opt(b"\x00\x0a\x00"), ar=1), FormatError,
                     id="opt-option-header-cut"),
        pytest.param(with_counts(GOOD + opt(b"\x00\x0a\x00\x08abcd"), ar=1), FormatError,
                     id="opt-option-overruns"),
        pytest.param(with_counts(GOOD + OPT_EMPTY[:-1], ar=1), FormatError, id="opt-cut"),
        pytest.param(with_counts(GOOD + OPT_EMPTY, an=1), FormatError, id="opt-in-answer"),
    ],
)
def test_bad_messages(packet: bytes, error: type[Exception], snapshot: Snapshot) -> None:
    with pytest.raises(error):
        parse_query(packet)
    reply = respond(packet, snapshot, udp=True)
    if error is DroppedMessage:
        assert reply is None  # QR=1 or no header: no reply at all
        return
    assert reply is not None
    parsed = DNSRecord.parse(reply)
    assert parsed.header.id == struct.unpack("!H", packet[:2])[0]
    assert parsed.header.qr == 1
    expected = RCODE.NOTIMP if error is OpcodeNotImplemented else RCODE.FORMERR
    assert parsed.header.rcode == expected
    assert parsed.header.opcode == (packet[2] >> 3) & 0xF


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(GOOD, id="plain"),
        pytest.param(query("users.shop.global", edns=4096, do=True), id="edns-do"),
        pytest.param(with_counts(GOOD + opt(b"\x00\x0a\x00\x08" + b"c" * 8), ar=1),
                     id="edns-with-cookie"),
        pytest.param(with_counts(GOOD + opt(b""), ar=1), id="edns-no-options"),
    ],
)
def test_good_messages(packet: bytes) -> None:
    q = parse_query(packet)
    assert q.qname == (b"users", b"shop", b"global")


def test_badvers_echoes_question_with_opt(snapshot: Snapshot) -> None:
    packet = query("Users.shop.global", edns=1232, version=1)
    for responder in (Responder(snapshot), Responder(snapshot, use_cache=False)):
        reply = DNSRecord.parse(responder.handle(packet, udp=True))
        [opt_rr] = reply.ar
        assert (opt_rr.edns_rcode, reply.header.rcode) == (1, 0)  # 16 = 1 << 4 | 0
        assert opt_rr.edns_ver == 0
        assert reply.q.qname.label[0] == b"Users"


def test_every_verdict_is_counted_for_the_metrics(snapshot: Snapshot) -> None:
    from prometheus_client import generate_latest

    from isthmus.dns.metrics import registry_for

    responder = Responder(snapshot)
    qr = bytearray(GOOD)
    qr[2] |= 0x80
    for packet in (b"\x00", bytes(qr), with_counts(GOOD, qd=0),
                   GOOD[:2] + bytes([GOOD[2] | (2 << 3)]) + GOOD[3:],
                   query("example.com"), query("nope.shop.global"), GOOD, GOOD):
        responder.handle(packet, udp=True)
    outcomes = responder.stats.outcomes
    assert outcomes["dropped_short"] == 1 and outcomes["dropped_qr"] == 1
    assert outcomes["formerr"] == 1 and outcomes["notimp"] == 1
    assert outcomes["refused"] == 1 and outcomes["nxdomain"] == 1
    assert responder.stats.cache_hits == 1
    text = generate_latest(registry_for(responder)).decode()
    assert 'isthmus_dns_slow_path_outcomes_total{outcome="formerr"} 1.0' in text
    assert "isthmus_dns_queries_total 8.0" in text
    assert "isthmus_dns_cache_hits_total 1.0" in text
