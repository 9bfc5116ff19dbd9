"""The index of the mirror's own objects: packed, newest version wins, shared bytes."""

from __future__ import annotations

from typing import Any

from isthmus.kube.store import pack
from isthmus.labels import GLOBAL_SERVICE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, MIRROR_LABEL
from isthmus.mirror.names import LINK_LABEL_PREFIX
from isthmus.mirror.observed_index import ObservedIndex


def _obj(name: str, rv: int, *, gs: str = "users", ours: bool = True,
         clusters: tuple[str, ...] = ("west",)) -> dict[str, Any]:
    labels = {GLOBAL_SERVICE_LABEL: gs, **{f"{LINK_LABEL_PREFIX}{c}": "uid" for c in clusters}}
    if ours:
        labels |= {MIRROR_LABEL: "true", MANAGED_BY_LABEL: MANAGED_BY}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "shop", "resourceVersion": str(rv),
                         "labels": labels}}


def test_newest_version_wins_and_reads_are_copies() -> None:
    index = ObservedIndex()
    assert index.put(_obj("users-global", 5)) == ("shop", "users")
    assert index.put(_obj("users-global", 3)) == ("shop", "users")  # a late, older event
    ref = ("Service", "shop", "users-global")
    got = index.get(ref)
    assert got is not None and got["metadata"]["resourceVersion"] == "5"
    got["metadata"]["labels"].clear()  # the caller's copy only
    assert index.for_key(("shop", "users"))[ref]["metadata"]["resourceVersion"] == "5"
    index.put(_obj("users-global", 6))
    assert index.for_key(("shop", "users"))[ref]["metadata"]["resourceVersion"] == "6"


def test_the_given_packed_bytes_are_kept_not_a_copy() -> None:
    index = ObservedIndex()
    obj = _obj("users-global", 1)
    raw = pack(obj)
    index.put(obj, raw)
    assert index.by_key[("shop", "users")][("Service", "shop", "users-global")] is raw


def test_not_ours_is_dropped_and_keys_follow_labels() -> None:
    index = ObservedIndex()
    index.put(_obj("a-global", 1, gs="a", clusters=("west", "east")))
    index.put(_obj("b-global", 1, gs="b", clusters=("east",)))
    assert index.keys_of_cluster("west") == {("shop", "a")}
    assert index.keys_of_cluster("east") == {("shop", "a"), ("shop", "b")}
    assert [o["metadata"]["name"] for o in index.objects("Service")] == ["a-global", "b-global"]
    assert index.put(_obj("a-global", 2, gs="a", ours=False)) is None  # taken over by someone
    assert index.get(("Service", "shop", "a-global")) is None
    assert index.keys_of_cluster("west") == set()


def test_one_version_twice_keeps_the_watch_bytes_in_either_order() -> None:
    """A write's answer and its watch event carry one version: the event's bytes (the
    reflector's, shared) are kept whichever comes first, so the object is cached once."""
    ref = ("Service", "shop", "users-global")
    for event_first in (True, False):
        index = ObservedIndex()
        obj = _obj("users-global", 7)
        shared = pack(obj)
        event, answer = (obj, shared), (_obj("users-global", 7), None)
        for put in ((event, answer) if event_first else (answer, event)):
            index.put(*put)
        assert index.by_key[("shop", "users")][ref] is shared, event_first
    index.put(_obj("users-global", 8))  # a newer answer replaces them
    assert index.get(ref)["metadata"]["resourceVersion"] == "8"  # type: ignore[index]
