"""Framing (EDNS, TC) and the fast path: it must answer exactly what the slow path answers."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from dns_fixtures import CONFIG, SERVICES, global_service, query
from dnslib import QTYPE, RCODE, DNSRecord

from isthmus.dns.responder import Responder, respond
from isthmus.dns.snapshot import Snapshot, SnapshotHolder, build_snapshot


def summary(reply: bytes) -> dict[str, Any]:
    """Everything a client can see, with names compared case-insensitively (RFC 4343)."""
    r = DNSRecord.parse(reply)

    def rrs(section: list[Any]) -> list[tuple[Any, ...]]:
        out = []
        for rr in section:
            if rr.rtype == QTYPE.OPT:
                out.append(("OPT", rr.edns_len, rr.edns_ver, rr.edns_do, rr.edns_rcode))
            else:
                out.append((str(rr.rname).lower(), rr.rtype, rr.rclass, rr.ttl,
                            str(rr.rdata).lower()))
        return out

    return {
        "id": r.header.id, "bitmap": r.header.bitmap, "question": r.q.qname.label,
        "qtype": r.q.qtype, "an": rrs(r.rr), "ns": rrs(r.auth), "ar": rrs(r.ar),
    }


NAMES = [
    "users.shop.global", "USERS.Shop.Global", "users.shop.east.global", "_http._tcp.users.shop.global",
    "orders.shop.global", "pending.shop.global", "shop.global", "nope.shop.global",
    "Nope.Shop.Global", "example.com", "global", "big.lab.global", "BIG.lab.global",
]
TYPES = ["A", "AAAA", "SRV", "ANY", "SOA", "NS", "MX", "TXT"]
SHAPES: list[dict[str, Any]] = [
    {}, {"edns": 512}, {"edns": 1232}, {"edns": 4096, "do": True}, {"edns": 600},
    {"edns": 1232, "version": 1}, {"rd": False},
]


@pytest.mark.parametrize("udp", [pytest.param(True, id="udp"), pytest.param(False, id="tcp")])
def test_fast_path_matches_slow_path(snapshot: Snapshot, udp: bool) -> None:
    fast = Responder(snapshot)
    checked = 0
    for name in NAMES:
        for qtype in TYPES:
            for shape in SHAPES:
                packet = query(name, qtype, msg_id=random.randrange(65536), **shape)
                slow = respond(packet, snapshot, udp=udp)
                assert slow is not None
                miss = fast.handle(packet, udp=udp)
                # Same query, new ID: from the cache this time.
                again_packet = struct.pack("!H", random.randrange(65536)) + packet[2:]
                hit = fast.handle(again_packet, udp=udp)
                slow_again = respond(again_packet, snapshot, udp=udp)
                assert miss is not None and hit is not None and slow_again is not None
                assert summary(miss) == summary(slow), (name, qtype, shape)
                assert summary(hit) == summary(slow_again), (name, qtype, shape)
                if name.islower():  # nothing to re-case: byte for byte the same
                    assert hit == slow_again
                checked += 1
    assert fast.stats.cache_hits >= checked - len(NAMES) * len(TYPES)  # BADVERS is never cached
    assert fast.cache_size() > 0


def test_case_is_echoed_through_the_cache(snapshot: Snapshot) -> None:
    responder = Responder(snapshot)
    responder.handle(query("users.shop.global"), udp=True)
    hits = responder.stats.cache_hits
    reply = DNSRecord.parse(responder.handle(query("uSeRs.SHOP.global", msg_id=7), udp=True))
    assert responder.stats.cache_hits == hits + 1
    assert reply.header.id == 7
    assert reply.q.qname.label == (b"uSeRs", b"SHOP", b"global")
    assert reply.rr[0].rname.label == (b"uSeRs", b"SHOP", b"global")
    assert str(reply.rr[0].rdata) == "10.96.0.10"


def test_edns_is_echoed_through_the_cache(snapshot: Snapshot) -> None:
    responder = Responder(snapshot)
    for _ in range(2):  # second round is all hits
        plain = DNSRecord.parse(responder.handle(query("users.shop.global"), udp=True))
        assert not plain.ar
        edns = DNSRecord.parse(
            responder.handle(query("users.shop.global", edns=4096, do=True), udp=True))
        [opt] = edns.ar
        assert (opt.edns_len, opt.edns_do, opt.edns_ver) == (1232, 1, 0)
        no_do = DNSRecord.parse(
            responder.handle(query("users.shop.global", edns=4096), udp=True))
        assert no_do.ar[0].edns_do == 0
    assert responder.stats.cache_hits == 3


def test_cache_is_invalidated_when_the_snapshot_changes(snapshot: Snapshot) -> None:
    holder = SnapshotHolder(CONFIG)
    responder = Responder(holder.current)
    holder.subscribe(responder.set_snapshot)
    holder.update(SERVICES)
    packet = query("users.shop.global")
    for _ in range(2):
        assert str(DNSRecord.parse(responder.handle(packet, udp=True)).rr[0].rdata) == "10.96.0.10"
    moved = [global_service("users", "shop", ["10.96.9.9"])]
    holder.update(moved)
    reply = DNSRecord.parse(responder.handle(packet, udp=True))
    assert [str(r.rdata) for r in reply.rr] == ["10.96.9.9"]
    holder.update([])
    gone = DNSRecord.parse(responder.handle(packet, udp=True))
    assert gone.header.rcode == RCODE.NXDOMAIN


def test_cache_is_bounded_against_random_names_and_types(snapshot: Snapshot) -> None:
    responder = Responder(snapshot, other_limit=500, raw_limit=700)
    rng = random.Random(4)
    biggest = 0
    for i in range(6000):
        name = f"r{rng.getrandbits(40):x}.shop.global" if i % 2 else "users.shop.global"
        if i % 5 == 0:  # random case too (DNS 0x20, as resolvers do)
            name = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
        qtype = rng.randrange(1, 65535) if i % 3 else 1
        reply = responder.handle(query(name, qtype, edns=rng.randrange(512, 5000)),
                                 udp=bool(i % 2))
        assert reply is not None
        biggest = max(biggest, responder.cache_size())
    state = responder._state
    assert len(state.other) <= 500
    assert len(state.known) <= responder.known_limit
    assert len(state.raw_udp) <= 700 and len(state.raw_tcp) <= 700
    assert biggest <= responder.known_limit + 500 + 2 * 700
    # Still correct after the churn.
    ok = DNSRecord.parse(responder.handle(query("users.shop.global"), udp=True))
    assert str(ok.rr[0].rdata) == "10.96.0.10"


def big_snapshot(count: int) -> Snapshot:
    vips = [f"10.98.{i // 250}.{i % 250 + 1}" for i in range(count)]
    return build_snapshot([global_service("wide", "lab", vips)], CONFIG)


@pytest.mark.parametrize("use_cache", [pytest.param(True, id="fast"), pytest.param(False, id="slow")])
@pytest.mark.parametrize(
    ("shape", "udp", "truncated", "max_len"),
    [
        pytest.param({}, True, True, 512, id="udp-no-edns-over-512-tc"),
        pytest.param({}, False, False, 65535, id="tcp-whole-answer"),
        pytest.param({"edns": 512}, True, True, 512, id="edns-512"),
        pytest.param({"edns": 900}, True, True, 900, id="edns-900-honoured"),
        pytest.param({"edns": 100}, True, True, 512, id="edns-below-512-means-512"),
        pytest.param({"edns": 4096}, True, True, 1232, id="edns-4096-capped-at-ours"),
        pytest.param({"edns": 4096}, False, False, 65535, id="tcp-edns"),
    ],
)
def test_truncation_and_buffer_sizes(shape: dict[str, Any], udp: bool, truncated: bool,
                                     max_len: int, use_cache: bool) -> None:
    responder = Responder(big_snapshot(90), use_cache=use_cache)  # 90 A records: ~1.5 kB
    for _ in range(2):
        wire = responder.handle(query("wide.lab.global", **shape), udp=udp)
        assert wire is not None and len(wire) <= max_len
        reply = DNSRecord.parse(wire)
        assert reply.header.tc == int(truncated)
        assert len(reply.rr) == (0 if truncated else 90)
        assert bool(reply.ar) == ("edns" in shape)  # OPT kept in a truncated reply


def test_answer_just_under_a_limit_is_not_truncated() -> None:
    responder = Responder(big_snapshot(27))  # 12 + 19 + 27 * 16 = 463 bytes
    wire = responder.handle(query("wide.lab.global"), udp=True)
    assert wire is not None and len(wire) <= 512
    assert DNSRecord.parse(wire).header.tc == 0


def test_qr_set_gets_no_reply_on_either_path(snapshot: Snapshot) -> None:
    packet = bytearray(query("users.shop.global"))
    packet[2] |= 0x80
    for responder in (Responder(snapshot), Responder(snapshot, use_cache=False)):
        assert responder.handle(bytes(packet), udp=True) is None
        assert responder.handle(bytes(packet), udp=False) is None


def test_internal_error_becomes_servfail(snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    import isthmus.dns.responder as mod

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(mod, "resolve", broken)
    reply = Responder(snapshot).handle(query("users.shop.global", msg_id=99), udp=True)
    assert reply is not None
    parsed = DNSRecord.parse(reply)
    assert (parsed.header.id, parsed.header.rcode) == (99, RCODE.SERVFAIL)


def test_tcp_reply_over_64k_is_truncated_not_broken() -> None:
    responder = Responder(big_snapshot(4200), use_cache=False)  # ~67 kB of A records
    wire = responder.handle(query("wide.lab.global"), udp=False)
    assert wire is not None and len(wire) <= 65535
    assert DNSRecord.parse(wire).header.tc == 1
