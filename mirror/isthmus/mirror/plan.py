"""Pure: the actions that turn the observed objects into the desired ones.

``plan(observed, desired)`` never writes; the applier executes what it returns, in order.
Rules (docs/mirror.md):

- wanted and absent → ``Apply`` (the applier re-checks the name is free first);
- wanted, present and written by the mirror for the same GlobalService → ``Apply`` if any
  field we set differs (or an ownership label must go), else nothing;
- wanted, present, but not ours (no ``isthmus.io/mirror=true`` + managed-by isthmus label),
  or ours for another GlobalService/cluster → ``Conflict``: never overwritten; the same check
  for every kind (GlobalService, Service, EndpointSlice);
- a wanted GlobalService in conflict → nothing else of that import is written, and what the
  mirror already wrote for it is deleted: its Services would otherwise lend their addresses
  to a name isthmus does not own (DNS reads mirror Services by their labels);
- a wanted Service or EndpointSlice in conflict → its partner of the same name is not
  written either (and removed if the mirror wrote it): a VIP without its routing, or routing
  for a VIP that is someone else's, is never left behind;
- present, ours, not wanted → ``Delete`` with a UID precondition.

Writes go GlobalService first, then Services and slices (the applier waits for each stage):
if the API server refuses the GlobalService, nothing that gives the name an address is
written; a Service without its GlobalService is never served by DNS or the gateway.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from isthmus.labels import (
    GLOBAL_SERVICE_LABEL,
    LINK_UID_LABEL,
    PEER_CLUSTER_LABEL,
    PINNED_CLUSTER_LABEL,
)
from isthmus.mirror.model import JsonObj, ObjRef
from isthmus.mirror.names import LINK_LABEL_PREFIX, is_ours

_OWNER_LABELS = (PEER_CLUSTER_LABEL, LINK_UID_LABEL)
# Order of the writes: the GlobalService, then Services, then slices (the applier runs the
# GlobalService's stage first); deletes in the reverse order.
_ORDER = {"GlobalService": 0, "Service": 1, "EndpointSlice": 2, "ServiceImport": 3}


@dataclass(frozen=True)
class Apply:
    obj: JsonObj
    check_first: bool  # not seen as ours: make sure nobody else holds the name
    uid: str = ""  # of the object seen as ours: the write must land on that very object


@dataclass(frozen=True)
class ApplyStatus:
    obj: JsonObj  # apiVersion, kind, metadata (name, namespace) and status


@dataclass(frozen=True)
class Delete:
    ref: ObjRef
    uid: str


@dataclass(frozen=True)
class Conflict:
    ref: ObjRef
    message: str


Action = Apply | ApplyStatus | Delete | Conflict


def is_urgent(action: Action) -> bool:
    """Written in a burst's first pass: what makes ``<svc>.<ns>.global`` exist (the
    GlobalService, the merged mirror Service and its slice) and every delete. Pinned
    objects, status and conflicts follow in the full pass."""
    if isinstance(action, Delete):
        return True
    if isinstance(action, Apply):
        labels = (action.obj.get("metadata") or {}).get("labels") or {}
        return PINNED_CLUSTER_LABEL not in labels
    return False


def ref_of(obj: Mapping[str, Any]) -> ObjRef:
    meta = obj["metadata"]
    return (str(obj["kind"]), str(meta.get("namespace") or ""), str(meta["name"]))


def subset(want: Any, have: Any) -> bool:
    """Every field of ``want`` is in ``have`` with the same value (defaults may be extra)."""
    if want == have:  # the common case, compared in C (equal implies a subset)
        return True
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return not want and have is None
        return all(subset(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        have_list = have if isinstance(have, list) else ([] if have is None else None)
        if have_list is None or len(want) != len(have_list):
            return False
        return all(subset(w, h) for w, h in zip(want, have_list, strict=True))
    return bool(want == have)


_NO_LABELS: Mapping[str, str] = {}


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    # read-only: a reconcile reads every label of its handful of objects, so no copies
    meta = obj.get("metadata")
    labels: Mapping[str, str] = (meta.get("labels") if meta else None) or _NO_LABELS
    return labels


def same(want: Mapping[str, Any], have: Mapping[str, Any]) -> bool:
    """True when applying ``want`` would change nothing we own on ``have``."""
    want_labels = _labels(want)
    have_labels = _labels(have)
    if want_labels != have_labels:  # else both checks below hold (compared in C)
        if not subset(want_labels, have_labels):
            return False
        for key in have_labels:
            owner_label = key.startswith(LINK_LABEL_PREFIX) or key in _OWNER_LABELS
            if owner_label and key not in want_labels:
                return False
    return all(
        subset(value, have.get(field))
        for field, value in want.items()
        if field not in ("apiVersion", "kind", "metadata", "status")
    )


def ownership_problem(want: Mapping[str, Any], have: Mapping[str, Any]) -> str | None:
    """Why ``have`` must not be overwritten by ``want`` (None: it is ours to update)."""
    kind, ns, name = ref_of(want)
    if not is_ours(have):
        return f"{kind} {ns}/{name} exists and is not managed by isthmus"
    wl, hl = _labels(want), _labels(have)
    for label in (GLOBAL_SERVICE_LABEL, PINNED_CLUSTER_LABEL):
        if wl.get(label) != hl.get(label):
            return (
                f"{kind} {ns}/{name} belongs to another mirror "
                f"({label}={hl.get(label)!r}, wanted {wl.get(label)!r})"
            )
    return None


def _blocked(observed: Mapping[ObjRef, JsonObj], desired: Mapping[ObjRef, JsonObj],
             ) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(namespace, name) of each wanted GlobalService whose name is taken, and of each
    wanted Service/EndpointSlice pair one of which has its name taken."""
    imports, pairs = set(), set()
    for ref, want in desired.items():
        have = observed.get(ref)
        if have is None or ownership_problem(want, have) is None:
            continue
        if ref[0] == "GlobalService":
            imports.add((ref[1], ref[2]))
        else:
            pairs.add((ref[1], ref[2]))
    return imports, pairs


