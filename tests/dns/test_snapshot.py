"""build_snapshot is pure; the holder swaps and tells listeners."""

from __future__ import annotations

import pytest
from dns_fixtures import CONFIG, SERVICES, global_service

from isthmus.dns.snapshot import (
    SnapshotConfig,
    SnapshotHolder,
    build_snapshot,
    labels_of,
    text_of,
)


def names(snapshot_names: object) -> set[str]:
    return {text_of(n) for n in snapshot_names}  # type: ignore[attr-defined]


def test_names_entries_and_nonterminals() -> None:
    snap = build_snapshot(SERVICES[:1], CONFIG)
    assert names(snap.names) == {
        "users.shop.global.",
        "users.shop.east.global.", "users.shop.west.global.", "users.shop.central.global.",
        "_http._tcp.users.shop.global.", "_grpc._tcp.users.shop.global.",
        # the MCS zone: no per-cluster names there
        "users.shop.svc.clusterset.local.", "dns-version.clusterset.local.",
        "_http._tcp.users.shop.svc.clusterset.local.",
        "_grpc._tcp.users.shop.svc.clusterset.local.",
    }
    assert names(snap.nonterminals) == {
        "shop.global.", "_tcp.users.shop.global.",
        "shop.east.global.", "shop.west.global.", "shop.central.global.",
        "east.global.", "west.global.", "central.global.",
        "svc.clusterset.local.", "shop.svc.clusterset.local.",
        "_tcp.users.shop.svc.clusterset.local.",
    }
    users = snap.names[labels_of("users.shop.global")]
    assert (users.a, users.aaaa, users.ttl) == (("10.96.0.10",), ("fd00::10",), 5)
    west = snap.names[labels_of("users.shop.west.global")]
    assert (west.a, west.aaaa) == (("10.96.2.10",), ("fd00::2:10",))
    central = snap.names[labels_of("users.shop.central.global")]  # endpoint, no pinned VIP
    assert (central.a, central.aaaa) == ((), ())
    srv = snap.names[labels_of("_grpc._tcp.users.shop.global")].srv
    assert [(s.port, text_of(s.target)) for s in srv] == [(9090, "users.shop.global.")]


def test_stale_service_gets_the_stale_ttl() -> None:
    snap = build_snapshot(SERVICES, CONFIG)
    assert snap.names[labels_of("orders.shop.global")].ttl == CONFIG.stale_ttl
    assert snap.names[labels_of("orders.shop.east.global")].ttl == CONFIG.stale_ttl
    assert snap.names[labels_of("users.shop.global")].ttl == CONFIG.ttl


def test_several_zones_serve_the_same_names_with_their_own_targets() -> None:
    config = SnapshotConfig(zones=("global.", "mesh.example."))
    snap = build_snapshot(SERVICES[:1], config)
    assert labels_of("users.shop.mesh.example") in snap.names
    srv = snap.names[labels_of("_http._tcp.users.shop.mesh.example")].srv[0]
    assert text_of(srv.target) == "users.shop.mesh.example."
    zone = snap.zone_for(labels_of("x.users.shop.mesh.example"))
    assert zone is not None and text_of(zone.origin) == "mesh.example."
    assert snap.zone_for(labels_of("example.com")) is None


def test_bad_hosts_and_conflicts_are_rejected_one_by_one() -> None:
    good = global_service("a", "ns1", ["10.0.0.1"])
    three_labels = global_service("b", "ns1", ["10.0.0.2"], hosts=["b.ns1.west.global"])
    elsewhere = global_service("c", "ns1", ["10.0.0.3"], hosts=["c.ns1.example.com"])
    duplicate = global_service("z", "ns2", ["10.0.0.4"], hosts=["a.ns1.global"])
    snap = build_snapshot([duplicate, three_labels, good, elsewhere], CONFIG)
    assert snap.names[labels_of("a.ns1.global")].a == ("10.0.0.1",)  # first by (ns, name)
    assert len(snap.rejected) == 3
    assert any("already served from ns1/a" in r for r in snap.rejected)
    assert any("b.ns1.west.global" in r for r in snap.rejected)


@pytest.mark.parametrize(("hosts", "rejected"), [
    # What the mirror writes: the merged name and each exporting cluster's pinned name.
    (["u.shop.global", "u.shop.east.global", "u.shop.west.global"], 0),
    (["u.shop.global", "u.shop.north.global"], 1),  # north exports nothing here
    (["u.shop.global", "v.shop.east.global"], 1),  # pinned name of another service
    (["u.shop.east.global"], 1),  # a pinned name without its merged name
])
def test_pinned_hosts_of_exporting_clusters_are_accepted(hosts: list[str], rejected: int) -> None:
    svc = global_service("u", "shop", ["10.0.0.9"], hosts=hosts, endpoints=["east", "west"],
                         cluster_vips={"east": ["10.0.1.1"], "west": ["10.0.1.2"]})
    snap = build_snapshot([svc], CONFIG)
    assert len(snap.rejected) == rejected, snap.rejected
    if not rejected:
        assert snap.names[labels_of("u.shop.east.global")].a == ("10.0.1.1",)


def test_build_is_pure() -> None:
    assert build_snapshot(SERVICES, CONFIG, serial=7) == build_snapshot(
        list(reversed(SERVICES)), CONFIG, serial=7)


def test_holder_swaps_and_notifies() -> None:
    holder = SnapshotHolder(CONFIG)
    seen: list[int] = []
    holder.subscribe(lambda s: seen.append(s.generation))
    first = holder.update(SERVICES[:1])
    second = holder.update(SERVICES)
    assert seen == [0, 1, 2]
    assert holder.current is second
    assert second.zones[0].serial > first.zones[0].serial  # SOA serial moves forward
