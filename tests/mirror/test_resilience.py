"""API-server faults on private control planes: 410 Gone (compacted history) and restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mirror_helpers import Mesh, ensure_namespace, eventually, export_service

from isthmus.devcluster import ControlPlane
from isthmus.kube.resources import GLOBALSERVICES, SERVICES
from isthmus.mirror.controller import MirrorController


async def _pair(fresh_cluster: Callable[..., ControlPlane], mesh: Mesh) -> tuple[str, str]:
    a = fresh_cluster(watch_cache=False)  # straight to etcd, so compaction bites
    b = fresh_cluster(watch_cache=False)
    await mesh.add(a)
    await mesh.add(b)
    await mesh.link(a.name, b.name)
    await mesh.link(b.name, a.name)
    await mesh.start(a.name)
    await mesh.start(b.name)
    return a.name, b.name


async def _imported_names(mesh: Mesh, cluster: str, ns: str) -> set[str]:
    items = (await mesh[cluster].admin.list(GLOBALSERVICES, ns))["items"]
    return {i["metadata"]["name"] for i in items}


def _writes(c: MirrorController, action: str, kind: str | None = None) -> float:
    return sum(
        s.value for m in c.metrics.objects_written.collect() for s in m.samples
        if s.name.endswith("_total") and s.labels["action"] == action
        and (kind is None or s.labels["kind"] == kind)
    )


async def test_gone_410_relists_and_converges_without_spurious_writes(
    fresh_cluster: Callable[..., ControlPlane], fresh_mesh: Callable[[], Mesh]
) -> None:
    mesh = fresh_mesh()
    a, b = await _pair(fresh_cluster, mesh)
    ns = "shop"
    for m in (a, b):
        await ensure_namespace(mesh[m].admin, ns)
    for i in range(5):
        await export_service(mesh[a].admin, ns, f"s{i}")

    async def five() -> bool:
        return await _imported_names(mesh, b, ns) == {f"s{i}" for i in range(5)}

    await eventually(five, what="first five imported")
    await mesh[b].c.wait_idle()
    ca, cb = mesh[a].c, mesh[b].c
    lists_a = {n: r.lists for n, r in ca.reflectors.items()}
    lists_b = {n: r.lists for n, r in cb.reflectors.items()}
    applies, deletes = _writes(cb, "apply", "Service"), _writes(cb, "delete")

    # both controllers stop watching (keeping their caches and resourceVersions) ...
    ca.pause_watches()
    cb.pause_watches()
    await asyncio.sleep(0.2)
    # ... while the exporter changes (2 removed, 3 added) and someone deletes a mirror in b
    for i in (0, 1):
        await mesh[a].admin.delete(SERVICES, f"s{i}", ns)
    for i in (5, 6, 7):
        await export_service(mesh[a].admin, ns, f"s{i}")
    await mesh[b].admin.delete(SERVICES, "s4-global", ns)
    # ... and history is compacted away: their next WATCH gets 410 Gone
    await asyncio.to_thread(mesh[a].cp.compact_etcd)
    await asyncio.to_thread(mesh[b].cp.compact_etcd)
    ca.resume_watches()
    cb.resume_watches()

    expected = {f"s{i}" for i in range(2, 8)}

    async def converged() -> bool:
        assert await _imported_names(mesh, b, ns) == expected
        assert await mesh.svc(b, ns, "s4-global") is not None
        return True

    await eventually(converged, what="final set = exported set")
    await cb.wait_idle()
    assert ca.reflectors["services"].lists == lists_a["services"] + 1, "expected one re-list"
    assert cb.reflectors["services"].lists == lists_b["services"] + 1
    assert {k[1] for k in ca.catalog.entries if k[0] == ns} == expected
    # exactly: 3 new services x (merged + pinned) + the repaired s4-global; 2 gone x 6
    # objects (GlobalService, ServiceImport, 2 Services, 2 slices)
    assert _writes(cb, "apply", "Service") - applies == 3 * 2 + 1
    assert _writes(cb, "delete") - deletes == 2 * 6


async def test_api_server_restart_converges(
    fresh_cluster: Callable[..., ControlPlane], fresh_mesh: Callable[[], Mesh]
) -> None:
    mesh = fresh_mesh()
    a, b = await _pair(fresh_cluster, mesh)
    ns = "shop"
    for m in (a, b):
        await ensure_namespace(mesh[m].admin, ns)
    await export_service(mesh[a].admin, ns, "before")

    async def has(names: set[str]) -> bool:
        return await _imported_names(mesh, b, ns) == names

    await eventually(lambda: has({"before"}), what="imported")
    # the importing cluster's API server goes away and comes back
    await asyncio.to_thread(mesh[b].cp.restart_apiserver)
    await export_service(mesh[a].admin, ns, "during")
    await eventually(lambda: has({"before", "during"}), timeout=30, what="converged after b")
    # the exporting cluster's API server, too
    await asyncio.to_thread(mesh[a].cp.restart_apiserver)
    await mesh[a].admin.delete(SERVICES, "before", ns)
    await export_service(mesh[a].admin, ns, "after")
    await eventually(lambda: has({"during", "after"}), timeout=30, what="converged after a")
    for m in (a, b):
        task = mesh[m].task
        assert task is not None and not task.done(), f"{m} controller crashed"
