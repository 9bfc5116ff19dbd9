"""The reflector against a real API server: list+watch, restarts, 410 Gone, bookmarks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from isthmus.devcluster import ControlPlane
from isthmus.kube.backoff import Backoff
from isthmus.kube.client import KubeApi
from isthmus.kube.reflector import EventKind, Reflector, WatchSettings
from isthmus.kube.resources import CONFIGMAPS, NAMESPACES
from isthmus.kube.shapes import ObjectShape

FAST = WatchSettings(timeout_seconds=(5, 8), backoff=Backoff(initial=0.05, maximum=0.5))


class Recorder:
    """Consumes a reflector in a task and records events, so tests can wait for one."""

    def __init__(self, reflector: Reflector) -> None:
        self.reflector = reflector
        self.events: list[tuple[EventKind, str | None]] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for kind, obj in self.reflector.events():
            self.events.append((kind, obj["metadata"]["name"] if obj else None))

    async def wait_for(self, pred: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not pred():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out; events so far: {self.events}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


async def _drain_list(reflector: Reflector) -> None:
    async for _ in reflector._list():
        pass


async def _namespace(api: KubeApi, name: str) -> None:
    await api.create(NAMESPACES, {"metadata": {"name": name}})


async def _put(api: KubeApi, ns: str, name: str, value: str = "1") -> None:
    await api.apply(
        CONFIGMAPS,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
         "data": {"v": value}},
        field_manager="test",
    )


async def test_list_then_watch(api: KubeApi, unique: str) -> None:
    await _namespace(api, unique)
    await _put(api, unique, "a")
    rec = Recorder(Reflector(api, CONFIGMAPS, unique, settings=FAST))
    await rec.wait_for(lambda: ("SYNCED", None) in rec.events)
    assert ("ADDED", "a") in rec.events
    await _put(api, unique, "b")
    await _put(api, unique, "a", "2")
    await api.delete(CONFIGMAPS, "b", unique)
    await rec.wait_for(lambda: ("DELETED", "b") in rec.events)
    after_sync = rec.events[rec.events.index(("SYNCED", None)) + 1 :]
    assert after_sync == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert set(rec.reflector.store) >= {(unique, "a")}
    assert (unique, "b") not in rec.reflector.store
    await rec.stop()


async def test_list_is_paged_and_transformed(api: KubeApi, unique: str) -> None:
    """A LIST in pages of 2 still yields every object once; managedFields are dropped by
    default and a transform sees (and may replace) every listed and watched object."""
    await _namespace(api, unique)
    for i in range(5):
        await _put(api, unique, f"p{i}")
    seen: list[str] = []

    def keep_name(obj: dict[str, Any]) -> dict[str, Any]:
        seen.append(obj["metadata"]["name"])
        meta = obj["metadata"]
        return {"kind": obj["kind"], "metadata": {k: meta[k] for k in
                                                  ("name", "namespace", "resourceVersion")}}

    paged = WatchSettings(timeout_seconds=(5, 8), backoff=FAST.backoff, list_page=2)
    rec = Recorder(Reflector(api, CONFIGMAPS, unique, settings=paged, transform=keep_name))
    await rec.wait_for(lambda: ("SYNCED", None) in rec.events)
    mine = [f"p{i}" for i in range(5)]  # (kube-root-ca.crt may be listed too)
    assert sorted(n for k, n in rec.events if k == "ADDED" and n in mine) == mine
    assert sorted(n for n in seen if n in mine) == mine
    assert all("data" not in o for o in rec.reflector.store.values())
    await _put(api, unique, "p9")
    await rec.wait_for(lambda: ("ADDED", "p9") in rec.events)
    assert "data" not in rec.reflector.store[(unique, "p9")]
    await rec.stop()
    plain = Reflector(api, CONFIGMAPS, unique, settings=paged)
    await _drain_list(plain)
    assert {name for _, name in plain.store} >= {*mine, "p9"}
    assert all("managedFields" not in o["metadata"] for o in plain.store.values())
    # with a shape, pages are decoded into its fields only (the transform sees the rest absent)
    shaped = Reflector(api, CONFIGMAPS, unique, settings=paged, shape=ObjectShape,
                       transform=lambda o: o)
    await _drain_list(shaped)
    assert {name for _, name in shaped.store} >= {*mine, "p9"}
    for o in shaped.store.values():
        assert set(o) <= {"apiVersion", "kind", "metadata"}
        assert "managedFields" not in o["metadata"] and "creationTimestamp" not in o["metadata"]


async def test_api_server_restart_mid_watch(fresh_cluster: Callable[..., ControlPlane]) -> None:
    cp = fresh_cluster()
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        await _namespace(api, "r")
        await _put(api, "r", "before")
        rec = Recorder(Reflector(api, CONFIGMAPS, "r", settings=FAST))
        await rec.wait_for(lambda: ("SYNCED", None) in rec.events)
        await asyncio.to_thread(cp.restart_apiserver)
        await _put(api, "r", "after")
        await rec.wait_for(lambda: ("ADDED", "after") in rec.events)
        names = {k[1] for k in rec.reflector.store}
        assert {"before", "after"} <= names
        # No spurious deletes and no duplicate adds across the reconnect.
        assert not [e for e in rec.events if e[0] == "DELETED"]
        assert rec.events.count(("ADDED", "before")) == 1
        await rec.stop()
    finally:
        await api.close()


@pytest.mark.parametrize(("shape", "packed"), [(None, False), (ObjectShape, False), (ObjectShape, True)],
                         ids=["json", "shaped", "shaped-packed"])
async def test_gone_410_relists_and_diffs(fresh_cluster: Callable[..., ControlPlane],
                                          shape: type | None, packed: bool) -> None:
    """Changes made while the consumer was away, then history compacted: the next watch gets
    410 Gone, the reflector re-lists, and the diff yields exactly the missed changes (also
    when events are decoded into a shape: the ERROR event's Status code must survive; and
    with a packed store, whose diff compares bytes)."""
    cp = fresh_cluster(watch_cache=False)  # straight to etcd, so compaction bites
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        await _namespace(api, "g")
        for name in ("keep", "change", "drop"):
            await _put(api, "g", name)
        reflector = Reflector(api, CONFIGMAPS, "g", settings=FAST, shape=shape, packed=packed)
        rec = Recorder(reflector)
        await rec.wait_for(lambda: ("SYNCED", None) in rec.events)
        await rec.stop()  # the "controller" goes away, keeping its cache and resourceVersion
        lists_before = reflector.lists
        kept = reflector.store.raw(("g", "keep"))

        await _put(api, "g", "change", "2")
        await api.delete(CONFIGMAPS, "drop", "g")
        await _put(api, "g", "new")
        await asyncio.to_thread(cp.compact_etcd)

        rec = Recorder(reflector)
        await rec.wait_for(lambda: ("SYNCED", None) in rec.events)
        assert reflector.lists == lists_before + 1, "expected exactly one re-list after 410"
        assert sorted(rec.events[:-1]) == [("ADDED", "new"), ("DELETED", "drop"), ("MODIFIED", "change")]
        assert {k[1] for k in reflector.store} == {"keep", "change", "new"}
        assert isinstance(reflector.store.raw(("g", "keep")), bytes) is packed
        assert reflector.store[("g", "change")]["metadata"]["name"] == "change"
        # an unchanged object keeps its kept value, so what shared it still does
        assert reflector.store.raw(("g", "keep")) is kept
        await rec.stop()
    finally:
        await api.close()


async def test_list_expiring_half_way_relists_against_what_was_told(
        fresh_cluster: Callable[..., ControlPlane]) -> None:
    """Events are yielded page by page, so a LIST can fail after some were told (here its
    continue token expires: 410). The next LIST diffs against exactly what was told: no
    event lost, none repeated, nothing untold reported DELETED."""
    cp = fresh_cluster(watch_cache=False)
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        await _namespace(api, "h")
        for name in ("a", "b", "c"):
            await _put(api, "h", name)
        one_per_page = WatchSettings(timeout_seconds=(5, 8), backoff=FAST.backoff, list_page=1)
        reflector = Reflector(api, CONFIGMAPS, "h", settings=one_per_page)
        events = reflector.events()
        assert (await anext(events))[0] == "ADDED"  # "a", from the first page
        await _put(api, "h", "a", "2")
        await api.delete(CONFIGMAPS, "c", "h")
        await asyncio.to_thread(cp.compact_etcd)
        told: list[tuple[str, str | None]] = []
        while not told or told[-1][0] != "SYNCED":
            kind, obj = await anext(events)
            told.append((kind, obj["metadata"]["name"] if obj else None))
        await events.aclose()
        mine = [e for e in told if e[1] in ("a", "b", "c")]
        assert sorted(mine) == [("ADDED", "b"), ("MODIFIED", "a")]
        assert reflector.lists == 1  # the expired LIST never completed
        assert {k[1] for k in reflector.store} & {"a", "b", "c"} == {"a", "b"}
        assert reflector.store[("h", "a")]["data"] == {"v": "2"}
    finally:
        await api.close()


async def test_watch_survives_server_timeouts(api: KubeApi, unique: str) -> None:
    """The server ends each watch at timeoutSeconds; the reflector re-watches seamlessly."""
    await _namespace(api, unique)
    settings = WatchSettings(timeout_seconds=(1, 1), backoff=FAST.backoff)
    rec = Recorder(Reflector(api, CONFIGMAPS, unique, settings=settings))
    await rec.wait_for(lambda: ("SYNCED", None) in rec.events)
    await asyncio.sleep(2.5)  # at least two server-side watch timeouts
    await _put(api, unique, "late")
    await rec.wait_for(lambda: ("ADDED", "late") in rec.events)
    assert rec.reflector.lists == 1
    await rec.stop()


async def test_an_optional_resource_that_is_not_served_is_empty_until_it_is(
    fresh_cluster: Callable[..., ControlPlane],
) -> None:
    """A CRD that is not installed (the MCS API): synced and empty, then its objects once
    the CRD appears, and gone again when the CRD is deleted."""
    from isthmus.api.crds import create_if_absent, load_mcs_crds
    from isthmus.kube.apply import wait_crds_established
    from isthmus.kube.resources import CRDS, SERVICEEXPORTS

    cp = fresh_cluster()
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    reflector = Reflector(api, SERVICEEXPORTS, settings=FAST, optional=True, absent_retry=0.2)
    rec = Recorder(reflector)
    try:
        await rec.wait_for(lambda: ("SYNCED", None) in rec.events)
        assert reflector.served is False and not reflector.store
        crd = next(c for c in load_mcs_crds() if c["spec"]["names"]["kind"] == "ServiceExport")
        await create_if_absent(api, crd)
        await wait_crds_established(api, [crd["metadata"]["name"]])
        await _namespace(api, "shop")
        await api.create(SERVICEEXPORTS, {
            "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
            "metadata": {"name": "users", "namespace": "shop"}}, namespace="shop")
        await rec.wait_for(lambda: ("ADDED", "users") in rec.events)
        assert reflector.served is True
        await api.delete(CRDS, crd["metadata"]["name"])
        await rec.wait_for(lambda: ("DELETED", "users") in rec.events)
        await rec.wait_for(lambda: reflector.served is False)
        assert not reflector.store
    finally:
        await rec.stop()
        await api.close()
