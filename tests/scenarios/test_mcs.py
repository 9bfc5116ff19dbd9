"""The Multi-Cluster Services API on a rig: a Service exported by a ServiceExport (no isthmus
label) is reached from another cluster by its `clusterset.local` name, and the importing
cluster shows it as a ServiceImport."""

from __future__ import annotations

import pytest
from scenario_driver import SLACK_SECONDS, UNEXPORT_SECONDS, CallResult, ClusterSet, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.controlplane]

MCS = "/apis/multicluster.x-k8s.io/v1alpha1/namespaces/shop"


def ok(call: CallResult) -> CallResult | None:
    return call if call.ok else None


def _condition(obj: dict[str, object] | None, kind: str) -> str | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:  # type: ignore[attr-defined]
        if c.get("type") == kind:
            return str(c.get("status"))
    return None


def test_service_export_reaches_the_clusterset_name(mesh: ClusterSet) -> None:
    west, east = mesh.clusters[0], mesh.clusters[1]
    name = "by-mcs"
    host = f"{name}.shop.svc.clusterset.local"
    mesh.deploy_echo(east, "shop", name, export=False)
    mesh.apply(east, {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
                      "metadata": {"name": name, "namespace": "shop"}})
    try:
        answer = wait_for(f"{host} to answer from {west}", lambda: ok(mesh.call_http(west, host)))
        assert answer.cluster == east and answer.detail.get("service") == name, answer.detail
        imported = wait_for("the ServiceImport in west", lambda: (
            si := mesh.get(west, f"{MCS}/serviceimports/{name}")) and si["spec"].get("ips") and si)
        assert imported["spec"]["type"] == "ClusterSetIP"
        assert set(mesh.resolve(west, host)) <= set(imported["spec"]["ips"])
        export = wait_for("the ServiceExport Valid and Ready", lambda: (
            se := mesh.get(east, f"{MCS}/serviceexports/{name}"))
            and _condition(se, "Valid") == "True" and _condition(se, "Ready") == "True" and se)
        assert _condition(export, "Conflict") in (None, "False"), export
    finally:
        mesh.delete(east, f"{MCS}/serviceexports/{name}")
    wait_for(f"{host} to leave DNS", lambda: not mesh.resolve(west, host),
             timeout=UNEXPORT_SECONDS + SLACK_SECONDS)
    wait_for("the ServiceImport removed", lambda: mesh.get(
        west, f"{MCS}/serviceimports/{name}") is None, timeout=SLACK_SECONDS)
