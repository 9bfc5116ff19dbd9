"""Pod targets of headless exports, pure: the inbound side dials exactly the named ready
pod (and refuses anything else, keeping every other refusal), an open stream to a pod
that leaves is revoked, and the outbound side has one route per pod and port."""

from __future__ import annotations

from typing import Any

import pytest
from gw_helpers import gs_endpoint, link, service, snapshot
from test_revocation_rules import MIRROR, NOW, PKI, WEST
from test_route import ident

from isthmus.gateway.revocation import OpenStream, stream_revoked
from isthmus.gateway.route import Dial, Refused, route_inbound
from isthmus.gateway.snapshot import Snapshot
from isthmus.gateway.wire import Status, Target


def headless(name: str = "db", *, export_to: str | None = None) -> dict[str, Any]:
    svc = service("shop", name, 26257, export_to=export_to)
    svc["spec"]["clusterIP"] = "None"
    return svc


def pods_slice(pods: list[tuple[str | None, str]], name: str = "db",
               ready: bool = True) -> dict[str, Any]:
    endpoints = []
    for hostname, address in pods:
        ep: dict[str, Any] = {"addresses": [address], "conditions": {"ready": ready}}
        if hostname is not None:
            ep["hostname"] = hostname
        endpoints.append(ep)
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "shop", "name": f"{name}-abc",
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "endpoints": endpoints,
        "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
    }


def snap(pods: list[tuple[str | None, str]], *, svc: dict[str, Any] | None = None,
         ready: bool = True) -> Snapshot:
    plain = service("shop", "users", 26257)
    return snapshot(services=[svc or headless(), plain],
                    slices=[pods_slice(pods, ready=ready), pods_slice(
                        [("users-0", "10.0.9.1")], name="users")],
                    links=[link("west"), link("central")])


THREE = [("db-0", "10.0.0.10"), ("db-1", "10.0.0.11"), ("db-2", "10.0.0.12")]


@pytest.mark.parametrize(
    ("snapshot_", "raw", "expected"),
    [
        pytest.param(snap(THREE), b"db-1.db.shop:26257", ("10.0.0.11", 8080), id="exact-pod"),
        pytest.param(snap(THREE), b"db-2.db.shop:26257", ("10.0.0.12", 8080), id="other-pod"),
        pytest.param(snap(THREE), b"db-3.db.shop:26257",
                     (Status.UNKNOWN_TARGET, "not_a_ready_pod"), id="no-such-pod"),
        pytest.param(snap(THREE, ready=False), b"db-1.db.shop:26257",
                     (Status.UNKNOWN_TARGET, "not_a_ready_pod"), id="pod-not-ready"),
        pytest.param(snap([("db-0", "10.0.0.10"), ("db-0", "10.0.0.11")]), b"db-0.db.shop:26257",
                     (Status.UNKNOWN_TARGET, "not_a_ready_pod"), id="duplicate-hostname"),
        pytest.param(snap([(None, "10.0.0.10")]), b"db-0.db.shop:26257",
                     (Status.UNKNOWN_TARGET, "not_a_ready_pod"), id="no-hostname"),
        pytest.param(snap(THREE), b"db-1.db.shop:80",
                     (Status.UNKNOWN_TARGET, "unknown_port"), id="unknown-port"),
        pytest.param(snap(THREE), b"users-0.users.shop:26257",
                     (Status.UNKNOWN_TARGET, "not_headless"), id="service-not-headless"),
        pytest.param(snap(THREE), b"db-1.nope.shop:26257",
                     (Status.UNKNOWN_TARGET, "unknown_service"), id="not-exported"),
        pytest.param(snap(THREE, svc=headless(export_to="central")), b"db-1.db.shop:26257",
                     (Status.FORBIDDEN, "export_to_excludes_caller"), id="export-to"),
        pytest.param(snap([("db-0", "169.254.169.254")]), b"db-0.db.shop:26257",
                     (Status.UNKNOWN_TARGET, "backend_refused"), id="backend-policy-kept"),
        pytest.param(snap(THREE), b"db.shop:26257", ("10.0.0.10", 8080),
                     id="service-name-still-load-balances"),
    ],
)
def test_route_pod(snapshot_: Snapshot, raw: bytes, expected: tuple[Any, Any]) -> None:
    decision = route_inbound(snapshot_, ident(), raw)
    if isinstance(expected[0], Status):
        assert isinstance(decision, Refused), decision
        assert (decision.status, decision.reason) == expected
    else:
        assert isinstance(decision, Dial), decision
        assert decision.addresses[0] == expected
        if raw.startswith(b"db-"):
            assert decision.addresses == (expected,)  # that pod, and only that pod


POD = Target("db", "shop", 26257, "db-1")


@pytest.mark.parametrize(
    ("snapshot_", "stream", "expected"),
    [
        pytest.param(snap(THREE), OpenStream(WEST, POD), None, id="pod-still-there"),
        pytest.param(snap([("db-1", "10.0.0.99")]), OpenStream(WEST, POD), None,
                     id="pod-moved-address"),
        pytest.param(snap(THREE[:1]), OpenStream(WEST, POD), "pod_gone", id="scaled-down"),
        pytest.param(snap(THREE, ready=False), OpenStream(WEST, POD), "pod_gone",
                     id="pod-not-ready"),
        pytest.param(snap(THREE, svc=service("shop", "db", 26257)), OpenStream(WEST, POD),
                     "pod_gone", id="no-longer-headless"),
        pytest.param(snap(THREE, svc=headless(export_to="central")), OpenStream(WEST, POD),
                     "export_to_excludes_caller", id="export-to-first"),
        pytest.param(snap(THREE[:1]), OpenStream(WEST, Target("db", "shop", 26257)), None,
                     id="service-stream-untouched"),
        pytest.param(snap(THREE[:1]), OpenStream(MIRROR, Target("catalog")), None,
                     id="catalog-untouched"),
    ],
)
def test_pod_stream_revoked(snapshot_: Snapshot, stream: OpenStream,
                            expected: str | None) -> None:
    assert stream_revoked(snapshot_, PKI.bundle, NOW, stream) == expected


def test_outbound_route_per_pod_and_port() -> None:
    endpoint = gs_endpoint("east", 15443, pinned=[(26257, 20001)])
    endpoint["pods"] = [{"hostname": f"db-{i}", "ports": [{"port": 26257,
                                                           "outboundPort": 20010 + i}]}
                        for i in range(3)]
    gs = {"apiVersion": "isthmus.io/v1alpha1", "kind": "GlobalService",
          "metadata": {"namespace": "shop", "name": "db"},
          "spec": {"hosts": ["db.shop.global", "db.shop.east.global"],
                   "ports": [{"name": "p", "port": 26257, "outboundPort": 20000}],
                   "endpoints": [endpoint]}}
    routes = snapshot(gss=[gs]).outbound
    assert sorted(routes) == [20000, 20001, 20010, 20011, 20012]
    pod = routes[20011]
    assert (pod.target, pod.pinned_cluster, pod.pod) == ("db-1.db.shop:26257", "east", "db-1")
    assert [p.cluster for p in pod.endpoints] == ["east"]
    assert routes[20001].target == "db.shop:26257" and routes[20001].pod is None
