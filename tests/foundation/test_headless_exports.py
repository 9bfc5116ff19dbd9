"""build_exports for a headless Service: which ready endpoints get a per-pod name, and why
the others do not (isthmus.headless)."""

from __future__ import annotations

from typing import Any

import pytest

from isthmus.exports import build_exports
from isthmus.headless import HeadlessPod, HeadlessPods, headless_pods

EXPORTED = {"isthmus.io/export": "true"}


def svc(name: str = "db", cluster_ip: str = "None") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "labels": EXPORTED},
        "spec": {"clusterIP": cluster_ip, "ports": [{"name": "sql", "port": 26257}]},
    }


def ep(address: str, hostname: Any = None, ready: bool = True,
       terminating: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": [address],
                           "conditions": {"ready": ready, "terminating": terminating}}
    if hostname is not None:
        out["hostname"] = hostname
    return out


def eps(*endpoints: dict[str, Any], name: str = "db-x", port: int = 26257) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": "db"}},
        "ports": [{"name": "sql", "port": port}],
        "endpoints": list(endpoints),
    }


def pod(hostname: str, address: str) -> HeadlessPod:
    return HeadlessPod(hostname=hostname, address=address, ports={26257: 26257})


@pytest.mark.parametrize(
    ("slices", "expected"),
    [
        pytest.param([eps(ep("10.0.0.1", "db-0"), ep("10.0.0.2", "db-1"))],
                     HeadlessPods(pods=(pod("db-0", "10.0.0.1"), pod("db-1", "10.0.0.2"))),
                     id="statefulset-pods"),
        pytest.param([eps(ep("10.0.0.1", "db-0"), ep("10.0.0.2", "db-1", ready=False),
                          ep("10.0.0.3", "db-2", terminating=True))],
                     HeadlessPods(pods=(pod("db-0", "10.0.0.1"),)),
                     id="only-ready-not-terminating"),
        pytest.param([eps(ep("10.0.0.1", "db-0"), ep("10.0.0.9"))],
                     HeadlessPods(pods=(pod("db-0", "10.0.0.1"),), without_hostname=1),
                     id="no-hostname-counted-not-named"),
        pytest.param([eps(ep("10.0.0.1", "DB_0"), ep("10.0.0.2", "db-1"))],
                     HeadlessPods(pods=(pod("db-1", "10.0.0.2"),),
                                  refused=("hostname 'DB_0' is not a DNS label",)),
                     id="bad-hostname"),
        pytest.param([eps(ep("10.0.0.1", "a" * 64))],
                     HeadlessPods(refused=(f"hostname {'a' * 64!r} is not a DNS label",)),
                     id="hostname-too-long"),
        pytest.param([eps(ep("10.0.0.1", "db.0"))],
                     HeadlessPods(refused=("hostname 'db.0' is not a DNS label",)),
                     id="hostname-with-dot"),
        pytest.param([eps(ep("10.0.0.1", 7))],
                     HeadlessPods(refused=("hostname '7' is not a DNS label",)),
                     id="hostname-not-a-string"),
        pytest.param([eps(ep("10.0.0.1", "db-0"), ep("10.0.0.2", "db-0"), ep("10.0.0.3", "db-1"))],
                     HeadlessPods(pods=(pod("db-1", "10.0.0.3"),), refused=(
                         "hostname 'db-0' is claimed by 2 endpoints (10.0.0.1, 10.0.0.2)",)),
                     id="duplicate-hostname-refused-for-both"),
        pytest.param([eps(ep("10.0.0.1", "db-0"), name="db-a"),
                      eps(ep("10.0.0.1", "db-0"), name="db-b")],
                     HeadlessPods(pods=(pod("db-0", "10.0.0.1"),)),
                     id="same-endpoint-in-two-slices-is-one-pod"),
        pytest.param([eps({"addresses": [], "hostname": "db-0"})], HeadlessPods(),
                     id="no-address-ignored"),
    ],
)
def test_headless_pods(slices: list[dict[str, Any]], expected: HeadlessPods) -> None:
    exported = build_exports([svc()], slices)[("shop", "db")]
    assert exported.headless
    assert exported.pods == expected


def test_limit_keeps_hostname_order_and_refuses_the_rest() -> None:
    endpoints = [ep(f"10.0.0.{i}", f"db-{i}") for i in range(5)]
    exported = build_exports([svc()], [eps(*endpoints)], max_pods=3)[("shop", "db")]
    assert [p.hostname for p in exported.pods.pods] == ["db-0", "db-1", "db-2"]
    assert exported.pods.refused == (
        "hostname 'db-3' is over the limit of 3 pods per headless service",
        "hostname 'db-4' is over the limit of 3 pods per headless service",
    )
    # Every ready endpoint stays a backend of the merged and pinned names.
    assert exported.ready_endpoints == 5


def test_a_clusterip_service_has_no_named_pods() -> None:
    exported = build_exports([svc(cluster_ip="10.96.0.7")],
                             [eps(ep("10.0.0.1", "db-0"))])[("shop", "db")]
    assert not exported.headless
    assert exported.pods == HeadlessPods()


def test_find() -> None:
    pods = headless_pods([({80: 8080}, ep("10.0.0.1", "db-0"))])
    assert pods.find("db-0") == HeadlessPod(hostname="db-0", address="10.0.0.1",
                                            ports={80: 8080})
    assert pods.find("db-1") is None
