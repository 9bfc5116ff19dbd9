"""Export → import against three real control planes, a real gRPC catalog over mTLS, and
controllers running as the isthmus-mirror ServiceAccount."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

from mirror_helpers import (
    Mesh,
    condition,
    ensure_namespace,
    eventually,
    export_service,
)

from isthmus.kube.resources import ENDPOINTSLICES, EVENTS, LINKS, SERVICES


async def test_export_is_imported(mesh: Mesh, unique: str) -> None:
    west, east = mesh["west"], mesh["east"]
    await ensure_namespace(west.admin, unique)
    await ensure_namespace(east.admin, unique)
    await export_service(west.admin, unique, "users", ports=[("http", 8080), ("grpc", 9090)],
                         ready=2)

    async def imported() -> bool:
        gs = await mesh.gs("east", unique, "users")
        assert gs is not None
        assert (gs.get("status") or {}).get("vips"), "VIP not yet in status"
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
    link_uid = (await east.admin.get(LINKS, "west"))["metadata"]["uid"]
    assert labels["isthmus.io/mirror"] == "true"
    assert labels["isthmus.io/peer-cluster"] == "west"
    assert labels["isthmus.io/link-uid"] == link_uid
    assert labels["link.isthmus.io/west"] == link_uid
    assert labels["app.kubernetes.io/managed-by"] == "isthmus"

    mirror = await mesh.svc("east", unique, "users-global")
    pinned_svc = await mesh.svc("east", unique, "users-west-c4")
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


async def test_export_weight_reaches_the_peer(mesh: Mesh, unique: str) -> None:
    """isthmus.io/weight on the exported Service becomes the endpoint weight in the peer's
    GlobalService; an invalid value keeps the export at weight 100, with a Warning Event."""
    west = mesh["west"].admin
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    await export_service(west, unique, "heavy", annotations={"isthmus.io/weight": "300"})
    await export_service(west, unique, "bad", annotations={"isthmus.io/weight": "heavy"})

    def weight_is(name: str, expected: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            gs = await mesh.gs("east", unique, name)
            assert gs is not None, f"{name} not imported"
            (endpoint,) = gs["spec"]["endpoints"]
            assert endpoint["weight"] == expected, endpoint
            return True
        return check

    await eventually(weight_is("heavy", 300), what="weight 300 in east")
    await eventually(weight_is("bad", 100), what="invalid weight falls back to 100")

    async def warned() -> bool:
        events = (await west.list(EVENTS, unique))["items"]
        (event,) = [e for e in events if e["reason"] == "InvalidWeight"]
        assert event["type"] == "Warning"
        assert event["regarding"]["kind"] == "Service" and event["regarding"]["name"] == "bad"
        assert "'heavy' is not an integer from 0 to 10000" in event["note"]
        return True

    await eventually(warned, what="InvalidWeight Event on west/bad")
    # a change of weight alone is a catalog change: 0 (drain) reaches the peer
    await export_service(west, unique, "heavy", annotations={"isthmus.io/weight": "0"})
    await eventually(weight_is("heavy", 0), what="weight 0 in east")
    # fixing the annotation takes effect, and the problem is not reported again
    await export_service(west, unique, "bad", annotations={"isthmus.io/weight": "5"})
    await eventually(weight_is("bad", 5), what="fixed weight in east")
    events = (await west.list(EVENTS, unique))["items"]
    assert [e["reason"] for e in events].count("InvalidWeight") == 1


async def _export_and_wait(mesh: Mesh, src: str, dst: str, ns: str, name: str) -> None:
    await export_service(mesh[src].admin, ns, name)

    async def there() -> bool:
        return await mesh.gs(dst, ns, name) is not None

    await eventually(there, what=f"{ns}/{name} from {src} in {dst}")


async def test_missing_empty_or_other_label_exports_nothing(mesh: Mesh, unique: str) -> None:
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    await export_service(mesh["west"].admin, unique, "nolabel", label=None)
    await export_service(mesh["west"].admin, unique, "empty", label="")
    await export_service(mesh["west"].admin, unique, "false", label="false")
    await export_service(mesh["west"].admin, unique, "yes", label="yes")
    # a positive control exported after them: once it is in, the others had their chance
    await _export_and_wait(mesh, "west", "east", unique, "control")
    for name in ("nolabel", "empty", "false", "yes"):
        assert await mesh.gs("east", unique, name) is None, name
    exported = {k for k in mesh["west"].c.catalog.entries if k[0] == unique}
    assert exported == {(unique, "control")}


async def test_export_to_annotation_restricts_importers(mesh: Mesh, unique: str) -> None:
    for m in ("west", "east", "central"):
        await ensure_namespace(mesh[m].admin, unique)
    east = mesh["east"].admin
    await export_service(east, unique, "for-west", annotations={"isthmus.io/export-to": "west"})
    await export_service(east, unique, "for-central",
                         annotations={"isthmus.io/export-to": "Central, other"})
    await export_service(east, unique, "for-nobody", annotations={"isthmus.io/export-to": ""})
    await _export_and_wait(mesh, "east", "west", unique, "for-all")
    await _export_and_wait(mesh, "east", "central", unique, "for-all-2")
    assert await mesh.gs("west", unique, "for-west") is not None
    assert await mesh.gs("west", unique, "for-central") is None
    assert await mesh.gs("central", unique, "for-central") is not None
    assert await mesh.gs("central", unique, "for-west") is None
    for m in ("west", "central"):
        assert await mesh.gs(m, unique, "for-nobody") is None
    # narrowing the annotation later withdraws the import
    await export_service(east, unique, "for-west", annotations={"isthmus.io/export-to": "central"})

    async def moved() -> bool:
        assert await mesh.gs("west", unique, "for-west") is None
        assert await mesh.gs("central", unique, "for-west") is not None
        return True

    await eventually(moved, what="export-to change applied")


async def test_no_daisy_chain(mesh: Mesh, unique: str) -> None:
    """west → east is imported; central (linked to east only) never sees it, even when
    someone labels east's mirror Service for export."""
    for m in ("west", "east", "central"):
        await ensure_namespace(mesh[m].admin, unique)
    await _export_and_wait(mesh, "west", "east", unique, "chain")

    async def mirror_service() -> bool:  # written just after the GlobalService
        return await mesh.svc("east", unique, "chain-global") is not None

    await eventually(mirror_service, what="east's mirror Service chain-global")
    await mesh["east"].admin.request(
        "PATCH", SERVICES.path(unique, "chain-global"),
        body={"metadata": {"labels": {"isthmus.io/export": "true"}}},
        content_type="application/merge-patch+json")
    await _export_and_wait(mesh, "east", "central", unique, "control")
    assert await mesh.gs("central", unique, "chain") is None
    assert await mesh.gs("central", unique, "chain-global") is None
    assert all(k[0] != unique or k[1] == "control" for k in mesh["east"].c.catalog.entries)


