"""The mirror controller lines of docs/reliability.md that the shared three-cluster mesh can
show: peers down at start and mid-run, deletions while the controller was down, unlink,
leader election and least privilege. Write faults (5xx, 409 from a real API server)
are in test_webhook_faults.py."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from typing import Any

import pytest
from mirror_helpers import (
    Mesh,
    condition,
    ensure_namespace,
    eventually,
    export_service,
    get_or_none,
)
from structlog.testing import capture_logs

from isthmus.cli.install import create_placeholders, lease_placeholder
from isthmus.kube import errors as kube_errors
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import (
    ENDPOINTSLICES,
    EVENTS,
    GLOBALSERVICES,
    LEASES,
    LINKS,
    NAMESPACES,
    SECRETS,
    SERVICEIMPORTS,
    SERVICES,
)
from isthmus.mirror import CertificateError, LeadershipLost, remove_link_objects
from isthmus.mirror.certs import MirrorCertificates


async def _imported(mesh: Mesh, dst: str, ns: str, name: str) -> dict[str, Any]:
    async def there() -> dict[str, Any] | None:
        return await mesh.gs(dst, ns, name)

    return await eventually(there, what=f"{ns}/{name} in {dst}")


async def test_peer_down_mid_run_goes_stale_then_fresh(mesh: Mesh, unique: str) -> None:
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    await export_service(mesh["west"].admin, unique, "api")
    await _imported(mesh, "east", unique, "api")
    await mesh.stop("west")
    try:
        async def stale() -> dict[str, Any]:
            gs = await mesh.gs("east", unique, "api")
            assert gs is not None
            cond = condition(gs, "Stale")
            assert cond["status"] == "True" and cond["reason"] == "PeerUnreachable"
            assert cond["message"].startswith("west: ")
            assert gs["spec"]["endpoints"][0]["health"] == "Unhealthy"
            return gs

        await eventually(stale, what="Stale")
        assert await mesh.svc("east", unique, "api-global") is not None  # kept

        async def link_down() -> bool:
            status = await mesh.link_status("east", "west")
            assert condition(status, "Synced")["status"] == "False"
            assert condition(status, "Ready")["reason"] == "PeerUnreachable"
            return True

        await eventually(link_down, what="Link not synced")
    finally:
        await mesh.start("west")

    async def fresh() -> bool:
        gs = await mesh.gs("east", unique, "api")
        assert gs is not None
        assert condition(gs, "Stale")["status"] == "False"
        assert gs["spec"]["endpoints"][0]["health"] == "Healthy"
        status = await mesh.link_status("east", "west")
        assert condition(status, "Synced")["status"] == "True"
        return True

    await eventually(fresh, what="Fresh again")
    events = await mesh["east"].admin.list(EVENTS, "default")
    reasons = {e["reason"] for e in events["items"]
               if (e.get("regarding") or {}).get("name") == "west"}
    assert {"PeerUnreachable", "CatalogSynced"} <= reasons


async def test_peer_unreachable_at_start_other_links_served(mesh: Mesh, unique: str) -> None:
    from isthmus.devcluster.controlplane import free_port

    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    await mesh.link("east", "ghost", port=free_port())
    try:
        await mesh.stop("east")
        await mesh.start("east")
        await export_service(mesh["west"].admin, unique, "still")
        await _imported(mesh, "east", unique, "still")

        async def ghost_not_synced() -> bool:
            status = await mesh.link_status("east", "ghost")
            cond = condition(status, "Synced")
            assert cond.get("status") == "False", cond
            assert cond.get("reason") == "PeerUnreachable", cond
            assert "UNAVAILABLE" in cond["message"]
            return True

        await eventually(ghost_not_synced, what="ghost Link not synced")

        async def west_synced() -> bool:
            # link statuses are written by a periodic loop: the ghost's may land first
            status = await mesh.link_status("east", "west")
            assert condition(status, "Synced")["status"] == "True"
            return True

        await eventually(west_synced, what="west Link synced")
    finally:
        await mesh.unlink("east", "ghost")


async def test_service_deleted_while_controller_down_is_removed(mesh: Mesh, unique: str) -> None:
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    await export_service(mesh["west"].admin, unique, "gone")
    await export_service(mesh["west"].admin, unique, "stays")
    await _imported(mesh, "east", unique, "gone")
    await _imported(mesh, "east", unique, "stays")
    await mesh.stop("east")
    await mesh["west"].admin.delete(SERVICES, "gone", unique)
    await asyncio.sleep(0.5)
    await mesh.start("east")

    async def removed() -> bool:
        for name in ("gone", "gone-global", "gone-west-c4"):
            assert await mesh.svc("east", unique, name) is None, name
        assert await mesh.gs("east", unique, "gone") is None
        return True

    await eventually(removed, what="orphan removed on resync")
    assert await mesh.gs("east", unique, "stays") is not None
    assert await mesh.svc("east", unique, "stays-global") is not None


async def test_changes_while_controller_down_reach_the_mirror(mesh: Mesh, unique: str) -> None:
    """After a restart only keys whose entries differ from what the mirrors show are
    reconciled again: a weight or readiness change made while east was down is one."""
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    west = mesh["west"].admin
    await export_service(west, unique, "w", annotations={"isthmus.io/weight": "300"})
    await export_service(west, unique, "r", ready=1)
    await _imported(mesh, "east", unique, "w")
    await _imported(mesh, "east", unique, "r")
    await mesh.stop("east")
    await export_service(west, unique, "w", annotations={"isthmus.io/weight": "50"})
    await export_service(west, unique, "r", ready=3)
    await asyncio.sleep(0.5)
    await mesh.start("east")

    async def updated() -> bool:
        w, r = await mesh.gs("east", unique, "w"), await mesh.gs("east", unique, "r")
        assert w is not None and r is not None
        assert w["spec"]["endpoints"][0]["weight"] == 50, w["spec"]["endpoints"]
        (endpoint,) = r["spec"]["endpoints"]
        assert endpoint["readyEndpoints"] == 3, endpoint
        return True

    await eventually(updated, what="changes made while east was down")


async def test_restart_skips_what_is_unchanged_and_repairs_what_changed_while_down(
        mesh: Mesh, unique: str) -> None:
    """A full pass records a digest in the GlobalService status (``resync.py``); after a
    restart a service whose objects still give that digest is not re-checked, and one
    whose mirror Service or GlobalService status was edited while east was down is."""
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    west, east = mesh["west"].admin, mesh["east"].admin
    for name in ("a", "b", "c"):
        await export_service(west, unique, name)

    async def complete() -> dict[str, dict[str, Any]]:
        found = {}
        for name in ("a", "b", "c"):
            gs = await mesh.gs("east", unique, name)
            assert gs is not None and (gs.get("status") or {}).get("syncedFrom"), gs
            assert all(cv["vips"] for cv in gs["status"]["clusterVips"])
            found[name] = gs
        return found

    written = await eventually(complete, what="imports with their sync digest")
    b_port = written["b"]["spec"]["ports"][0]["outboundPort"]
    c_vips = written["c"]["status"]["vips"]
    await mesh.stop("east")
    # while east is down: another manager edits b's mirror Service and c's status
    svc = await east.get(SERVICES, "b-global", unique)
    await east.apply(SERVICES, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "b-global", "namespace": unique},
        "spec": {"ports": [{**p, "targetPort": 1} for p in svc["spec"]["ports"]]},
    }, field_manager="someone", force=True)
    await east.apply(GLOBALSERVICES, {
        "apiVersion": "isthmus.io/v1alpha1", "kind": "GlobalService",
        "metadata": {"name": "c", "namespace": unique},
        "status": {"vips": ["10.96.99.99"]},
    }, field_manager="someone", force=True, subresource="status")
    controller = await mesh.start("east")

    async def repaired() -> bool:
        b = await east.get(SERVICES, "b-global", unique)
        assert b["spec"]["ports"][0]["targetPort"] == b_port, b["spec"]["ports"]
        c = await mesh.gs("east", unique, "c")
        assert c is not None and c["status"]["vips"] == c_vips, c["status"]
        return True

    await eventually(repaired, what="edits made while east was down undone")
    await controller.wait_idle()
    skipped = [s.value for m in controller.metrics.resync_unchanged.collect()
               for s in m.samples if s.name.endswith("_total")]
    assert skipped and skipped[0] >= 1  # a, at least (other tests' services may count too)
    after = await mesh.gs("east", unique, "a")
    assert after is not None and after["metadata"]["resourceVersion"] == \
        written["a"]["metadata"]["resourceVersion"]  # a: not written again


async def _mirror_names(api: KubeApi, ns: str) -> set[tuple[str, str]]:
    found = set()
    for res in (SERVICES, ENDPOINTSLICES, GLOBALSERVICES, SERVICEIMPORTS):
        for item in (await api.list(res, ns))["items"]:
            found.add((res.kind, item["metadata"]["name"]))
    return found


async def test_unlink_removes_exactly_that_links_objects(mesh: Mesh, unique: str) -> None:
    for m in ("west", "east", "central"):
        await ensure_namespace(mesh[m].admin, unique)
    east = mesh["east"].admin
    await export_service(mesh["central"].admin, unique, "only-c")
    await export_service(mesh["central"].admin, unique, "both")
    await export_service(mesh["west"].admin, unique, "both")
    await export_service(mesh["west"].admin, unique, "only-w")
    await export_service(east, unique, "local")  # east's own exported Service

    def complete(gs: dict[str, Any] | None, clusters: int) -> bool:
        # status is written last, after the pinned objects: then every object is in place
        cvips = ((gs or {}).get("status") or {}).get("clusterVips") or []
        return len(cvips) == clusters and all(c["vips"] for c in cvips)

    async def both_merged() -> bool:
        gs = await mesh.gs("east", unique, "both")
        assert gs is not None and len(gs["spec"]["endpoints"]) == 2
        return complete(gs, 2) and complete(await mesh.gs("east", unique, "only-c"), 1) and \
            complete(await mesh.gs("east", unique, "only-w"), 1)

    await eventually(both_merged, what="imports from west and central")
    before = await _mirror_names(east, unique)
    central_link = await east.get(LINKS, "central")

    await mesh.unlink("east", "central")

    async def cleaned() -> bool:
        now = await _mirror_names(east, unique)
        expected = before - {
            ("GlobalService", "only-c"), ("ServiceImport", "only-c"),
            ("Service", "only-c-global"),
            ("EndpointSlice", "only-c-global"), ("Service", "only-c-central-c7"),
            ("EndpointSlice", "only-c-central-c7"), ("Service", "both-central-c7"),
            ("EndpointSlice", "both-central-c7"),
        }
        assert now == expected, (sorted(now - expected), sorted(expected - now))
        gs = await mesh.gs("east", unique, "both")
        assert gs is not None
        assert [e["cluster"] for e in gs["spec"]["endpoints"]] == ["west"]
        assert "link.isthmus.io/central" not in gs["metadata"]["labels"]
        return True

    await eventually(cleaned, what="central's objects removed")
    assert await east.get(SERVICES, "local", unique)
    # the CLI path, with or without a controller: nothing left, twice harmless
    assert await remove_link_objects(east, central_link["metadata"]["uid"]) == 0
    assert await remove_link_objects(east, "central") == 0

    # restore the mesh; then remove the link's objects with the controller stopped
    await mesh.link("east", "central")
    await eventually(both_merged, what="re-imported")
    await mesh.stop("east")
    try:
        await mesh.unlink("east", "central")
        # The count covers every namespace, and other tests of the shared mesh may have left
        # central's mirrors in theirs: count what central owns, here and in all.
        owned, here = 0, 0
        for res in (GLOBALSERVICES, SERVICES, ENDPOINTSLICES, SERVICEIMPORTS):
            items = (await east.list(
                res, label_selector="isthmus.io/mirror=true,link.isthmus.io/central"))["items"]
            owned += len(items)
            here += sum(i["metadata"]["namespace"] == unique for i in items)
        # only-c: 6 deleted (its ServiceImport too); both: pinned pair deleted, 4 shared
        # stripped (the ServiceImport too)
        assert here == 12
        removed = await remove_link_objects(east, "central")
        assert removed == owned
        now = await _mirror_names(east, unique)
        assert ("GlobalService", "only-c") not in now
        assert ("ServiceImport", "only-c") not in now
        assert ("ServiceImport", "both") in now
        assert ("Service", "both-central-c7") not in now
        gs = await mesh.gs("east", unique, "both")
        assert gs is not None and [e["cluster"] for e in gs["spec"]["endpoints"]] == ["west"]
        assert await remove_link_objects(east, "central") == 0
    finally:
        await mesh.link("east", "central")
        await mesh.start("east")
    await eventually(both_merged, what="re-imported after restart")


async def _catalog_endpoint_is(api: KubeApi, ip: str, pod: str, port: int) -> bool:
    found = await get_or_none(api, ENDPOINTSLICES, "isthmus-mirror-leader", "isthmus-system")
    if found is None:
        return False
    assert found["metadata"]["labels"]["kubernetes.io/service-name"] == "isthmus-mirror"
    return (
        [e["addresses"] for e in found["endpoints"]] == [[ip]]
        and found["endpoints"][0]["targetRef"]["name"] == pod
        and [(p["name"], p["port"]) for p in found["ports"]] == [("grpc-catalog", port)]
    )


async def test_two_replicas_one_writes(mesh: Mesh, unique: str) -> None:
    for m in ("east", "central"):
        await ensure_namespace(mesh[m].admin, unique)
    await mesh.stop("central")
    member = mesh["central"]
    try:
        a = await mesh.start("central", wait=False, leader_election=True, identity="replica-a",
                             pod_ip="10.9.0.1")
        task_a = member.task
        await mesh.wait_ready("central")
        b = await mesh.start("central", wait=False, leader_election=True, identity="replica-b",
                             pod_ip="10.9.0.2")
        task_b = member.task
        await export_service(mesh["east"].admin, unique, "led")
        await _imported(mesh, "central", unique, "led")
        await asyncio.sleep(0.5)
        assert a.ready.is_set() and not b.ready.is_set()
        # taken as the ServiceAccount, which has no `create` on Leases: install made it
        lease = await member.admin.get(LEASES, "isthmus-mirror", "isthmus-system")
        assert lease["spec"]["holderIdentity"] == "replica-a"
        written = a.metrics.objects_written
        assert sum(s.value for m in written.collect() for s in m.samples
                   if s.name.endswith("_total")) > 0
        assert not any(s.value for m in b.metrics.objects_written.collect() for s in m.samples)
        # the catalog Service's one endpoint is the leader (written by it, as the SA)
        await eventually(lambda: _catalog_endpoint_is(member.admin, "10.9.0.1", "replica-a",
                                                           member.catalog_port),
                         what="catalog endpoint = replica-a")
        # the leader goes away (releases the Lease): the standby takes over
        assert task_a is not None
        task_a.cancel()
        await asyncio.gather(task_a, return_exceptions=True)
        member.controller, member.task = b, task_b
        await mesh.wait_ready("central", timeout=15)
        await export_service(mesh["east"].admin, unique, "after")
        await _imported(mesh, "central", unique, "after")
        assert any(s.value for m in b.metrics.objects_written.collect() for s in m.samples)
        await eventually(lambda: _catalog_endpoint_is(member.admin, "10.9.0.2", "replica-b",
                                                           member.catalog_port),
                         what="catalog endpoint = replica-b")
    finally:
        await mesh.stop("central")
        await mesh.start("central")


async def test_service_account_is_least_privilege(mesh: Mesh) -> None:
    api = mesh["west"].api
    assert api is not None
    stray = {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "stray", "namespace": "isthmus-system"}}
    forbidden = [
        api.list(SECRETS, "isthmus-system"),
        api.create(SECRETS, stray, "isthmus-system"),  # the leaf Secrets come from install
        api.get(SECRETS, "isthmus-mirror-tls", "isthmus-system"),  # fills them, never reads
        api.merge_patch(SECRETS, "isthmus-cluster-ca", {"data": {}}, "isthmus-system",
                        field_manager="t"),
        api.get(SECRETS, "isthmus-cluster-ca", "kube-system"),
        api.list(SECRETS, "default"),
        api.create(NAMESPACES, {"metadata": {"name": "nope"}}),
        api.delete(LINKS, "east"),
        # the Lease comes from install: no Lease may be created, not even its own
        api.create(LEASES, {**lease_placeholder(), "metadata": {"name": "stray"}},
                   "isthmus-system"),
        api.create(LEASES, lease_placeholder(), "isthmus-system"),
    ]
    for call in forbidden:
        try:
            await call
        except kube_errors.ForbiddenError:
            continue
        raise AssertionError("the mirror's ServiceAccount may do more than it needs")
    # and what it needs, it can do (the whole suite runs the controllers as this account)
    assert await api.get(SECRETS, "isthmus-cluster-ca", "isthmus-system")
    assert await api.get(LEASES, "isthmus-mirror", "isthmus-system")
    assert (await api.list(LINKS))["items"]


async def test_missing_lease_waits_without_leading_then_leads(mesh: Mesh) -> None:
    """The mirror cannot create its Lease (install does). Without it a replica neither
    crashes nor leads, warning once; once install's creation runs again it leads; a leader
    whose Lease is deleted stops at once."""
    member = mesh["central"]
    await mesh.stop("central")
    await member.admin.delete(LEASES, "isthmus-mirror", "isthmus-system")
    try:
        with capture_logs() as logs:
            c = await mesh.start("central", wait=False, leader_election=True, identity="replica-a")
            task = member.task
            assert task is not None
            await asyncio.sleep(2.5)  # about five retries (every 0.5 s here)
            assert not task.done()
            assert c.elector is not None and not c.elector.leading and not c.ready.is_set()
            assert c.elector.lease_missing
            missing = [e for e in logs if e["event"].startswith("leader Lease missing")]
            assert len(missing) == 1, missing  # once per absence, not once per retry
            assert missing[0]["log_level"] == "warning"
            assert "isthmus install" in missing[0]["event"]
            assert await create_placeholders(member.admin) == ["isthmus-mirror"]
            await mesh.wait_ready("central", timeout=15)
        lease = await member.admin.get(LEASES, "isthmus-mirror", "isthmus-system")
        assert lease["spec"]["holderIdentity"] == "replica-a"
        assert not c.elector.lease_missing
        # deleted under a leader: it stops, since a standby could take a recreated Lease
        await member.admin.delete(LEASES, "isthmus-mirror", "isthmus-system")
        with pytest.raises(LeadershipLost, match="deleted"):
            await asyncio.wait_for(task, 10)
        assert not c.ready.is_set()
    finally:
        await create_placeholders(member.admin)
        await mesh.stop("central")
        await mesh.start("central")


async def test_missing_leaf_secret_is_a_clear_error(mesh: Mesh) -> None:
    """The mirror patches the leaf Secrets that install created; if one is gone it says so
    (and cannot recreate it), and once install has run again it fills it."""
    member = mesh["central"]
    assert member.api is not None
    certs = MirrorCertificates(member.api, "isthmus-system")
    await certs.load()
    leaf = certs.issue_gateway()
    await member.admin.delete(SECRETS, "isthmus-gateway-tls", "isthmus-system")
    try:
        with pytest.raises(CertificateError, match="run `isthmus install`"):
            await certs.publish_gateway(leaf)
    finally:
        assert await create_placeholders(member.admin) == ["isthmus-gateway-tls"]
    await certs.publish_gateway(leaf)
    secret = await member.admin.get(SECRETS, "isthmus-gateway-tls", "isthmus-system")
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]) == leaf.chain_pem()
    assert secret["metadata"]["annotations"]["isthmus.io/fingerprint"] == leaf.fingerprint


async def test_stale_mirrors_removed_only_after_the_grace_period(mesh: Mesh, unique: str) -> None:
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    await export_service(mesh["west"].admin, unique, "graced")
    await _imported(mesh, "east", unique, "graced")
    await mesh.stop("east")
    await mesh.start("east", stale_grace_seconds=3.0)
    stopping = dt.datetime.now(dt.UTC)  # east cannot see west down before this
    await mesh.stop("west")
    try:
        async def stale() -> bool:
            gs = await mesh.gs("east", unique, "graced")
            assert gs is not None and condition(gs, "Stale")["status"] == "True"
            return True

        await eventually(stale, what="Stale")

        async def removed() -> bool:
            assert await mesh.gs("east", unique, "graced") is None
            assert await mesh.svc("east", unique, "graced-global") is None
            return True

        await eventually(removed, timeout=20, what="removal after the grace period")
        events = await mesh["east"].admin.list(EVENTS, "default")
        expired = [dt.datetime.fromisoformat(e["eventTime"]) for e in events["items"]
                   if e["reason"] == "StaleGraceExpired"
                   and dt.datetime.fromisoformat(e["eventTime"]) >= stopping]
        assert expired, "no StaleGraceExpired event after west stopped"
        # The spec's "only after the grace period" (3 s), counted from before west stopped,
        # so a slow machine only adds to it; the event is stamped when the removal is decided.
        assert min(expired) - stopping >= dt.timedelta(seconds=3)
    finally:
        await mesh.start("west")
        await mesh.stop("east")
        await mesh.start("east")
    # the peer is back: its services are imported again
    await _imported(mesh, "east", unique, "graced")
