"""The MCS ServiceExport against real control planes: it exports like the label (one export
with both), its conditions, and the KEP's conflict rule (oldest export wins), with the
mirrors running as the isthmus-mirror ServiceAccount."""

from __future__ import annotations

import asyncio

from mirror_helpers import (
    Mesh,
    condition,
    ensure_namespace,
    eventually,
    export_service,
    get_or_none,
)

from isthmus.kube.client import KubeApi
from isthmus.kube.resources import EVENTS, SERVICEEXPORTS, SERVICES


async def _service_export(api: KubeApi, ns: str, name: str) -> None:
    await api.create(SERVICEEXPORTS, {
        "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
        "metadata": {"name": name, "namespace": ns}}, namespace=ns)


async def _conditions(api: KubeApi, ns: str, name: str) -> dict[str, tuple[str, str]]:
    se = await api.get(SERVICEEXPORTS, name, ns)
    return {t: (condition(se, t)["status"], condition(se, t)["reason"])
            for t in ("Valid", "Ready", "Conflict")}


async def test_a_service_export_exports_like_the_label(mesh: Mesh, unique: str) -> None:
    west, east = mesh["west"], mesh["east"]
    await ensure_namespace(west.admin, unique)
    await ensure_namespace(east.admin, unique)
    await export_service(west.admin, unique, "users", label=None, ready=2)
    await _service_export(west.admin, unique, "users")

    async def imported() -> bool:
        gs = await mesh.gs("east", unique, "users")
        assert gs is not None and [e["cluster"] for e in gs["spec"]["endpoints"]] == ["west"]
        assert gs["spec"]["endpoints"][0]["readyEndpoints"] == 2
        assert gs["spec"]["endpoints"][0]["exportedAtMs"] > 0
        return True

    await eventually(imported, what="the ServiceExport's Service imported in east")

    async def ready() -> bool:
        assert await _conditions(west.admin, unique, "users") == {
            "Valid": ("True", "Valid"), "Ready": ("True", "Ready"),
            "Conflict": ("False", "NoConflicts")}
        return True

    await eventually(ready, what="ServiceExport conditions")
    # the label as well: still one export
    svc = await west.admin.get(SERVICES, "users", unique)
    await west.admin.merge_patch(SERVICES, "users", {"metadata": {"labels": {
        "isthmus.io/export": "true"}}}, unique, field_manager="test")
    await asyncio.sleep(1)
    gs = await mesh.gs("east", unique, "users")
    assert gs is not None and len(gs["spec"]["endpoints"]) == 1
    # the ServiceExport gone, the label still exports
    await west.admin.delete(SERVICEEXPORTS, "users", unique)
    await asyncio.sleep(1)
    assert await mesh.gs("east", unique, "users") is not None
    # made again, it is a new object: it gets its conditions again
    await _service_export(west.admin, unique, "users")
    await eventually(ready, what="conditions on the re-created ServiceExport")
    await west.admin.delete(SERVICEEXPORTS, "users", unique)
    # and neither: unexported
    await west.admin.merge_patch(SERVICES, "users", {"metadata": {"labels": {
        "isthmus.io/export": None}}}, unique, field_manager="test")

    async def gone() -> bool:
        return await mesh.gs("east", unique, "users") is None

    await eventually(gone, what="the import removed")
    assert svc["metadata"]["uid"]


async def test_a_service_export_without_its_service_is_not_valid(mesh: Mesh, unique: str) -> None:
    west = mesh["west"]
    await ensure_namespace(west.admin, unique)
    await _service_export(west.admin, unique, "nothing")

    async def invalid() -> bool:
        assert await _conditions(west.admin, unique, "nothing") == {
            "Valid": ("False", "NoService"), "Ready": ("False", "Pending"),
            "Conflict": ("False", "NoConflicts")}
        return True

    await eventually(invalid, what="Valid=False")
    # the Service appears: the export follows
    await export_service(west.admin, unique, "nothing", label=None)

    async def valid() -> bool:
        assert (await _conditions(west.admin, unique, "nothing"))["Ready"] == ("True", "Ready")
        return True

    await eventually(valid, what="Ready=True once the Service exists")


async def test_the_oldest_export_wins_a_port_conflict(mesh: Mesh, unique: str) -> None:
    """west exports first with port 5432 named "pg"; east exports later with the same port
    named "sql". Both ServiceExports get Conflict=True; east, the loser, an Event too.
    (Which port the merged import then carries is ``merge_ports``'s table test.)"""
    west, east = mesh["west"], mesh["east"]
    await ensure_namespace(west.admin, unique)
    await ensure_namespace(east.admin, unique)
    await export_service(west.admin, unique, "db", label=None, ports=[("pg", 5432)])
    await _service_export(west.admin, unique, "db")
    await asyncio.sleep(1.1)  # creationTimestamp has whole seconds
    await export_service(east.admin, unique, "db", label=None, ports=[("sql", 5432)])
    await _service_export(east.admin, unique, "db")

    async def conflicted() -> bool:
        for member in (west, east):
            assert (await _conditions(member.admin, unique, "db"))["Conflict"] == (
                "True", "PortConflict")
        return True

    await eventually(conflicted, what="Conflict=True on both ServiceExports")
    se = await east.admin.get(SERVICEEXPORTS, "db", unique)
    message = condition(se, "Conflict")["message"]
    assert "west's definition (name='pg'" in message and "oldest" in message

    async def event() -> bool:
        events = (await east.admin.list(EVENTS, unique))["items"]
        found = [e for e in events if e["reason"] == "ExportConflict"]
        assert found and found[0]["type"] == "Warning"
        assert found[0]["regarding"]["kind"] == "ServiceExport"
        assert "west's definition" in found[0]["note"]
        return True

    await eventually(event, what="the ExportConflict Event in east")
    west_events = (await west.admin.list(EVENTS, unique))["items"]
    assert not [e for e in west_events if e["reason"] == "ExportConflict"]

    # east changes its port name to agree: the conflict clears on both sides
    await export_service(east.admin, unique, "db", label=None, ports=[("pg", 5432)])

    async def cleared() -> bool:
        for member in (west, east):
            assert (await _conditions(member.admin, unique, "db"))["Conflict"] == (
                "False", "NoConflicts")
        return True

    await eventually(cleared, what="Conflict=False once the ports agree")
    assert await get_or_none(east.admin, SERVICEEXPORTS, "db", unique) is not None
