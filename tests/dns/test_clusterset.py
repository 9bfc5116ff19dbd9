"""The clusterset.local zone (MCS DNS schema 1.0.0): the name mapping, and the answers the
resolver gives for it (pure); dig over real sockets is in test_clusterset_dig.py."""

from __future__ import annotations

import pytest
from dns_fixtures import CONFIG, SERVICES, query
from dnslib import QTYPE, RCODE, DNSRecord

from isthmus.dns.clusterset import McsName, owner, parse
from isthmus.dns.resolver import resolve
from isthmus.dns.snapshot import Snapshot, SnapshotConfig, build_snapshot
from isthmus.dns.wire import parse_query


@pytest.mark.parametrize(("name", "labels"), [
    pytest.param(McsName("service", "users", "shop"), (b"users", b"shop", b"svc"), id="service"),
    pytest.param(McsName("srv", "users", "shop", port="http"),
                 (b"_http", b"_tcp", b"users", b"shop", b"svc"), id="srv"),
    pytest.param(McsName("pod", "db", "shop", cluster="east", pod="db-0"),
                 (b"db-0", b"east", b"db", b"shop", b"svc"), id="pod"),
    pytest.param(McsName("version"), (b"dns-version",), id="version"),
])
def test_owner_and_parse_are_inverse(name: McsName, labels: tuple[bytes, ...]) -> None:
    assert owner(name) == labels
    assert parse(labels) == name


@pytest.mark.parametrize("labels", [
    pytest.param((b"users", b"shop"), id="no-svc-label"),
    pytest.param((b"shop", b"svc"), id="namespace-only"),
    pytest.param((b"east", b"users", b"shop", b"svc", b"x"), id="not-ending-in-svc"),
    pytest.param((b"a", b"b", b"c", b"users", b"shop", b"svc"), id="too-deep"),
    pytest.param((b"_http", b"east", b"users", b"shop", b"svc"), id="mixed-srv-and-pod"),
])
def test_parse_refuses_other_shapes(labels: tuple[bytes, ...]) -> None:
    assert parse(labels) is None


@pytest.mark.parametrize("bad", [
    pytest.param(McsName("srv", "users", "shop"), id="srv-without-port"),
    pytest.param(McsName("pod", "users", "shop", pod="db-0"), id="pod-without-cluster"),
])
def test_owner_refuses_incomplete_names(bad: McsName) -> None:
    with pytest.raises(ValueError):
        owner(bad)


@pytest.fixture
def snap() -> Snapshot:
    return build_snapshot(SERVICES, CONFIG)


def ask(snapshot: Snapshot, name: str, qtype: str) -> DNSRecord:
    return resolve(parse_query(query(name, qtype)), snapshot)


def rdatas(reply: DNSRecord, section: str = "rr") -> list[tuple[str, str, int]]:
    return [(QTYPE[r.rtype], str(r.rdata), r.ttl) for r in getattr(reply, section)]


NX, OK, REFUSED = RCODE.NXDOMAIN, RCODE.NOERROR, RCODE.REFUSED
Z = "clusterset.local"


@pytest.mark.parametrize(("name", "qtype", "rcode", "answer"), [
    pytest.param(f"users.shop.svc.{Z}", "A", OK, [("A", "10.96.0.10", 5)], id="a"),
    pytest.param(f"USERS.Shop.svc.{Z}", "A", OK, [("A", "10.96.0.10", 5)], id="any-case"),
    pytest.param(f"users.shop.svc.{Z}", "AAAA", OK, [("AAAA", "fd00::10", 5)], id="aaaa"),
    pytest.param(f"_http._tcp.users.shop.svc.{Z}", "SRV", OK,
                 [("SRV", f"0 100 8080 users.shop.svc.{Z}.", 5)], id="srv"),
    pytest.param(f"orders.shop.svc.{Z}", "A", OK, [("A", "10.96.0.20", 1)], id="stale-ttl"),
    pytest.param(f"dns-version.{Z}", "TXT", OK, [("TXT", '"1.0.0"', 5)], id="schema-version"),
    pytest.param(f"dns-version.{Z}", "A", OK, [], id="version-nodata-for-a"),
    pytest.param(f"users.shop.svc.{Z}", "TXT", OK, [], id="nodata-txt-on-service"),
    pytest.param(f"pending.shop.svc.{Z}", "A", OK, [], id="nodata-no-vip-yet"),
    pytest.param(f"svc.{Z}", "A", OK, [], id="ent-svc"),
    pytest.param(f"shop.svc.{Z}", "A", OK, [], id="ent-namespace"),
    pytest.param(f"_tcp.users.shop.svc.{Z}", "SRV", OK, [], id="ent-tcp"),
    # a ClusterSetIP service has no per-cluster name (MCS DNS 2.3.4)
    pytest.param(f"east.users.shop.svc.{Z}", "A", NX, [], id="no-per-cluster-name"),
    pytest.param(f"users.shop.east.svc.{Z}", "A", NX, [], id="no-global-pinned-form"),
    pytest.param(f"users.shop.{Z}", "A", NX, [], id="no-global-form-without-svc"),
    pytest.param(f"nope.shop.svc.{Z}", "A", NX, [], id="nxdomain"),
    pytest.param(f"_ftp._tcp.users.shop.svc.{Z}", "SRV", NX, [], id="nxdomain-unknown-port"),
    pytest.param(f"_udp.users.shop.svc.{Z}", "A", NX, [], id="nxdomain-udp"),
    pytest.param("users.shop.svc.global", "A", NX, [], id="global-zone-has-no-svc-form"),
    pytest.param("users.shop.svc.cluster.local", "A", REFUSED, [], id="cluster-local-refused"),
])
def test_answers(snap: Snapshot, name: str, qtype: str, rcode: int,
                 answer: list[tuple[str, str, int]]) -> None:
    reply = ask(snap, name, qtype)
    assert reply.header.rcode == rcode
    assert rdatas(reply) == answer
    if rcode != REFUSED:
        assert reply.header.aa == 1
    if not answer and rcode != REFUSED:
        (soa,) = reply.auth  # negative answers carry the zone's SOA (RFC 2308)
        assert str(soa.rname) == (f"{Z}." if "global" not in name else "global.")


def test_srv_carries_the_target_address(snap: Snapshot) -> None:
    reply = ask(snap, f"_http._tcp.users.shop.svc.{Z}", "SRV")
    assert ("A", "10.96.0.10", 5) in rdatas(reply, "ar")


def test_apex_soa_and_ns(snap: Snapshot) -> None:
    assert [QTYPE[r.rtype] for r in ask(snap, Z, "SOA").rr] == ["SOA"]
    assert [QTYPE[r.rtype] for r in ask(snap, Z, "NS").rr] == ["NS"]


def test_the_zone_can_be_turned_off() -> None:
    snapshot = build_snapshot(SERVICES, SnapshotConfig(zones=("global.",), clusterset_zone=""))
    assert ask(snapshot, f"users.shop.svc.{Z}", "A").header.rcode == REFUSED