async def test_conflicting_ports_merge_deterministically(mesh: Mesh, unique: str) -> None:
    for m in ("west", "east", "central"):
        await ensure_namespace(mesh[m].admin, unique)
    await export_service(mesh["central"].admin, unique, "dup",
                         ports=[("web", 80), ("metrics", 9100)])
    # Ages have whole seconds (creationTimestamp): west exports in a later second, so
    # central's export is the oldest, and the oldest export's name for port 80 wins.
    central_svc = await mesh["central"].admin.get(SERVICES, "dup", unique)
    created = dt.datetime.fromisoformat(central_svc["metadata"]["creationTimestamp"])
    later = created + dt.timedelta(seconds=1) - dt.datetime.now(dt.UTC)
    await asyncio.sleep(max(0.0, later.total_seconds()))
    await export_service(mesh["west"].admin, unique, "dup", ports=[("http", 80)])

    async def merged() -> dict:
        gs = await mesh.gs("east", unique, "dup")
        assert gs is not None and len(gs["spec"]["endpoints"]) == 2
        assert condition(gs, "PortConflict")["status"] == "True"
        return gs

    gs = await eventually(merged, what="merged GlobalService")
    # union by port; central's older export names port 80
    assert [(p["name"], p["port"]) for p in gs["spec"]["ports"]] == [("web", 80), ("metrics", 9100)]
    assert [e["cluster"] for e in gs["spec"]["endpoints"]] == ["central", "west"]
    pinned = {e["cluster"]: sorted(p["port"] for p in e["pinnedPorts"])
              for e in gs["spec"]["endpoints"]}
    assert pinned == {"central": [80, 9100], "west": [80]}
    assert "central" in condition(gs, "PortConflict")["message"]
    assert gs["spec"]["hosts"] == [f"dup.{unique}.global", f"dup.{unique}.central.global",
                                   f"dup.{unique}.west.global"]
    labels = gs["metadata"]["labels"]
    assert "isthmus.io/peer-cluster" not in labels
    assert {"link.isthmus.io/west", "link.isthmus.io/central"} <= set(labels)


