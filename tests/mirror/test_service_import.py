"""The MCS ServiceImport the mirror writes beside each GlobalService, and the MCS labels on
its EndpointSlices, against real control planes; and a cluster without the MCS CRDs."""

from __future__ import annotations

from collections.abc import Callable

from mirror_helpers import (
    Mesh,
    condition,
    ensure_namespace,
    eventually,
    export_service,
    get_or_none,
)

from isthmus.devcluster import ControlPlane
from isthmus.kube.resources import CRDS, ENDPOINTSLICES, SERVICEIMPORTS, SERVICES


async def test_a_service_import_beside_each_global_service(mesh: Mesh, unique: str) -> None:
    west, east = mesh["west"], mesh["east"]
    await ensure_namespace(west.admin, unique)
    await ensure_namespace(east.admin, unique)
    await export_service(west.admin, unique, "users", ports=[("http", 8080), ("grpc", 9090)])

    async def imported() -> dict:
        si = await get_or_none(east.admin, SERVICEIMPORTS, "users", unique)
        assert si is not None and si["spec"].get("ips"), si
        return si

    si = await eventually(imported, what="the ServiceImport with its VIP")
    vip = (await east.admin.get(SERVICES, "users-global", unique))["spec"]["clusterIP"]
    assert si["spec"]["type"] == "ClusterSetIP"
    assert si["spec"]["ips"] == [vip]
    assert [(p["name"], p["port"], p["protocol"]) for p in si["spec"]["ports"]] == [
        ("http", 8080, "TCP"), ("grpc", 9090, "TCP")]
    labels = si["metadata"]["labels"]
    assert labels["isthmus.io/mirror"] == "true" and labels["link.isthmus.io/west"]
    merged = await east.admin.get(ENDPOINTSLICES, "users-global", unique)
    assert merged["metadata"]["labels"]["multicluster.kubernetes.io/service-name"] == "users"
    assert "multicluster.kubernetes.io/source-cluster" not in merged["metadata"]["labels"]
    pinned = await east.admin.get(ENDPOINTSLICES, "users-west-c4", unique)
    assert pinned["metadata"]["labels"]["multicluster.kubernetes.io/source-cluster"] == "west"
    # a ServiceImport that someone else wrote under the name an import wants is never
    # touched: the import happens without it (and the Link reports the conflict)
    await east.admin.create(SERVICEIMPORTS, {
        "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
        "metadata": {"name": "theirs", "namespace": unique},
        "spec": {"type": "ClusterSetIP", "ports": [{"port": 1}]}}, unique)
    try:
        await export_service(west.admin, unique, "theirs")

        async def theirs_imported() -> bool:
            gs = await mesh.gs("east", unique, "theirs")
            assert gs is not None and (gs.get("status") or {}).get("vips")
            assert condition(await mesh.link_status("east", "west"), "Conflict")[
                "status"] == "True"
            return True

        await eventually(theirs_imported, what="the import beside a foreign ServiceImport")
        await east.c.wait_idle()
        other = await east.admin.get(SERVICEIMPORTS, "theirs", unique)
        assert other["spec"]["ports"] == [{"port": 1}]
        assert "isthmus.io/mirror" not in (other["metadata"].get("labels") or {})
    finally:
        # the shared mesh's Link goes back to no conflict
        await east.admin.delete(SERVICEIMPORTS, "theirs", unique)
        await west.admin.delete(SERVICES, "theirs", unique)

        async def no_conflict() -> bool:
            assert condition(await mesh.link_status("east", "west"), "Conflict")[
                "status"] == "False"
            return True

        await eventually(no_conflict, what="the Link without the conflict")
    # unexported: the ServiceImport goes with the GlobalService
    await west.admin.delete(SERVICES, "users", unique)

    async def gone() -> bool:
        return await get_or_none(east.admin, SERVICEIMPORTS, "users", unique) is None

    await eventually(gone, what="the ServiceImport removed")


async def test_the_mirror_works_without_the_mcs_crds(
    fresh_cluster: Callable[..., ControlPlane], fresh_mesh: Callable[[], Mesh]
) -> None:
    """A cluster that lacks the MCS CRDs still imports (no ServiceImports); once the CRDs
    are installed, the ServiceImports follow without a restart."""
    from isthmus.api.crds import MCS_CRD_NAMES, create_if_absent, load_mcs_crds
    from isthmus.kube.apply import wait_crds_established
    from isthmus.mirror.cluster_property import publish

    mesh = fresh_mesh()
    a, b = fresh_cluster(), fresh_cluster()
    await mesh.add(a)
    await mesh.add(b)
    for name in MCS_CRD_NAMES:  # installed by the helpers: b goes without them
        await mesh[b.name].admin.delete(CRDS, name)
    await mesh.link(a.name, b.name)
    await mesh.link(b.name, a.name)
    for c in (a, b):
        await mesh.start(c.name)
    ns = "shop"
    for c in (a, b):
        await ensure_namespace(mesh[c.name].admin, ns)
    await export_service(mesh[a.name].admin, ns, "users")

    async def imported() -> bool:
        return await mesh.gs(b.name, ns, "users") is not None

    await eventually(imported, what="imported without the MCS CRDs")
    assert mesh[b.name].c.watches.service_imports() is False
    assert await publish(mesh[b.name].admin, b.name) == "no-crd"  # no ClusterProperty
    for crd in load_mcs_crds():
        await create_if_absent(mesh[b.name].admin, crd)
    await wait_crds_established(mesh[b.name].admin, MCS_CRD_NAMES)
    # the watch looks again every resync/10 seconds
    mesh[b.name].c.reflectors["serviceimports"].absent_retry = 0.2

    async def service_import() -> bool:
        si = await get_or_none(mesh[b.name].admin, SERVICEIMPORTS, "users", ns)
        assert si is not None and si["spec"].get("ips")
        return True

    await eventually(service_import, timeout=60, what="the ServiceImport once the CRD exists")
