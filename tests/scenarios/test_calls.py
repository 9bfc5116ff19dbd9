"""Calls across clusters by `.global` name, over HTTP, gRPC (unary and streaming) and raw TCP,
from a client inside one cluster to the echo workload of the others; pinned names; the mesh."""

from __future__ import annotations

from collections import Counter
from functools import partial

import pytest
from scenario_driver import CallResult, ClusterSet, first, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.controlplane]

HOST = "echo.shop.global"


def ok(call: CallResult) -> CallResult | None:
    return call if call.ok else None


def succeeded(call: CallResult) -> bool:
    return call.ok


def test_http_by_global_name(mesh: ClusterSet) -> None:
    west, east, central = mesh.clusters
    answer = wait_for("an HTTP answer", lambda: ok(mesh.call_http(west, HOST)))
    assert answer.cluster in {east, central}
    assert answer.detail["service"] == "echo"


def test_grpc_unary_and_streaming_by_global_name(mesh: ClusterSet) -> None:
    west, east, central = mesh.clusters
    answer = wait_for("a gRPC answer", lambda: ok(mesh.call_grpc(west, HOST, count=5)))
    cluster = answer.cluster
    assert cluster in {east, central}
    assert answer.detail["unary"] == f"{cluster}:ping"
    assert answer.detail["stream"] == [f"{cluster}:{i}" for i in range(5)]


def test_tcp_echo_by_global_name(mesh: ClusterSet) -> None:
    west = mesh.clusters[0]
    answer = wait_for("a TCP echo", lambda: ok(mesh.call_tcp(west, HOST)))
    assert answer.detail["echoed"] > 0


def test_name_resolves_to_the_global_service_vip(mesh: ClusterSet) -> None:
    west = mesh.clusters[0]
    gs = wait_for("GlobalService shop/echo with a VIP", lambda: mesh.get(
        west, "/apis/isthmus.io/v1alpha1/namespaces/shop/globalservices/echo"))
    vips = set((gs.get("status") or {}).get("vips") or [])
    addresses = wait_for(f"{HOST} to resolve", lambda: mesh.resolve(west, HOST))
    assert vips and set(addresses) <= vips


def test_unknown_name_does_not_resolve(mesh: ClusterSet) -> None:
    west = mesh.clusters[0]
    assert mesh.resolve(west, "nobody.shop.global") == []
    failed = mesh.call_http(west, "nobody.shop.global")
    assert not failed.ok


def test_a_service_exported_by_two_clusters_reaches_both(mesh: ClusterSet) -> None:
    west, east, central = mesh.clusters
    seen: Counter[str | None] = Counter()

    def both() -> bool:
        answer = mesh.call_http(west, HOST)
        assert answer.ok, answer.error
        seen[answer.cluster] += 1
        return {east, central} <= set(seen)

    wait_for("answers from east and central", both, interval=0.1)
    assert set(seen) == {east, central}, seen


@pytest.mark.parametrize("index", [1, 2], ids=["second-cluster", "third-cluster"])
def test_pinned_name_reaches_only_that_cluster(mesh: ClusterSet, index: int) -> None:
    west, target = mesh.clusters[0], mesh.clusters[index]
    pinned = f"echo.shop.{target}.global"
    wait_for(f"{pinned} to answer", lambda: ok(mesh.call_http(west, pinned)))
    answers = [mesh.call_http(west, pinned) for _ in range(10)]
    assert all(a.ok for a in answers), [a.error for a in answers if not a.ok]
    assert {a.cluster for a in answers} == {target}
    streamed = wait_for("a pinned gRPC answer", lambda: ok(mesh.call_grpc(west, pinned)))
    assert streamed.cluster == target and streamed.detail["stream"][0] == f"{target}:0"


def test_three_clusters_full_mesh(mesh: ClusterSet) -> None:
    """Every cluster reaches every other one, pinned, over HTTP and TCP; and by the shared
    name it reaches one of its peers."""
    for src in mesh.clusters:
        peers = [c for c in mesh.clusters if c != src]
        for dst in peers:
            pinned = f"echo.shop.{dst}.global"
            answer = first(f"{src} -> {pinned}", partial(mesh.call_http, src, pinned), succeeded)
            assert answer.cluster == dst
            first(f"{src} -> {pinned} over TCP", partial(mesh.call_tcp, src, pinned), succeeded)
        shared = first(f"{src} -> {HOST}", partial(mesh.call_http, src, HOST), succeeded)
        assert shared.cluster in peers
