"""`isthmus check` passes on a healthy rig and names each injected fault."""

from __future__ import annotations

from functools import partial

import pytest
from scenario_driver import SLACK_SECONDS, ClusterSet, Unsupported, first, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.controlplane]


def test_check_passes_on_a_healthy_rig(mesh: ClusterSet) -> None:
    for cluster in mesh.clusters:
        # Links turn Ready once the first catalog arrives: wait for that, not for a time.
        result = first(f"isthmus check to pass in {cluster}", partial(mesh.check, cluster),
                       lambda r: r.code == 0)
        assert "ERROR" not in result.output and "WARNING" not in result.output, result.output
        for peer in mesh.clusters:
            if peer != cluster:
                assert f"Link {peer}: ready" in result.output, result.output


def test_status_lists_the_peers_and_imported_services(mesh: ClusterSet) -> None:
    west, east, central = mesh.clusters
    out = first("isthmus status to list echo.shop.global", partial(mesh.status, west),
                lambda s: "echo.shop.global" in s)
    assert east in out and central in out, out


def test_check_names_a_gateway_that_is_down(mesh: ClusterSet) -> None:
    west, east = mesh.clusters[:2]
    mesh.kill_gateway(east)
    try:
        result = mesh.check(east)
        assert result.code == 1, result.output
        assert "Gateway isthmus-system/isthmus-gateway" in result.output
        assert "down" in result.output, result.output
        # A peer sees the same fault as its Link to east, which the catalog reaches through
        # east's gateway.
        seen = first(f"{west}'s check to report its Link to {east}", partial(mesh.check, west),
                     lambda r: r.code != 0 and f"Link {east}: not ready" in r.output)
        assert seen.code == 3, seen.output
    finally:
        mesh.restore_gateway(east)
    wait_for("isthmus check to pass in east and west again",
             lambda: mesh.check(east).code == 0 and mesh.check(west).code == 0,
             timeout=SLACK_SECONDS)


def test_check_names_a_removed_stub_zone(mesh: ClusterSet) -> None:
    west = mesh.clusters[0]
    if not mesh.has_coredns(west):
        pytest.skip(f"{mesh.rig} rig has no CoreDNS (no ConfigMap kube-system/coredns): its "
                    "namespaces resolve through isthmus-dns directly, so there is no stub "
                    "zone to remove")
    try:
        mesh.remove_stub_zone(west)
    except Unsupported as exc:
        pytest.skip(str(exc))
    try:
        result = mesh.check(west)
        assert result.code == 1, result.output
        assert "CoreDNS kube-system/coredns" in result.output
        assert "stub zone is gone" in result.output
    finally:
        mesh.restore_stub_zone(west)
    assert mesh.check(west).code == 0
