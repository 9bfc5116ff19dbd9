"""Which Services lend their ClusterIPs to a .global name (pure; table tests)."""

from __future__ import annotations

from typing import Any

import pytest
from dns_fixtures import global_service

from isthmus.dns.mirror_vips import mirror_vips, slim
from isthmus.dns.snapshot import build_snapshot

OURS = {"isthmus.io/mirror": "true", "app.kubernetes.io/managed-by": "isthmus",
        "isthmus.io/global-service": "users"}


def svc(labels: dict[str, str], cluster_ip: Any = "10.96.0.10",
        cluster_ips: list[str] | None = None, name: str = "users-global") -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "ClusterIP", "ports": [{"port": 80}]}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    if cluster_ips is not None:
        spec["clusterIPs"] = cluster_ips
    return {"metadata": {"name": name, "namespace": "shop", "labels": labels,
                         "resourceVersion": "7", "uid": "u", "annotations": {"a": "b"}},
            "spec": spec}


@pytest.mark.parametrize(("service", "expected"), [
    (svc(OURS), (("shop", "users", "", ""), ("10.96.0.10",))),
    (svc({**OURS, "isthmus.io/pinned-cluster": "east"}),
     (("shop", "users", "east", ""), ("10.96.0.10",))),
    (svc(OURS, cluster_ips=["10.96.0.10", "fd00::a"]),
     (("shop", "users", "", ""), ("10.96.0.10", "fd00::a"))),
    (svc({}), None),  # a Service isthmus does not own, whatever its name
    (svc({**OURS, "isthmus.io/mirror": "false"}), None),
    (svc({**OURS, "app.kubernetes.io/managed-by": "helm"}), None),
    (svc({k: v for k, v in OURS.items() if k != "isthmus.io/global-service"}), None),
    (svc(OURS, cluster_ip="None"), None),  # headless
    (svc(OURS, cluster_ip=None), None),  # not allocated yet
    (svc(OURS, cluster_ip=""), None),
    (svc(OURS, cluster_ip="10.96.0.300"), None),
    ({"metadata": {"name": "x"}}, None),
])
def test_which_services_count(service: dict[str, Any], expected: Any) -> None:
    assert mirror_vips(service) == expected


def test_slim_keeps_what_is_read() -> None:
    kept = slim(svc(OURS, cluster_ips=["10.96.0.10"]))
    assert kept == {"metadata": {"name": "users-global", "namespace": "shop",
                                 "resourceVersion": "7", "labels": OURS},
                    "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]}}
    assert mirror_vips(kept) == mirror_vips(svc(OURS, cluster_ips=["10.96.0.10"]))


def _names(services: list[Any], vips: dict[Any, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    snap = build_snapshot(services, vips=vips)
    names = {".".join(x.decode() for x in k): d.a + d.aaaa for k, d in snap.names.items()
             if not k[0].startswith(b"_") and k[-1] == b"global"}
    # the clusterset.local name answers what the merged .global name answers
    for name, ips in names.items():
        if name.count(".") == 2:
            svc, ns, _ = name.split(".")
            assert snap.names[(svc.encode(), ns.encode(), b"svc", b"clusterset",
                               b"local")].a == ips
    return names


@pytest.mark.parametrize(("status", "vips", "expected"), [
    # no status yet: the Services alone answer
    ([], {("shop", "users", "", ""): ("10.96.0.10",), ("shop", "users", "east", ""): ("10.96.0.11",)},
     {"users.shop.global": ("10.96.0.10",), "users.shop.east.global": ("10.96.0.11",)}),
    # the Service wins over a status that lags behind it (a re-created Service)
    (["10.96.9.9"], {("shop", "users", "", ""): ("10.96.0.10",)},
     {"users.shop.global": ("10.96.0.10",), "users.shop.east.global": ()}),
    # no Service known: the status, as before
    (["10.96.9.9"], {}, {"users.shop.global": ("10.96.9.9",), "users.shop.east.global": ()}),
    # a pinned Service of a cluster the GlobalService does not name adds nothing
    ([], {("shop", "users", "north", ""): ("10.96.0.12",)},
     {"users.shop.global": (), "users.shop.east.global": ()}),
    # another GlobalService's or another namespace's Services are not borrowed
    ([], {("shop", "orders", "", ""): ("10.96.0.13",), ("other", "users", "", ""): ("10.96.0.14",)},
     {"users.shop.global": (), "users.shop.east.global": ()}),
])
def test_snapshot_takes_vips_from_services_first(
        status: list[str], vips: dict[Any, tuple[str, ...]],
        expected: dict[str, tuple[str, ...]]) -> None:
    gs = global_service("users", "shop", status, endpoints=["east"])
    assert _names([gs], vips) == expected