async def test_local_object_with_the_mirror_name_is_not_overwritten(
    mesh: Mesh, unique: str
) -> None:
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    east = mesh["east"].admin
    local = await east.apply(SERVICES, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "taken-global", "namespace": unique, "labels": {"team": "mine"}},
        "spec": {"ports": [{"port": 1234}], "selector": {"app": "mine"}},
    }, field_manager="someone-else")
    await export_service(mesh["west"].admin, unique, "taken")

    async def conflicted() -> dict:
        gs = await mesh.gs("east", unique, "taken")
        assert gs is not None
        assert condition(gs, "Conflict")["status"] == "True"
        return gs

    gs = await eventually(conflicted, what="Conflict condition")
    assert "taken-global" in condition(gs, "Conflict")["message"]
    after = await east.get(SERVICES, "taken-global", unique)
    assert after["metadata"]["labels"] == {"team": "mine"}
    assert after["spec"]["selector"] == {"app": "mine"}
    assert after["metadata"]["resourceVersion"] == local["metadata"]["resourceVersion"]
    assert await mesh.svc("east", unique, "taken-west-c4") is not None  # pinned still works

    async def link_says() -> bool:
        status = (await east.get(LINKS, "west")).get("status") or {}
        assert condition(status, "Conflict")["status"] == "True"
        return True

    await eventually(link_says, what="Link Conflict condition")
    # the owner removes their Service: the mirror takes the name
    await east.delete(SERVICES, "taken-global", unique)
    await export_service(mesh["west"].admin, unique, "taken", ports=[("http", 8081)])

    async def resolved() -> bool:
        gs = await mesh.gs("east", unique, "taken")
        assert gs is not None and condition(gs, "Conflict")["status"] == "False"
        svc = await mesh.svc("east", unique, "taken-global")
        assert svc is not None and svc["metadata"]["labels"].get("isthmus.io/mirror") == "true"
        return True

    await eventually(resolved, what="conflict resolved")


async def test_missing_namespace_waits_then_imports(mesh: Mesh, unique: str) -> None:
    await ensure_namespace(mesh["west"].admin, unique)
    await export_service(mesh["west"].admin, unique, "later")

    async def reported() -> bool:
        status = (await mesh["east"].admin.get(LINKS, "west")).get("status") or {}
        cond = condition(status, "NamespacesMissing")
        assert cond.get("status") == "True" and unique in cond["message"], cond
        return True

    await eventually(reported, what="NamespacesMissing")
    assert await mesh.gs("east", unique, "later") is None
    await ensure_namespace(mesh["east"].admin, unique)

    async def imported() -> bool:
        return await mesh.gs("east", unique, "later") is not None

    await eventually(imported, what="import after the namespace appeared")


async def test_metrics_endpoint(mesh: Mesh, unique: str) -> None:
    import aiohttp

    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    await _export_and_wait(mesh, "west", "east", unique, "measured")
    port = mesh["east"].c.metrics_port
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
        async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
            assert resp.status == 200
    for name in (
        'isthmus_mirror_peer_catalog_version{peer="west"}',
        'isthmus_mirror_peer_sync_lag_seconds{peer="west"}',
        'isthmus_mirror_objects_written_total{action="apply",kind="GlobalService"}',
        "isthmus_mirror_export_to_mirror_seconds_count",
        "isthmus_mirror_catalog_subscribers",
        "isthmus_mirror_errors_total",
    ):
        assert name in text, name
