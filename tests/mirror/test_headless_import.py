"""The import side of a headless export, pure: one Service + EndpointSlice per named pod
(the count per pod is the decision's, docs/decisions/headless-per-pod-names.md), the
GlobalService's per-pod listeners, port recovery, the import limits, and that the slim
caches keep what is written and read."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from test_decisions import _as_served, link, run_desired

from isthmus.exports import build_exports
from isthmus.kube.shapes import decoders
from isthmus.mirror.desired import PortKey
from isthmus.mirror.import_policy import TOO_MANY_PODS, ImportPolicy, admit, demand
from isthmus.mirror.model import CatalogEntry, PeerView, PortSpec
from isthmus.mirror.names import pod_service_name
from isthmus.mirror.plan import plan
from isthmus.mirror.ports import recovered_ports
from isthmus.mirror.projection import SHAPES, project

PORTS = (PortSpec(26257, "sql"), PortSpec(8080, "http"))


def headless(n: int, name: str = "db") -> CatalogEntry:
    return CatalogEntry("shop", name, PORTS, n, headless=True,
                        pods=tuple(f"{name}-{i}" for i in range(n)))


def view(cluster: str, *entries: CatalogEntry) -> PeerView:
    return PeerView(link(cluster), {e.key: e for e in entries}, None)


@pytest.mark.parametrize("n", [pytest.param(n, id=f"{n}-pods") for n in (0, 1, 3, 40)])
def test_objects_written_per_pod(n: int) -> None:
    """What an import of N headless pods writes: the five objects of any import, and two
    per pod (its Service and its EndpointSlice), nothing else."""
    ds = run_desired(view("west", headless(n))).services[("shop", "db")]
    kinds = Counter(kind for kind, _, _ in ds.objects)
    assert len(ds.objects) == 5 + 2 * n
    assert kinds == Counter({"Service": 2 + n, "EndpointSlice": 2 + n, "GlobalService": 1})


def test_each_pod_gets_its_own_service_and_listeners() -> None:
    ds = run_desired(view("west", headless(3)), view("east", headless(2))).services[
        ("shop", "db")]
    gs = ds.objects[("GlobalService", "shop", "db")]
    listeners: list[int] = []
    for endpoint in gs["spec"]["endpoints"]:
        cluster = endpoint["cluster"]
        for pod in endpoint["pods"]:
            name = pod_service_name(pod["hostname"], "db", cluster)
            svc = ds.objects[("Service", "shop", name)]
            sl = ds.objects[("EndpointSlice", "shop", name)]
            assert svc["metadata"]["labels"]["isthmus.io/pod"] == pod["hostname"]
            assert svc["metadata"]["labels"]["isthmus.io/pinned-cluster"] == cluster
            outbound = {p["port"]: p["outboundPort"] for p in pod["ports"]}
            assert {p["port"]: p["targetPort"] for p in svc["spec"]["ports"]} == outbound
            assert sorted(p["port"] for p in sl["ports"]) == sorted(outbound.values())
            listeners.extend(outbound.values())
    assert len(listeners) == (3 + 2) * len(PORTS)
    assert len(set(listeners)) == len(listeners)  # one listener per pod and port
    pinned = [pp["outboundPort"] for e in gs["spec"]["endpoints"] for pp in e["pinnedPorts"]]
    assert not set(pinned) & set(listeners)


def test_a_service_that_is_not_headless_gets_no_pod_objects() -> None:
    plain = CatalogEntry("shop", "db", PORTS, 3)
    ds = run_desired(view("west", plain)).services[("shop", "db")]
    assert len(ds.objects) == 5
    assert "pods" not in ds.objects[("GlobalService", "shop", "db")]["spec"]["endpoints"][0]


def test_per_pod_ports_are_recovered_from_the_global_service() -> None:
    ds = run_desired(view("west", headless(2))).services[("shop", "db")]
    gs = ds.objects[("GlobalService", "shop", "db")]
    found = recovered_ports([gs])
    pods = {k: v for k, v in found.items() if k.pod}
    assert set(pods) == {PortKey("shop", "db", "west", p.port, f"db-{i}")
                         for i in range(2) for p in PORTS}
    assert pods[PortKey("shop", "db", "west", 26257, "db-1")] == next(
        pp["outboundPort"] for pod in gs["spec"]["endpoints"][0]["pods"]
        if pod["hostname"] == "db-1" for pp in pod["ports"] if pp["port"] == 26257)


def test_import_limit_on_named_pods_and_their_ports() -> None:
    policy = ImportPolicy(install_namespace="isthmus-system", max_pods_per_service=3,
                          port_budget=100)
    offered = {("shop", "big"): headless(4, "big"), ("shop", "db"): headless(3)}
    admission = admit(offered, policy, None)
    assert set(admission.entries) == {("shop", "db")}
    assert admission.refused[("shop", "big")].reason == TOO_MANY_PODS
    assert "4 named pods, the limit is 3" in admission.refused[("shop", "big")].message
    assert demand(headless(3)) == (2 + 3) * len(PORTS)


def test_pods_changing_is_a_catalog_change() -> None:
    from isthmus.mirror.import_policy import same_content
    assert not same_content(headless(3), headless(2))
    assert same_content(headless(3), headless(3))


def test_projection_keeps_what_the_pod_objects_need() -> None:
    ds = run_desired(view("west", headless(2))).services[("shop", "db")]
    for ref, want in ds.objects.items():
        slim = project(_as_served(want))
        assert plan({ref: slim}, {ref: want}) == [], ref
        shaped = decoders(SHAPES[ref[0]]).object(json.dumps(_as_served(want)).encode())
        assert project(shaped) == slim, ref


def test_projection_keeps_the_hostnames_export_reads() -> None:
    svc: dict[str, Any] = {"apiVersion": "v1", "kind": "Service",
                           "metadata": {"name": "db", "namespace": "shop",
                                        "labels": {"isthmus.io/export": "true"}},
                           "spec": {"clusterIP": "None", "ports": [{"name": "sql",
                                                                    "port": 26257}]}}
    sl: dict[str, Any] = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "db-x", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4", "ports": [{"name": "sql", "port": 26257}],
        "endpoints": [{"addresses": ["10.1.0.1"], "hostname": "db-0",
                       "conditions": {"ready": True}, "nodeName": "n1"},
                      {"addresses": ["10.1.0.2"], "conditions": {"ready": True}}]}
    want = build_exports([svc], [sl])
    assert [p.hostname for p in want[("shop", "db")].pods.pods] == ["db-0"]
    assert build_exports([project(svc)], [project(sl)]) == want
    shaped = decoders(SHAPES["EndpointSlice"]).object(json.dumps(sl).encode())
    assert build_exports([project(svc)], [project(shaped)]) == want
