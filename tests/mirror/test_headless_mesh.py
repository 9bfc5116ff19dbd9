"""A headless export between real control planes: the catalog carries its named pods, the
importing cluster gets one Service + EndpointSlice per pod (and nothing more), scaling
is followed both ways, bad slices are refused visibly, and unexporting removes it all."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from mirror_helpers import Mesh, apply, condition, ensure_namespace, eventually

from isthmus.devcluster import ControlPlane
from isthmus.kube.errors import InvalidError
from isthmus.kube.resources import ENDPOINTSLICES, EVENTS, SERVICES
from isthmus.mirror.names import pod_service_name

PORTS = [("sql", 26257), ("http", 8080)]


async def headless_service(mesh: Mesh, ns: str, name: str = "db",
                           cluster: str = "west") -> None:
    await apply(mesh[cluster].admin, SERVICES, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"isthmus.io/export": "true"}},
        "spec": {"clusterIP": "None",
                 "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in PORTS]},
    })


def endpoint(i: int, hostname: str | None, ready: bool = True) -> dict[str, Any]:
    ep: dict[str, Any] = {"addresses": [f"10.1.0.{i + 1}"], "conditions": {"ready": ready}}
    if hostname is not None:
        ep["hostname"] = hostname
    return ep


async def pod_slice(mesh: Mesh, ns: str, endpoints: list[dict[str, Any]],
                    name: str = "db", cluster: str = "west") -> None:
    await apply(mesh[cluster].admin, ENDPOINTSLICES, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-1", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in PORTS],
        "endpoints": endpoints,
    })


async def written(mesh: Mesh, ns: str, name: str = "db") -> Counter[str]:
    """The objects the mirror wrote in east for ``name``, by kind."""
    out: Counter[str] = Counter()
    selector = f"isthmus.io/global-service={name},isthmus.io/mirror=true"
    for res in (SERVICES, ENDPOINTSLICES):
        items = (await mesh["east"].admin.list(res, ns, label_selector=selector))["items"]
        out[res.kind] += len(items)
    out["GlobalService"] += int(await mesh.gs("east", ns, name) is not None)
    return out


async def imported_pods(mesh: Mesh, ns: str, expected: list[str]) -> None:
    async def check() -> bool:
        gs = await mesh.gs("east", ns, "db")
        assert gs is not None
        (ep,) = gs["spec"]["endpoints"]
        assert [p["hostname"] for p in ep.get("pods") or []] == expected, ep
        for pod in expected:
            svc = await mesh.svc("east", ns, pod_service_name(pod, "db", "west"))
            assert svc is not None, pod
            assert svc["spec"]["clusterIP"] not in ("", "None")
        n = len(expected)
        assert await written(mesh, ns) == Counter(
            {"Service": 2 + n, "EndpointSlice": 2 + n, "GlobalService": 1})
        return True

    await eventually(check, what=f"pods {expected} imported into east")


async def test_headless_pods_follow_scaling(mesh: Mesh, unique: str) -> None:
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    await headless_service(mesh, unique)
    # three StatefulSet pods, one not ready, one endpoint without a hostname
    await pod_slice(mesh, unique, [endpoint(0, "db-0"), endpoint(1, "db-1"),
                                   endpoint(2, "db-2"), endpoint(3, "db-3", ready=False),
                                   endpoint(4, None)])
    await imported_pods(mesh, unique, ["db-0", "db-1", "db-2"])
    gs = await mesh.gs("east", unique, "db")
    assert gs is not None
    (ep,) = gs["spec"]["endpoints"]
    assert ep["readyEndpoints"] == 4  # every ready endpoint still backs the pinned name
    listeners = [pp["outboundPort"] for pod in ep["pods"] for pp in pod["ports"]]
    assert len(set(listeners)) == 3 * len(PORTS)
    svc = await mesh.svc("east", unique, pod_service_name("db-1", "db", "west"))
    assert svc is not None
    assert svc["metadata"]["labels"]["isthmus.io/pod"] == "db-1"
    assert "selector" not in svc["spec"]

    # scale down to one, then up to four: the names follow
    await pod_slice(mesh, unique, [endpoint(0, "db-0")])
    await imported_pods(mesh, unique, ["db-0"])
    await pod_slice(mesh, unique, [endpoint(i, f"db-{i}") for i in range(4)])
    await imported_pods(mesh, unique, ["db-0", "db-1", "db-2", "db-3"])
    # db-0 keeps its listener across the changes
    gs = await mesh.gs("east", unique, "db")
    assert gs is not None

    # unexporting removes every per-pod object
    await mesh["west"].admin.delete(SERVICES, "db", unique)

    async def gone() -> bool:
        assert await written(mesh, unique) == Counter(
            {"Service": 0, "EndpointSlice": 0, "GlobalService": 0})
        return True

    await eventually(gone, what="per-pod objects removed from east")


async def test_duplicate_hostnames_are_refused_visibly(mesh: Mesh, unique: str) -> None:
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    await headless_service(mesh, unique)
    # the API server accepts two endpoints with one hostname; neither gets the name
    await pod_slice(mesh, unique, [endpoint(0, "db-0"), endpoint(1, "db-0"),
                                   endpoint(2, "db-1")])
    await imported_pods(mesh, unique, ["db-1"])

    async def warned() -> bool:
        events = (await mesh["west"].admin.list(EVENTS, unique))["items"]
        (event,) = [e for e in events if e["reason"] == "HeadlessPodsRefused"]
        assert event["type"] == "Warning"
        assert event["regarding"]["kind"] == "Service" and event["regarding"]["name"] == "db"
        assert "hostname 'db-0' is claimed by 2 endpoints (10.1.0.1, 10.1.0.2)" in event["note"]
        return True

    await eventually(warned, what="HeadlessPodsRefused Event on west/db")
    # fixed: the name comes back
    await pod_slice(mesh, unique, [endpoint(0, "db-0"), endpoint(2, "db-1")])
    await imported_pods(mesh, unique, ["db-0", "db-1"])


async def test_the_api_server_refuses_a_hostname_that_is_not_a_label(mesh: Mesh,
                                                                      unique: str) -> None:
    """What reaches the export from a real cluster is a DNS label already; the export's own
    check (tests/foundation/test_headless_exports.py) is for the catalog's other sources."""
    await ensure_namespace(mesh["west"].admin, unique)
    await headless_service(mesh, unique)
    with pytest.raises(InvalidError):
        await pod_slice(mesh, unique, [endpoint(0, "DB_0")])


