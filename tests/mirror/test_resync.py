"""Table tests for the sync digest (``mirror/resync.py``): a restart skips re-checking a
service only when every object of it, and what it was written from, is exactly as the
digest recorded; any single difference means a full check."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from test_decisions import _as_served, entry, peer, run_desired

from isthmus.mirror.desired import global_service_status
from isthmus.mirror.model import JsonObj, ObjRef
from isthmus.mirror.projection import project
from isthmus.mirror.resync import FIELD, digest, unchanged

Objects = dict[ObjRef, JsonObj]
INPUTS: Any = (("west", None, ((80, "http", ""), 1, 100)), ("10.0.0.1",), True, ((("p", 80), 20000),))
GS: ObjRef = ("GlobalService", "shop", "users")
SVC: ObjRef = ("Service", "shop", "users-global")


def _written() -> Objects:
    """The objects of one key as the API server holds them after a full pass, the
    GlobalService with its status and the digest of all of it."""
    ds = run_desired(peer("west", entry())).services[("shop", "users")]
    objects: Objects = {}
    for n, (ref, obj) in enumerate(sorted(ds.objects.items())):
        served = project(_as_served(obj))
        served["metadata"]["resourceVersion"] = str(100 + n)
        served["metadata"]["generation"] = 1
        objects[ref] = served
    status = global_service_status(ds, {"users-global": "10.96.0.7"}, [])
    status[FIELD] = digest(INPUTS, objects, status)
    objects[GS]["status"] = status
    return objects


def _set(ref: ObjRef, path: tuple[str, ...], value: Any) -> Callable[[Objects], None]:
    def change(objects: Objects) -> None:
        target = objects[ref]
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return change


def test_unchanged_objects_and_inputs_are_recognised() -> None:
    assert unchanged(INPUTS, _written())


CHANGES: dict[str, Callable[[Objects], None]] = {
    "a Service written again": _set(SVC, ("metadata", "resourceVersion"), "999"),
    "a slice written again": _set(("EndpointSlice", "shop", "users-global"),
                                  ("metadata", "resourceVersion"), "999"),
    "the GlobalService spec changed": _set(GS, ("metadata", "generation"), 2),
    "a GlobalService label changed": _set(GS, ("metadata", "labels", "isthmus.io/peer-cluster"),
                                          "east"),
    "the status changed": _set(GS, ("status", "vips"), ["10.96.0.8"]),
    "a condition time changed": lambda o: o[GS]["status"]["conditions"][0].update(
        lastTransitionTime="2030-01-01T00:00:00Z"),
    "being deleted": _set(SVC, ("metadata", "deletionTimestamp"), "2030-01-01T00:00:00Z"),
    "an object gone": lambda o: o.pop(SVC),
    "an object more": lambda o: o.update({("Service", "shop", "users-extra-global"): o[SVC]}),
    "no digest": lambda o: o[GS]["status"].pop(FIELD),
    "no GlobalService": lambda o: o.pop(GS),
}


@pytest.mark.parametrize("what", sorted(CHANGES))
def test_any_change_to_the_objects_means_a_full_check(what: str) -> None:
    objects = _written()
    CHANGES[what](objects)
    assert not unchanged(INPUTS, objects)


@pytest.mark.parametrize("inputs", [
    (("west", "peer unreachable", ((80, "http", ""), 1, 100)), ("10.0.0.1",), True, ()),
    (("west", None, ((80, "http", ""), 2, 100)), ("10.0.0.1",), True, ()),
    (("west", None, ((80, "http", ""), 1, 100)), ("10.0.0.2",), True, ()),
    (("west", None, ((80, "http", ""), 1, 100)), ("10.0.0.1",), True, ((("p", 80), 20001),)),
])
def test_any_change_to_the_inputs_means_a_full_check(inputs: Any) -> None:
    assert not unchanged(inputs, _written())


def test_the_digest_ignores_its_own_field_and_key_order() -> None:
    objects = _written()
    status = objects[GS]["status"]
    reordered = copy.deepcopy(objects)
    reordered[GS]["status"] = dict(reversed(list(status.items())))
    assert digest(INPUTS, reordered, reordered[GS]["status"]) == status[FIELD]
