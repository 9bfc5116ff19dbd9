"""A StatefulSet of 3 behind an exported headless Service: from another cluster each pod is
reached by its own name, in the `.global` and in the MCS `clusterset.local` form, and gives
its own answer; the shared name lists every pod; scaling down takes the departed pods'
names out of DNS."""

from __future__ import annotations

import pytest
from scenario_driver import SLACK_SECONDS, UNEXPORT_SECONDS, CallResult, ClusterSet, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.controlplane]


def ok(call: CallResult) -> CallResult | None:
    return call if call.ok else None


def test_each_pod_of_a_statefulset_by_its_name(mesh: ClusterSet) -> None:
    west, east = mesh.clusters[0], mesh.clusters[1]
    name = "db"
    pods = [f"{name}-{i}" for i in range(3)]
    mesh.set_stateful(east, "shop", name, 3)
    try:
        for pod in pods:
            for host in (f"{pod}.{name}.shop.{east}.global",
                         f"{pod}.{east}.{name}.shop.svc.clusterset.local"):
                answer = wait_for(f"{host} to answer from {west}",
                                  lambda h=host: ok(mesh.call_http(west, h)))
                assert (answer.cluster, answer.detail.get("pod")) == (east, pod), answer.detail
        shared = wait_for(f"{name}.shop.global to list the three pods", lambda: (
            a := mesh.resolve(west, f"{name}.shop.global")) and len(set(a)) == 3 and a)
        per_pod = {a for pod in pods
                   for a in mesh.resolve(west, f"{pod}.{name}.shop.{east}.global")}
        assert set(shared) == per_pod

        mesh.set_stateful(east, "shop", name, 1)
        for pod in pods[1:]:
            wait_for(f"{pod} to leave west's DNS", lambda p=pod: not mesh.resolve(
                west, f"{p}.{name}.shop.{east}.global"), timeout=UNEXPORT_SECONDS + SLACK_SECONDS)
        answer = wait_for(f"{pods[0]} still to answer", lambda: ok(
            mesh.call_http(west, f"{pods[0]}.{name}.shop.{east}.global")))
        assert answer.detail.get("pod") == pods[0]
    finally:
        mesh.remove_stateful(east, "shop", name)
    wait_for(f"{name}.shop.global to leave DNS", lambda: not mesh.resolve(
        west, f"{name}.shop.global"), timeout=UNEXPORT_SECONDS + SLACK_SECONDS)