def _kept(ref: ObjRef, want: Mapping[str, Any], imports: set[tuple[str, str]],
          pairs: set[tuple[str, str]]) -> bool:
    """Whether a wanted object is still wanted once the blocked ones are taken out (the
    object in conflict itself stays, so that its conflict is reported)."""
    if ref[0] == "GlobalService":
        return True
    if (ref[1], _labels(want).get(GLOBAL_SERVICE_LABEL)) in imports:
        return False
    return (ref[1], ref[2]) not in pairs


def plan(observed: Mapping[ObjRef, JsonObj], desired: Mapping[ObjRef, JsonObj]) -> list[Action]:
    """The actions, writes first (in dependency order), then deletes."""
    imports, pairs = _blocked(observed, desired)
    if imports or pairs:
        desired = {ref: want for ref, want in desired.items()
                   if _kept(ref, want, imports, pairs)
                   or (ref in observed and ownership_problem(want, observed[ref]))}
    writes: list[Action] = []
    for ref in sorted(desired, key=lambda r: (_ORDER.get(r[0], 9), r)):
        want = desired[ref]
        have = observed.get(ref)
        if have is None:
            writes.append(Apply(want, check_first=True))
            continue
        problem = ownership_problem(want, have)
        if problem is not None:
            writes.append(Conflict(ref, problem))
        elif not same(want, have):
            uid = str((have.get("metadata") or {}).get("uid") or "")
            writes.append(Apply(want, check_first=False, uid=uid))
    deletes: list[Action] = []
    for ref in sorted(observed, key=lambda r: (-_ORDER.get(r[0], 9), r)):
        have = observed[ref]
        if ref not in desired and is_ours(have):
            deletes.append(Delete(ref, str((have.get("metadata") or {}).get("uid") or "")))
    return writes + deletes


def _condition_key(c: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (str(c.get("type")), str(c.get("status")), str(c.get("reason")),
            str(c.get("message") or ""))


def with_transition_times(
    conditions: Sequence[Mapping[str, Any]],
    previous: Sequence[Mapping[str, Any]],
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Conditions with ``lastTransitionTime`` kept when the status did not change."""
    before = {str(c.get("type")): c for c in previous}
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = []
    for c in conditions:
        old = before.get(str(c["type"]))
        when = stamp
        if old is not None and old.get("status") == c["status"] and old.get("lastTransitionTime"):
            when = str(old["lastTransitionTime"])
        out.append({**c, "lastTransitionTime": when})
    return out


def status_changed(want: Mapping[str, Any], have: Mapping[str, Any] | None) -> bool:
    """Compare two statuses, ignoring condition timestamps."""
    have = have or {}
    for field in want:
        if field == "conditions":
            continue
        if want[field] != have.get(field) and not (want[field] in ([], None)
                                                    and have.get(field) in ([], None)):
            return True
    wc = sorted(_condition_key(c) for c in want.get("conditions") or [])
    hc = sorted(_condition_key(c) for c in have.get("conditions") or [])
    return wc != hc


def plan_status(
    obj_ref: Mapping[str, Any],
    status: Mapping[str, Any],
    observed: Mapping[str, Any] | None,
    now: dt.datetime,
) -> ApplyStatus | None:
    """An ``ApplyStatus`` if the observed status differs from ``status``."""
    have_status = (observed or {}).get("status") or {}
    if observed is not None and not status_changed(status, have_status):
        return None
    full = dict(status)
    full["conditions"] = with_transition_times(
        list(status.get("conditions") or []), list(have_status.get("conditions") or []), now
    )
    meta = obj_ref["metadata"]
    return ApplyStatus({
        "apiVersion": obj_ref["apiVersion"],
        "kind": obj_ref["kind"],
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
        "status": full,
    })