async def test_pod_limits_on_both_sides(fresh_cluster: Callable[..., ControlPlane],
                                        fresh_mesh: Callable[[], Mesh]) -> None:
    """The exporter names at most its limit (3) and says so in an Event; an importer with a
    lower limit (2) refuses the entry visibly (TooManyPods) and imports the small one."""
    mesh = fresh_mesh()
    home, peer = fresh_cluster(), fresh_cluster()
    for cp in (home, peer):
        await mesh.add(cp)
        await ensure_namespace(mesh[cp.name].admin, "shop")
    await mesh.link(home.name, peer.name)
    await mesh.link(peer.name, home.name)
    await mesh.start(peer.name, max_pods_per_service=3)
    await mesh.start(home.name, max_pods_per_service=2)
    for name, n in (("big", 4), ("small", 2)):
        await headless_service(mesh, "shop", name, cluster=peer.name)
        await pod_slice(mesh, "shop", [endpoint(i, f"{name}-{i}") for i in range(n)],
                        name=name, cluster=peer.name)

    async def settled() -> bool:
        gs = await mesh.gs(home.name, "shop", "small")
        assert gs is not None
        assert [p["hostname"] for p in gs["spec"]["endpoints"][0]["pods"]] == [
            "small-0", "small-1"]
        assert await mesh.gs(home.name, "shop", "big") is None
        cond = condition(await mesh.link_status(home.name, peer.name), "LimitExceeded")
        assert cond["status"] == "True" and "TooManyPods" in cond["reason"], cond
        assert "shop/big has 3 named pods, the limit is 2" in cond["message"], cond
        events = (await mesh[peer.name].admin.list(EVENTS, "shop"))["items"]
        (event,) = [e for e in events if e["reason"] == "HeadlessPodsRefused"]
        assert event["regarding"]["name"] == "big"
        assert "hostname 'big-3' is over the limit of 3 pods" in event["note"]
        return True

    await eventually(settled, timeout=30, what="pod limits applied on both sides")
