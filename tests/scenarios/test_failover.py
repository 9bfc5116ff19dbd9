"""A service exported by two clusters: kill one cluster's gateway under traffic, and bring
it back."""

from __future__ import annotations

import time

import pytest
from scenario_driver import (
    FAILOVER_SECONDS,
    GATEWAY_SHUTDOWN_SECONDS,
    PROBE_INTERVAL_SECONDS,
    SLACK_SECONDS,
    CallResult,
    ClusterSet,
    condition,
    wait_for,
)

pytestmark = [pytest.mark.netns, pytest.mark.controlplane]

HOST = "echo.shop.global"


def _answered(results: list[CallResult], cluster: str, since: float) -> bool:
    return any(r.ok and r.cluster == cluster and r.t > since for r in results)


def test_gateway_killed_then_restored_under_traffic(mesh: ClusterSet) -> None:
    west, east, central = mesh.clusters
    traffic = mesh.start_traffic(west, HOST)
    try:
        start = time.time()
        wait_for("traffic to reach east and central", lambda: _answered(
            traffic.results(), east, start) and _answered(traffic.results(), central, start))

        killed = time.time()
        mesh.kill_gateway(east)
        try:
            # no call fails after the failover time; and once a gracefully stopped gateway
            # has stopped serving, every answer comes from the other cluster
            settled = killed + GATEWAY_SHUTDOWN_SECONDS + FAILOVER_SECONDS
            wait_for("25 calls after the failover time", lambda: sum(
                r.t > settled for r in traffic.results()) >= 25, timeout=SLACK_SECONDS)
            after = [r for r in traffic.results() if r.t > killed + FAILOVER_SECONDS]
            assert all(r.ok for r in after), [r.error for r in after if not r.ok]
            assert {r.cluster for r in after if r.t > settled} == {central}
        finally:
            mesh.restore_gateway(east)
        back = time.time()
        wait_for("traffic to return to east", lambda: _answered(traffic.results(), east, back),
                 timeout=PROBE_INTERVAL_SECONDS + SLACK_SECONDS)
    finally:
        results = traffic.stop()
    window = [r for r in results if killed <= r.t <= killed + FAILOVER_SECONDS]
    late = [r for r in results if r.t > killed + FAILOVER_SECONDS]
    print(f"\n[failover] {len(results)} calls; {sum(not r.ok for r in window)} of "
          f"{len(window)} failed within {FAILOVER_SECONDS:.0f}s of the kill; "
          f"{sum(not r.ok for r in late)} of {len(late)} failed after it")
    assert all(r.ok for r in late), [r.error for r in late if not r.ok][:5]
    before = [r for r in results if r.t < killed]
    assert all(r.ok for r in before), [r.error for r in before if not r.ok][:5]


def test_mirrors_killed_under_traffic(mesh: ClusterSet) -> None:
    """The data path does not need the mirrors: with the caller's and an exporter's mirror
    killed, calls go on; restarted, they recover the links and nothing flaps."""
    west, east, central = mesh.clusters
    traffic = mesh.start_traffic(west, HOST)
    try:
        start = time.time()
        wait_for("traffic to reach east and central", lambda: _answered(
            traffic.results(), east, start) and _answered(traffic.results(), central, start))
        for cluster in (west, east):
            mesh.kill_mirror(cluster)
        try:
            killed = time.time()
            wait_for("30 calls with both mirrors down", lambda: sum(
                r.t > killed for r in traffic.results()) >= 30)
        finally:
            for cluster in (west, east):
                mesh.restore_mirror(cluster)
        wait_for(f"{west}'s Links to be ready again", lambda: all(
            (condition(mesh.get(west, f"/apis/isthmus.io/v1alpha1/links/{peer}"), "Ready")
             or {}).get("status") == "True" for peer in (east, central)))
        back = time.time()
        wait_for("calls answered by east and central after the restart", lambda: _answered(
            traffic.results(), east, back) and _answered(traffic.results(), central, back))
    finally:
        results = traffic.stop()
    failed = [r for r in results if not r.ok]
    print(f"\n[mirrors] {len(results)} calls, {len(failed)} failed")
    assert not failed, [r.error for r in failed][:5]
