"""Import boundaries on real API servers, with the peer's operator as the adversary: what a
linked peer exports may only land where this cluster allows (docs/mirror-import-policy.md).

The shared mesh (west, east, central) covers namespaces, ownership and names; private
control planes cover the limits per peer and refused writes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from mirror_helpers import (
    Mesh,
    apply,
    condition,
    ensure_namespace,
    eventually,
    export_service,
)

from isthmus.devcluster import ControlPlane
from isthmus.kube import errors as kube_errors
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import (
    ENDPOINTSLICES,
    EVENTS,
    GLOBALSERVICES,
    LINKS,
    SERVICES,
    Resource,
)
from isthmus.mirror.controller import MirrorController

RESOURCEQUOTAS = Resource("", "v1", "resourcequotas", "ResourceQuota", namespaced=True)
PROTECTED = ("kube-system", "kube-public", "kube-node-lease", "isthmus-system")


async def _names(api: KubeApi, res: Resource, ns: str) -> set[str]:
    return {i["metadata"]["name"] for i in (await api.list(res, ns))["items"]
            if (i["metadata"].get("labels") or {}).get("isthmus.io/mirror") == "true"}


async def _events(api: KubeApi, reason: str) -> list[dict[str, Any]]:
    return [e for e in (await api.list(EVENTS, "default"))["items"] if e["reason"] == reason]


async def _wait_gs(mesh: Mesh, cluster: str, ns: str, name: str) -> dict[str, Any]:
    async def there() -> dict[str, Any] | None:
        gs = await mesh.gs(cluster, ns, name)
        assert gs is not None and (gs.get("status") or {}).get("vips"), "not yet imported"
        return gs

    return await eventually(there, what=f"{ns}/{name} imported in {cluster}")


def _refused(c: MirrorController, peer: str, reason: str) -> float:
    return float(c.metrics.refused.labels(peer=peer, reason=reason)._value.get())


async def test_protected_namespaces_are_never_imported(mesh: Mesh, unique: str) -> None:
    west, east = mesh["west"].admin, mesh["east"].admin
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    try:
        for ns in PROTECTED:
            await export_service(west, ns, f"evil-{unique}")
        await export_service(west, unique, "control")
        await _wait_gs(mesh, "east", unique, "control")

        async def reported() -> dict[str, Any]:
            cond = condition(await mesh.link_status("east", "west"), "NamespacesRefused")
            assert cond["status"] == "True", cond
            assert "ProtectedNamespace" in cond["reason"], cond
            for ns in PROTECTED:
                assert f"namespace {ns} is protected" in cond["message"], cond
            return cond

        await eventually(reported, what="NamespacesRefused on Link east/west")
        for ns in PROTECTED:
            assert await mesh.gs("east", ns, f"evil-{unique}") is None
            assert not {n for n in await _names(east, SERVICES, ns) if unique in n}
            assert not {n for n in await _names(east, ENDPOINTSLICES, ns) if unique in n}

        async def evented() -> bool:
            notes = " ".join(e["note"] for e in await _events(east, "NamespaceRefused"))
            for ns in PROTECTED:
                assert f"into {ns}:" in notes, notes
            return True

        await eventually(evented, what="NamespaceRefused Events")
        assert _refused(mesh["east"].c, "west", "ProtectedNamespace") >= len(PROTECTED)
    finally:
        for ns in PROTECTED:
            with contextlib.suppress(kube_errors.NotFoundError):
                await west.delete(SERVICES, f"evil-{unique}", ns)

    async def cleared() -> bool:
        cond = condition(await mesh.link_status("east", "west"), "NamespacesRefused")
        assert cond["status"] == "False", cond
        return True

    await eventually(cleared, what="NamespacesRefused cleared")


async def test_operator_denied_and_link_allowed_namespaces(mesh: Mesh, unique: str) -> None:
    """Denied namespaces (a setting) and a Link's allowedNamespaces; changing the Link
    imports what it now allows and removes what it no longer does."""
    allowed, other, denied = f"{unique}-a", f"{unique}-b", f"{unique}-d"
    for m in ("west", "east"):
        for ns in (allowed, other, denied):
            await ensure_namespace(mesh[m].admin, ns)
    west, east = mesh["west"].admin, mesh["east"].admin
    await mesh.stop("east")
    await mesh.start("east", denied_namespaces=f"{denied}, unrelated")
    link = await east.get(LINKS, "west")
    try:
        for ns in (allowed, other, denied):
            await export_service(west, ns, "svc")
        await _wait_gs(mesh, "east", allowed, "svc")
        await _wait_gs(mesh, "east", other, "svc")

        async def denied_reported() -> bool:
            cond = condition(await mesh.link_status("east", "west"), "NamespacesRefused")
            assert "DeniedNamespace" in cond["reason"], cond
            notes = " ".join(e["note"] for e in await _events(east, "NamespaceRefused"))
            assert denied in notes, notes
            refusal = mesh["east"].c.peers["west"].admission.refused[(denied, "svc")]
            assert refusal.reason == "DeniedNamespace"
            return True

        await eventually(denied_reported, what="DeniedNamespace on the Link")
        assert await mesh.gs("east", denied, "svc") is None

        await apply(east, LINKS, {**link, "metadata": {"name": "west"},
                                  "spec": {**link["spec"], "allowedNamespaces": [allowed]}})

        async def narrowed() -> bool:
            assert await mesh.gs("east", other, "svc") is None
            assert not await _names(east, SERVICES, other)
            cond = condition(await mesh.link_status("east", "west"), "NamespacesRefused")
            assert "NamespaceNotAllowed" in cond["reason"], cond
            # the condition names the first few namespaces, the Events up to ten one by one
            # and the rest in a list (the shared mesh has many)
            notes = " ".join(e["note"] for e in await _events(east, "NamespaceRefused"))
            assert other in notes, notes
            refusal = mesh["east"].c.peers["west"].admission.refused[(other, "svc")]
            assert refusal.message == f"namespace {other} is not in the Link's allowedNamespaces"
            return True

        await eventually(narrowed, what="import outside allowedNamespaces removed")
        assert await mesh.gs("east", allowed, "svc") is not None
        assert await mesh.gs("east", denied, "svc") is None
    finally:
        await apply(east, LINKS, {**link, "metadata": {"name": "west"},
                                  "spec": {k: v for k, v in link["spec"].items()
                                           if k != "allowedNamespaces"}})
        await mesh.stop("east")
        await mesh.start("east")
    await _wait_gs(mesh, "east", other, "svc")  # the Link allows it again


async def test_foreign_endpoint_slice_is_never_rewritten(mesh: Mesh, unique: str) -> None:
    """A local Service's own EndpointSlice holds the name the mirror wants: untouched, the
    conflict is on the GlobalService and the Link, and no VIP is served without routing."""
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    east = mesh["east"].admin
    await apply(east, SERVICES, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "local", "namespace": unique},
        "spec": {"ports": [{"port": 80}]}})
    local_slice = await apply(east, ENDPOINTSLICES, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-global", "namespace": unique,
                     "labels": {"kubernetes.io/service-name": "local"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.9.9.9"], "conditions": {"ready": True}}]})
    await export_service(mesh["west"].admin, unique, "web")

    async def conflicted() -> dict[str, Any]:
        gs = await mesh.gs("east", unique, "web")
        assert gs is not None
        cond = condition(gs, "Conflict")
        assert cond["status"] == "True" and "EndpointSlice" in cond["message"], cond
        return gs

    gs = await eventually(conflicted, what="Conflict for the slice's name")
    after = await east.get(ENDPOINTSLICES, "web-global", unique)
    assert after["metadata"]["resourceVersion"] == local_slice["metadata"]["resourceVersion"]
    assert after["metadata"]["labels"] == {"kubernetes.io/service-name": "local"}
    assert after["endpoints"][0]["addresses"] == ["10.9.9.9"]
    # the merged Service is kept out with its slice: no VIP for web.<ns>.global
    assert await mesh.svc("east", unique, "web-global") is None
    assert (gs.get("status") or {}).get("vips") in (None, [])
    assert await mesh.svc("east", unique, "web-west-c4") is not None  # the pinned pair is fine

    async def link_says() -> bool:
        cond = condition(await mesh.link_status("east", "west"), "Conflict")
        assert cond["status"] == "True" and "web-global" in cond["message"], cond
        return True

    await eventually(link_says, what="Link Conflict")
    await east.delete(ENDPOINTSLICES, "web-global", unique)

    async def taken() -> bool:
        gs = await mesh.gs("east", unique, "web")
        assert gs is not None and condition(gs, "Conflict")["status"] == "False"
        assert (gs.get("status") or {}).get("vips")
        sl = await east.get(ENDPOINTSLICES, "web-global", unique)
        return bool(sl["metadata"]["labels"].get("isthmus.io/mirror") == "true")

    await eventually(taken, what="the mirror takes the freed name")


async def test_names_that_used_to_collide_are_both_imported(mesh: Mesh, unique: str) -> None:
    """``web`` pinned to west and ``web-west`` merged were both ``web-west-global``."""
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    await export_service(mesh["west"].admin, unique, "web", ports=[("http", 80)])
    await export_service(mesh["west"].admin, unique, "web-west", ports=[("http", 81)])
    for name in ("web", "web-west"):
        gs = await _wait_gs(mesh, "east", unique, name)
        assert condition(gs, "Conflict")["status"] == "False"
    assert await _names(mesh["east"].admin, SERVICES, unique) == {
        "web-global", "web-west-c4", "web-west-global", "web-west-west-c4"}
    ports = {}
    for name in ("web-west-c4", "web-west-global"):
        svc = await mesh.svc("east", unique, name)
        assert svc is not None
        ports[name] = [p["port"] for p in svc["spec"]["ports"]]
    assert ports == {"web-west-c4": [80], "web-west-global": [81]}


async def test_objects_named_by_an_older_scheme_are_collected(mesh: Mesh, unique: str) -> None:
    """A pinned Service and slice written under the old name (``<svc>-<cluster>-global``),
    found at start: deleted, and the Service whose merged name they held then gets it."""
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    east = mesh["east"].admin
    uid = (await east.get(LINKS, "west"))["metadata"]["uid"]
    labels = {"isthmus.io/mirror": "true", "app.kubernetes.io/managed-by": "isthmus",
              "isthmus.io/global-service": "old", "isthmus.io/pinned-cluster": "west",
              "isthmus.io/peer-cluster": "west", "isthmus.io/link-uid": uid,
              "link.isthmus.io/west": uid}
    await mesh.stop("east")
    try:
        legacy = await east.apply(SERVICES, {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "old-west-global", "namespace": unique, "labels": labels},
            "spec": {"ports": [{"port": 8080, "targetPort": 20999}]}},
            field_manager="isthmus-mirror", force=True)
        await east.apply(ENDPOINTSLICES, {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "old-west-global", "namespace": unique,
                         "labels": {**labels, "kubernetes.io/service-name": "old-west-global"}},
            "addressType": "IPv4", "ports": [{"port": 20999, "protocol": "TCP"}],
            "endpoints": []}, field_manager="isthmus-mirror", force=True)
        await export_service(mesh["west"].admin, unique, "old")
        await export_service(mesh["west"].admin, unique, "old-west")
    finally:
        await mesh.start("east")

    async def migrated() -> bool:
        svc = await mesh.svc("east", unique, "old-west-global")
        assert svc is not None and svc["metadata"]["uid"] != legacy["metadata"]["uid"]
        assert svc["metadata"]["labels"]["isthmus.io/global-service"] == "old-west"
        assert await mesh.svc("east", unique, "old-west-c4") is not None
        gs = await mesh.gs("east", unique, "old-west")
        assert gs is not None and condition(gs, "Conflict")["status"] == "False", gs
        assert (gs.get("status") or {}).get("vips") == [svc["spec"]["clusterIP"]]
        sl = await east.get(ENDPOINTSLICES, "old-west-global", unique)
        assert sl["metadata"]["labels"]["isthmus.io/global-service"] == "old-west"
        return True

    await eventually(migrated, timeout=30, what="old names collected, new names taken")
    assert await _names(east, SERVICES, unique) == {
        "old-global", "old-west-c4", "old-west-global", "old-west-west-c4"}


async def _private(fresh_cluster: Callable[..., ControlPlane], mesh: Mesh,
                   peers: int) -> tuple[str, list[str]]:
    """An importer and ``peers`` exporters linked to it, each on its own control plane."""
    importer = fresh_cluster()
    await mesh.add(importer)
    names = []
    for _ in range(peers):
        cp = fresh_cluster()
        await mesh.add(cp)
        await mesh.link(importer.name, cp.name)
        await mesh.link(cp.name, importer.name)
        names.append(cp.name)
    return importer.name, names


async def test_limits_per_peer_refuse_visibly_and_spare_other_peers(
    fresh_cluster: Callable[..., ControlPlane], fresh_mesh: Callable[[], Mesh]
) -> None:
    mesh = fresh_mesh()
    home, (greedy, modest) = await _private(fresh_cluster, mesh, 2)
    for name in (home, greedy, modest):
        await ensure_namespace(mesh[name].admin, "shop")
    # 20 outbound ports, half per peer: 10; three services; three ports each
    for name in (greedy, modest):
        await mesh.start(name)
    await mesh.start(home, port_range="20000-20019", peer_port_share=0.5,
                     max_services_per_link=3, max_ports_per_service=3)
    g = mesh[greedy].admin
    await export_service(g, "shop", "a1", ports=[("a", 1), ("b", 2), ("c", 3)])  # 6 ports
    await export_service(g, "shop", "a2", ports=[("a", 1), ("b", 2), ("c", 3)])  # 12 > 10
    await export_service(g, "shop", "a3")  # 8
    await export_service(g, "shop", "a4")  # 10, third service
    await export_service(g, "shop", "a5")  # a fourth service
    await export_service(g, "shop", "a6", ports=[(f"p{i}", 80 + i) for i in range(4)])
    await export_service(mesh[modest].admin, "shop", "b1")
    await export_service(mesh[modest].admin, "shop", "b2")

    async def settled() -> bool:
        names = {i["metadata"]["name"]
                 for i in (await mesh[home].admin.list(GLOBALSERVICES, "shop"))["items"]}
        assert names == {"a1", "a3", "a4", "b1", "b2"}, names
        cond = condition(await mesh.link_status(home, greedy), "LimitExceeded")
        assert cond["status"] == "True", cond
        assert set(cond["reason"].split(",")) == {
            "PortShareExceeded", "TooManyPorts", "TooManyServices"}, cond
        for name in ("a2", "a5", "a6"):
            assert f"shop/{name}:" in cond["message"], cond
        return True

    await eventually(settled, timeout=30, what="limits applied")
    other = await mesh.link_status(home, modest)
    assert condition(other, "LimitExceeded")["status"] == "False"
    assert condition(other, "Conflict")["status"] == "False"
    c = mesh[home].c
    assert _refused(c, greedy, "TooManyServices") == 1
    assert _refused(c, greedy, "PortShareExceeded") == 1
    assert _refused(c, greedy, "TooManyPorts") == 1
    assert _refused(c, modest, "TooManyServices") == 0
    used = {port for key, port in c.allocator.by_key.items() if key.name.startswith("a")}
    assert len(used) <= 10

    async def evented() -> bool:
        events = await _events(mesh[home].admin, "LimitExceeded")
        notes = " ".join(e["note"] for e in events if e["regarding"]["name"] == greedy)
        for reason in ("PortShareExceeded", "TooManyPorts", "TooManyServices"):
            assert f"({reason})" in notes, notes
        assert not [e for e in events if e["regarding"]["name"] == modest]
        return True

    await eventually(evented, what="one LimitExceeded Event per limit")
    # the peer drops a service: the next in line is admitted
    await g.delete(SERVICES, "a1", "shop")

    async def next_in_line() -> bool:
        names = {i["metadata"]["name"]
                 for i in (await mesh[home].admin.list(GLOBALSERVICES, "shop"))["items"]}
        assert names == {"a2", "a3", "a4", "b1", "b2"}, names
        return True

    await eventually(next_in_line, what="a2 admitted once a1 is gone")


def _probe(res: Resource, ns: str) -> dict[str, Any]:
    meta = {"metadata": {"name": "probe", "namespace": ns}}
    if res is GLOBALSERVICES:
        return {"apiVersion": "isthmus.io/v1alpha1", "kind": "GlobalService", **meta,
                "spec": {"hosts": [f"probe.{ns}.global"], "ports": [{"port": 80}]}}
    return {"apiVersion": "v1", "kind": "Service", **meta, "spec": {"ports": [{"port": 80}]}}


async def _quota_says(api: KubeApi, ns: str, res: Resource, *, admitted: bool) -> None:
    """Wait until the API server admits (or refuses) a new ``res`` in ``ns``: quota
    admission reads the quotas from a cache."""
    async def as_expected() -> bool:
        try:
            await api.create(res, _probe(res, ns), ns)
        except kube_errors.ForbiddenError as exc:
            assert not admitted, exc
            return True
        await api.delete(res, "probe", ns)
        assert admitted, f"a {res.kind} is still admitted"
        return True

    await eventually(as_expected, what=f"quota on {res.kind} in force")


async def test_refused_global_service_leaves_nothing_behind(
    mesh: Mesh, unique: str
) -> None:
    """The API server refuses the GlobalService (a quota of 0): no mirror Service or slice
    is written, and the Link says why. A refused Service leaves a GlobalService without an
    address, which DNS does not serve."""
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    east = mesh["east"].admin
    await east.create(RESOURCEQUOTAS, {
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "no-globalservices", "namespace": unique},
        "spec": {"hard": {"count/globalservices.isthmus.io": "0"}}}, unique)
    await _quota_says(east, unique, GLOBALSERVICES, admitted=False)
    await export_service(mesh["west"].admin, unique, "refused")

    async def failed() -> bool:
        cond = condition(await mesh.link_status("east", "west"), "Conflict")
        assert cond["reason"] == "WriteFailed" and f"{unique}/refused" in cond["message"], cond
        return True

    await eventually(failed, what="WriteFailed on the Link")
    assert await mesh.gs("east", unique, "refused") is None
    assert not await _names(east, SERVICES, unique)
    assert not await _names(east, ENDPOINTSLICES, unique)

    # Services refused instead: the GlobalService exists, but without any address
    await east.delete(RESOURCEQUOTAS, "no-globalservices", unique)
    await east.create(RESOURCEQUOTAS, {
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "no-services", "namespace": unique},
        "spec": {"hard": {"services": "0"}}}, unique)
    await _quota_says(east, unique, GLOBALSERVICES, admitted=True)
    await _quota_says(east, unique, SERVICES, admitted=False)
    await export_service(mesh["west"].admin, unique, "refused", ports=[("http", 8081)])

    async def without_address() -> bool:
        gs = await mesh.gs("east", unique, "refused")
        assert gs is not None
        assert not (gs.get("status") or {}).get("vips")
        ready = condition(gs, "Ready")
        assert ready["status"] == "False" and ready["reason"] == "WriteFailed", ready
        assert "quota" in ready["message"], ready
        cond = condition(await mesh.link_status("east", "west"), "Conflict")
        assert cond["reason"] == "WriteFailed", cond
        return True

    await eventually(without_address, timeout=30, what="GlobalService without address")
    assert not await _names(east, SERVICES, unique)
    await east.delete(RESOURCEQUOTAS, "no-services", unique)
    await _quota_says(east, unique, SERVICES, admitted=True)
    await export_service(mesh["west"].admin, unique, "refused", ports=[("http", 8082)])
    await _wait_gs(mesh, "east", unique, "refused")


async def test_update_of_a_replaced_object_is_refused(api: KubeApi, unique: str) -> None:
    """The mirror saw ``x`` as its own (UID u1); someone replaced it since. The write carries
    u1 as a precondition, so the API server refuses it instead of rewriting the new object."""
    from isthmus.mirror.applier import Applier
    from isthmus.mirror.errors import RetryableError, WriteRejected
    from isthmus.mirror.metrics import MirrorMetrics
    from isthmus.mirror.plan import Apply

    await ensure_namespace(api, unique)
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "x", "namespace": unique, "labels": {"isthmus.io/mirror": "true"}},
            "spec": {"ports": [{"port": 80}]}}
    ours = await apply(api, SERVICES, body)
    await api.delete(SERVICES, "x", unique)
    theirs = await apply(api, SERVICES, {**body, "metadata": {"name": "x", "namespace": unique,
                                                             "labels": {"team": "theirs"}}})
    applier = Applier(api, MirrorMetrics(), attempts=1)
    want = {**body, "metadata": {**body["metadata"], "labels": {"isthmus.io/mirror": "true",
                                                                "written": "yes"}}}
    try:
        await applier.execute([Apply(want, check_first=False, uid=ours["metadata"]["uid"])])
    except (WriteRejected, RetryableError) as exc:
        assert "UID" in str(exc) or "uid" in str(exc), exc
    else:
        raise AssertionError("a write with a stale UID was accepted")
    after = await api.get(SERVICES, "x", unique)
    assert after["metadata"]["resourceVersion"] == theirs["metadata"]["resourceVersion"]
    assert after["metadata"]["labels"] == {"team": "theirs"}
    # the object's own UID is accepted
    await applier.execute([Apply(want, check_first=False, uid=theirs["metadata"]["uid"])])
    assert (await api.get(SERVICES, "x", unique))["metadata"]["labels"]["written"] == "yes"
