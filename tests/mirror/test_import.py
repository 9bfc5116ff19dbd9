"""Export → import against three real control planes, a real gRPC catalog over mTLS, and
controllers running as the isthmus-mirror ServiceAccount."""

from __future__ import annotations

from mirror_helpers import (
    Mesh,
    condition,
    ensure_namespace,
    eventually,
    export_service,
)

from isthmus.kube.resources import ENDPOINTSLICES


async def test_export_is_imported(mesh: Mesh, unique: str) -> None:
    west, east = mesh["west"], mesh["east"]
    await ensure_namespace(west.admin, unique)
    await ensure_namespace(east.admin, unique)
    await export_service(west.admin, unique, "users", ports=[("http", 8080), ("grpc", 9090)],
                         ready=2)

    async def imported() -> bool:
        gs = await mesh.gs("east", unique, "users")
        assert gs is not None
        assert gs["status"]["vips"], "VIP not yet in status"
        return True

    await eventually(imported, what="GlobalService in east")
    gs = await mesh.gs("east", unique, "users")
    assert gs is not None
    spec = gs["spec"]
    assert spec["hosts"] == [f"users.{unique}.global", f"users.{unique}.west.global"]
    assert [(p["name"], p["port"]) for p in spec["ports"]] == [("http", 8080), ("grpc", 9090)]
    outbound = {p["port"]: p["outboundPort"] for p in spec["ports"]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["cluster"] == "west"
    assert endpoint["address"] == "127.0.0.1"
    assert endpoint["health"] == "Healthy"
    assert endpoint["readyEndpoints"] == 2
    assert endpoint["locality"]["region"] == "region-west"
    pinned = {p["port"]: p["outboundPort"] for p in endpoint["pinnedPorts"]}
    assert set(pinned) == {8080, 9090}
    assert not set(pinned.values()) & set(outbound.values())

    labels = gs["metadata"]["labels"]
    link_uid = (await east.admin.get(__import__("isthmus.kube.resources", fromlist=["LINKS"]).LINKS,
                                     "west"))["metadata"]["uid"]
    assert labels["isthmus.io/mirror"] == "true"
    assert labels["isthmus.io/peer-cluster"] == "west"
    assert labels["isthmus.io/link-uid"] == link_uid
    assert labels["link.isthmus.io/west"] == link_uid
    assert labels["app.kubernetes.io/managed-by"] == "isthmus"

    mirror = await mesh.svc("east", unique, "users-global")
    pinned_svc = await mesh.svc("east", unique, "users-west-global")
    assert mirror is not None and pinned_svc is not None
    assert "selector" not in mirror["spec"]
    assert gs["status"]["vips"] == [mirror["spec"]["clusterIP"]]
    assert gs["status"]["clusterVips"] == [
        {"cluster": "west", "vips": [pinned_svc["spec"]["clusterIP"]]}]
    assert {p["port"]: p["targetPort"] for p in mirror["spec"]["ports"]} == outbound
    sl = await east.admin.get(ENDPOINTSLICES, "users-global", unique)
    assert sorted(a for e in sl["endpoints"] for a in e["addresses"]) == [
        "10.244.0.10", "10.244.0.11"]
    assert sorted(p["port"] for p in sl["ports"]) == sorted(outbound.values())
    assert condition(gs, "Stale")["status"] == "False"

    async def link_synced() -> bool:
        status = await mesh.link_status("east", "west")
        assert condition(status, "Synced")["status"] == "True"
        assert condition(status, "Ready")["status"] == "True"
        assert status["importedServices"] >= 1
        assert status["catalogVersion"] >= 1
        assert status["lastSyncTime"]
        return True

    await eventually(link_synced, what="Link east/west synced")
    # nothing in the cluster that is not linked to west
    assert await mesh.gs("central", unique, "users") is None
