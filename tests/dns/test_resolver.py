"""resolve(query, snapshot): the answer table (pure, no sockets)."""

from __future__ import annotations

import pytest
from dns_fixtures import CONFIG, SERVICES, query
from dnslib import QTYPE, RCODE, DNSRecord

from isthmus.dns.resolver import resolve
from isthmus.dns.snapshot import Snapshot, SnapshotConfig, build_snapshot
from isthmus.dns.wire import parse_query


def ask(snapshot: Snapshot, name: str, qtype: str | int = "A") -> DNSRecord:
    return resolve(parse_query(query(name, qtype)), snapshot)


def rdatas(reply: DNSRecord, section: str = "rr") -> list[tuple[str, str, int]]:
    return [(QTYPE[r.rtype], str(r.rdata), r.ttl) for r in getattr(reply, section)]


NX, OK, REFUSED = RCODE.NXDOMAIN, RCODE.NOERROR, RCODE.REFUSED


@pytest.mark.parametrize(
    ("name", "qtype", "rcode", "answer"),
    [
        pytest.param("users.shop.global", "A", OK, [("A", "10.96.0.10", 5)], id="a"),
        pytest.param("users.shop.global", "AAAA", OK, [("AAAA", "fd00::10", 5)], id="aaaa"),
        pytest.param("users.shop.east.global", "A", OK, [("A", "10.96.1.10", 5)], id="pinned-a"),
        pytest.param("users.shop.west.global", "AAAA", OK, [("AAAA", "fd00::2:10", 5)],
                     id="pinned-aaaa"),
        pytest.param("_http._tcp.users.shop.global", "SRV", OK,
                     [("SRV", "0 100 8080 users.shop.global.", 5)], id="srv"),
        pytest.param("orders.shop.global", "A", OK, [("A", "10.96.0.20", 1)], id="stale-short-ttl"),
        pytest.param("users.shop.global", "ANY", OK, [("A", "10.96.0.10", 5)], id="any-minimal"),
        pytest.param("v6only.lab.global", "ANY", OK, [("AAAA", "fd00::30", 5)], id="any-v6"),
        pytest.param("users.shop.global", "MX", OK, [], id="nodata-other-type"),
        pytest.param("users.shop.global", "SRV", OK, [], id="nodata-srv-on-service"),
        pytest.param("pending.shop.global", "A", OK, [], id="nodata-no-vip-yet"),
        pytest.param("users.shop.central.global", "A", OK, [], id="nodata-pinned-no-vip"),
        pytest.param("shop.global", "A", OK, [], id="ent-namespace"),
        pytest.param("_tcp.users.shop.global", "SRV", OK, [], id="ent-tcp"),
        pytest.param("shop.east.global", "A", OK, [], id="ent-ns-cluster"),
        pytest.param("east.global", "A", OK, [], id="ent-cluster"),
        pytest.param("nope.shop.global", "A", NX, [], id="nxdomain"),
        pytest.param("users.shop.mars.global", "A", NX, [], id="nxdomain-unknown-cluster"),
        pytest.param("x.users.shop.global", "A", NX, [], id="nxdomain-below-name"),
        pytest.param("_ftp._tcp.users.shop.global", "SRV", NX, [], id="nxdomain-unknown-port"),
        pytest.param("example.com", "A", REFUSED, [], id="refused-outside"),
        pytest.param("globalx", "A", REFUSED, [], id="refused-suffix-lookalike"),
        pytest.param("global", "AXFR", REFUSED, [], id="refused-axfr"),
    ],
)
def test_answers(snapshot: Snapshot, name: str, qtype: str, rcode: int,
                 answer: list[tuple[str, str, int]]) -> None:
    reply = ask(snapshot, name, qtype)
    assert reply.header.rcode == rcode
    assert rdatas(reply) == answer
    assert reply.header.qr == 1
    assert reply.header.aa == (rcode != REFUSED)
    if rcode == REFUSED:
        assert not reply.auth
    elif not answer:
        # NXDOMAIN and NODATA carry the SOA; its TTL is min(SOA TTL, MINIMUM) (RFC 2308 §3).
        [soa] = reply.auth
        assert QTYPE[soa.rtype] == "SOA" and str(soa.rname) == "global."
        assert soa.ttl == min(CONFIG.ttl, CONFIG.negative_ttl)
        assert soa.rdata.times[-1] == CONFIG.negative_ttl
    else:
        assert not reply.auth


def test_apex_soa_and_ns(snapshot: Snapshot) -> None:
    soa = ask(snapshot, "global", "SOA")
    assert [QTYPE[r.rtype] for r in soa.rr] == ["SOA"]
    assert soa.rr[0].rdata.times[0] == 2026010101
    ns = ask(snapshot, "global", "NS")
    assert rdatas(ns) == [("NS", "isthmus-dns.isthmus-system.svc.cluster.local.", 5)]
    assert ask(snapshot, "global", "ANY").rr[0].rtype == QTYPE.SOA  # minimal ANY
    nodata = ask(snapshot, "global", "A")
    assert nodata.header.rcode == OK and not nodata.rr and nodata.auth


def test_srv_carries_target_addresses(snapshot: Snapshot) -> None:
    reply = ask(snapshot, "_grpc._tcp.users.shop.global", "SRV")
    assert rdatas(reply, "ar") == [("A", "10.96.0.10", 5), ("AAAA", "fd00::10", 5)]


def test_case_is_insensitive_and_echoed(snapshot: Snapshot) -> None:
    reply = ask(snapshot, "UsErS.ShOp.GLOBAL", "A")
    assert reply.q.qname.label == (b"UsErS", b"ShOp", b"GLOBAL")
    assert rdatas(reply) == [("A", "10.96.0.10", 5)]
    assert reply.rr[0].rname.label == (b"UsErS", b"ShOp", b"GLOBAL")


def test_other_class_is_refused(snapshot: Snapshot) -> None:
    q = DNSRecord.parse(query("users.shop.global"))
    q.q.qclass = 3  # CHAOS
    assert resolve(parse_query(bytes(q.pack())), snapshot).header.rcode == REFUSED


def test_several_zones_in_one_process() -> None:
    snap = build_snapshot(SERVICES, SnapshotConfig(zones=("global.", "mesh.internal.")))
    reply = ask(snap, "users.shop.mesh.internal")
    assert rdatas(reply) == [("A", "10.96.0.10", 5)]
    nx = ask(snap, "nope.mesh.internal")
    assert nx.header.rcode == NX and str(nx.auth[0].rname) == "mesh.internal."
    assert ask(snap, "mesh.internal", "SOA").rr


def test_resolve_is_pure(snapshot: Snapshot) -> None:
    q = parse_query(query("users.shop.global", "ANY"))
    assert resolve(q, snapshot).pack() == resolve(q, snapshot).pack()
