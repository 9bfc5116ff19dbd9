"""The reflector's object store, plain and packed: table tests (no API server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from isthmus.kube.store import ObjectStore, pack, unpack


def _svc(name: str, rv: str, port: int = 80) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv,
                         "labels": {"isthmus.io/mirror": "true"}},
            "spec": {"ports": [{"port": port, "name": "http"}], "clusterIP": None}}


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "packed"])
def test_store_reads_as_a_mapping_of_objects(packed: bool) -> None:
    store = ObjectStore(packed)
    assert store.put(_svc("a", "1")) == ("ns", "a")
    store.put(_svc("b", "2"))
    assert len(store) == 2 and ("ns", "a") in store and ("ns", "x") not in store
    assert store[("ns", "a")] == _svc("a", "1")
    assert store.get(("ns", "x")) is None
    assert sorted(store) == [("ns", "a"), ("ns", "b")]
    store.pop(("ns", "a"))
    store.pop(("ns", "a"))  # gone already: nothing to do
    assert list(store.values()) == [_svc("b", "2")]


def test_packed_reads_are_fresh_copies() -> None:
    store = ObjectStore(packed=True)
    store.put(_svc("a", "1"))
    first = store[("ns", "a")]
    first["spec"]["ports"].append({"port": 1})  # a reader changing its copy
    assert store[("ns", "a")] == _svc("a", "1")
    assert isinstance(store.raw(("ns", "a")), bytes)


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "packed"])
@pytest.mark.parametrize(
    ("before", "listed", "change"),
    [
        pytest.param(None, _svc("a", "1"), "ADDED", id="new"),
        pytest.param(_svc("a", "1"), _svc("a", "1"), None, id="same-version"),
        pytest.param(_svc("a", "1"), _svc("a", "2"), "MODIFIED", id="new-version"),
    ],
)
def test_update_says_what_a_list_changed(packed: bool, before: dict[str, Any] | None,
                                         listed: dict[str, Any], change: str | None) -> None:
    store = ObjectStore(packed)
    if before is not None:
        store.put(before)
    kept = store.raw(("ns", "a"))
    assert store.update(listed) == (("ns", "a"), change)
    assert store[("ns", "a")] == listed
    if change is None:  # the kept value stays: whatever shares it keeps sharing it
        assert store.raw(("ns", "a")) is kept


def test_packed_update_compares_content() -> None:
    # a changed object under one resourceVersion is still a change once packed
    store = ObjectStore(packed=True)
    store.put(_svc("a", "1"))
    assert store.update(_svc("a", "1", port=81)) == (("ns", "a"), "MODIFIED")
    assert store[("ns", "a")] == _svc("a", "1", port=81)


def test_pack_round_trips_what_the_mirror_keeps() -> None:
    obj = _svc("a", "7")
    obj["metadata"]["deletionTimestamp"] = "2026-11-22T10:00:00Z"
    obj["endpoints"] = [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}}]
    assert unpack(pack(obj)) == obj
