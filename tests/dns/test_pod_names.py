"""Per-pod names of headless imports: the pure lookup (both layouts), the snapshot's
records (A/AAAA per pod, every pod under the service's name, SRV naming each pod), a pod
that leaves, and dig against the real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
from dns_fixtures import CONFIG
from dnslib import DNSRecord
from test_server import _need, run, udp_ask

from isthmus.api.models import GlobalService
from isthmus.dns.pod_names import (
    PodAddresses,
    clusterset_pod_key,
    global_pod_key,
    lookup_pod,
    pod_table,
)
from isthmus.dns.responder import Responder
from isthmus.dns.server import DnsServer
from isthmus.dns.snapshot import Snapshot, build_snapshot, labels_of


def headless_gs(pods: dict[str, Sequence[str]], name: str = "db",
                ns: str = "shop") -> GlobalService:
    """A GlobalService for a headless import: cluster -> its named pods."""
    return GlobalService.model_validate({
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "hosts": [f"{name}.{ns}.global"] + [f"{name}.{ns}.{c}.global" for c in pods],
            "ports": [{"name": "sql", "port": 26257, "outboundPort": 20000}],
            "endpoints": [{"cluster": c, "address": f"gw.{c}", "pinnedPorts": [
                {"port": 26257, "outboundPort": 20001}],
                "pods": [{"hostname": p, "ports": [{"port": 26257, "outboundPort": 20002 + i}]}
                         for i, p in enumerate(ps)]} for c, ps in pods.items()],
        },
        "status": {"vips": ["10.96.0.1"], "clusterVips": [
            {"cluster": c, "vips": [f"10.96.{i}.2"]} for i, c in enumerate(pods, 1)]},
    })


PODS = {"east": ["db-0", "db-1"], "west": ["db-0"]}
VIPS: dict[Any, tuple[str, ...]] = {
    ("shop", "db", "", ""): ("10.96.0.1",),
    ("shop", "db", "east", "db-0"): ("10.96.1.10",),
    ("shop", "db", "east", "db-1"): ("10.96.1.11", "fd00::1:11"),
    ("shop", "db", "west", "db-0"): ("10.96.2.10",),
    ("shop", "db", "west", "db-9"): ("10.96.2.99",),  # a Service the GlobalService omits
}


def rel(name: str) -> tuple[bytes, ...]:
    return labels_of(name)


@pytest.mark.parametrize(
    ("parse", "name", "expected"),
    [
        pytest.param(global_pod_key, "db-0.db.shop.east", ("shop", "db", "east", "db-0"),
                     id="global"),
        pytest.param(global_pod_key, "DB-0.Db.shop.EAST", ("shop", "db", "east", "db-0"),
                     id="global-mixed-case"),
        pytest.param(global_pod_key, "db.shop.east", None, id="global-pinned-is-not-a-pod"),
        pytest.param(global_pod_key, "x.db-0.db.shop.east", None, id="global-too-deep"),
        pytest.param(clusterset_pod_key, "db-0.east.db.shop.svc",
                     ("shop", "db", "east", "db-0"), id="clusterset"),
        pytest.param(clusterset_pod_key, "db-0.east.db.shop.xyz", None,
                     id="clusterset-not-svc"),
        pytest.param(clusterset_pod_key, "east.db.shop.svc", None, id="clusterset-too-short"),
    ],
)
def test_pod_keys(parse: Any, name: str, expected: Any) -> None:
    assert parse(rel(name)) == expected


def test_both_layouts_find_the_same_pod() -> None:
    table = pod_table([headless_gs(PODS)], VIPS)
    want = PodAddresses(("10.96.1.11",), ("fd00::1:11",))
    assert lookup_pod(table, global_pod_key(rel("db-1.db.shop.east"))) == want
    assert lookup_pod(table, clusterset_pod_key(rel("db-1.east.db.shop.svc"))) == want
    assert lookup_pod(table, global_pod_key(rel("db-9.db.shop.west"))) is None  # not listed
    assert lookup_pod(table, global_pod_key(rel("db-1.db.shop.west"))) is None
    assert lookup_pod(table, None) is None


def answers(snap: Snapshot, name: str) -> tuple[str, ...]:
    data = snap.names.get(labels_of(name))
    assert data is not None, name
    return data.a + data.aaaa


def test_snapshot_names_each_pod_and_the_service_gives_them_all() -> None:
    snap = build_snapshot([headless_gs(PODS)], CONFIG, vips=VIPS)
    assert answers(snap, "db-0.db.shop.east.global") == ("10.96.1.10",)
    assert answers(snap, "db-1.db.shop.east.global") == ("10.96.1.11", "fd00::1:11")
    assert answers(snap, "db-0.db.shop.west.global") == ("10.96.2.10",)
    assert labels_of("db-9.db.shop.west.global") not in snap.names
    assert answers(snap, "db.shop.global") == (
        "10.96.1.10", "10.96.1.11", "10.96.2.10", "fd00::1:11")
    assert answers(snap, "db.shop.east.global") == ("10.96.1.10", "10.96.1.11", "fd00::1:11")
    srv = snap.names[labels_of("_sql._tcp.db.shop.global")].srv
    assert sorted(b".".join(s.target).decode() for s in srv) == [
        "db-0.db.shop.east.global", "db-0.db.shop.west.global", "db-1.db.shop.east.global"]
    assert {s.port for s in srv} == {26257}


def test_a_pod_that_leaves_leaves_dns_with_the_next_snapshot() -> None:
    snap = build_snapshot([headless_gs({"east": ["db-0"], "west": ["db-0"]})], CONFIG,
                          vips=VIPS)
    assert labels_of("db-1.db.shop.east.global") not in snap.names
    assert answers(snap, "db.shop.global") == ("10.96.1.10", "10.96.2.10")


def test_before_any_pod_service_exists_the_merged_vip_answers() -> None:
    snap = build_snapshot([headless_gs(PODS)], CONFIG, vips={})
    assert answers(snap, "db.shop.global") == ("10.96.0.1",)
    assert labels_of("db-0.db.shop.east.global") not in snap.names


@pytest_asyncio.fixture
async def headless_live() -> AsyncIterator[DnsServer]:
    snap = build_snapshot([headless_gs(PODS)], CONFIG, vips=VIPS, generation=1, serial=1)
    async with DnsServer(Responder(snap), "127.0.0.1", 0) as server:
        yield server


async def test_dnslib_client(headless_live: DnsServer) -> None:
    packet = DNSRecord.question("db-0.db.shop.west.global", "A").pack()
    reply = DNSRecord.parse(await udp_ask(headless_live.port, packet))
    assert [str(r.rdata) for r in reply.rr] == ["10.96.2.10"]
    assert reply.header.aa == 1


@pytest.mark.parametrize(
    ("name", "qtype", "status", "lines"),
    [
        pytest.param("db-1.db.shop.east.global", "A", "NOERROR", ["10.96.1.11"], id="pod-a"),
        pytest.param("db-1.db.shop.east.global", "AAAA", "NOERROR", ["fd00::1:11"],
                     id="pod-aaaa"),
        pytest.param("db.shop.global", "A", "NOERROR",
                     ["10.96.1.10", "10.96.1.11", "10.96.2.10"], id="every-pod"),
        pytest.param("_sql._tcp.db.shop.global", "SRV", "NOERROR",
                     ["0 100 26257 db-0.db.shop.east.global.",
                      "0 100 26257 db-1.db.shop.east.global.",
                      "0 100 26257 db-0.db.shop.west.global."], id="srv-per-pod"),
        pytest.param("db-9.db.shop.west.global", "A", "NXDOMAIN", [], id="unlisted-pod"),
    ],
)
async def test_dig(headless_live: DnsServer, name: str, qtype: str, status: str,
                   lines: list[str]) -> None:
    dig = _need("dig")
    out = await asyncio.to_thread(
        run, dig, "@127.0.0.1", "-p", str(headless_live.port), name, qtype, "+norecurse",
        "+time=2", "+tries=1")
    assert f"status: {status}" in out
    answer = [line.split("\t")[-1] for line in out.splitlines()
              if line and not line.startswith(";") and f"\t{qtype}\t" in line]
    assert sorted(answer) == sorted(lines)


def test_clusterset_headless_names() -> None:
    """The MCS DNS schema's headless form, from the same pods: each pod under
    ``<pod>.<cluster>.<svc>.<ns>.svc.clusterset.local``, the service's name gives every
    pod, and its SRV records name each pod in that form."""
    snap = build_snapshot([headless_gs(PODS)], CONFIG, vips=VIPS)
    assert answers(snap, "db-1.east.db.shop.svc.clusterset.local") == (
        "10.96.1.11", "fd00::1:11")
    assert answers(snap, "db-0.west.db.shop.svc.clusterset.local") == ("10.96.2.10",)
    assert labels_of("db-9.west.db.shop.svc.clusterset.local") not in snap.names
    assert answers(snap, "db.shop.svc.clusterset.local") == (
        "10.96.1.10", "10.96.1.11", "10.96.2.10", "fd00::1:11")
    srv = snap.names[labels_of("_sql._tcp.db.shop.svc.clusterset.local")].srv
    assert sorted(b".".join(s.target).decode() for s in srv) == [
        "db-0.east.db.shop.svc.clusterset.local", "db-0.west.db.shop.svc.clusterset.local",
        "db-1.east.db.shop.svc.clusterset.local"]


async def test_dig_clusterset_pod(headless_live: DnsServer) -> None:
    dig = _need("dig")
    out = await asyncio.to_thread(
        run, dig, "@127.0.0.1", "-p", str(headless_live.port),
        "db-0.east.db.shop.svc.clusterset.local", "A", "+norecurse", "+time=2", "+tries=1")
    assert "status: NOERROR" in out
    assert "\t10.96.1.10" in out
