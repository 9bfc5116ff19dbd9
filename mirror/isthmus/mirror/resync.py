"""Pure: the digest that lets a restart skip re-checking a service whose objects are unchanged.

A restarted mirror must check every imported service (``desired`` then ``plan``), because
anything may have changed while it was down: a peer's export, a Link, the local gateway, or
the mirror objects themselves (edited, deleted, or half-written by a pass that crashed). At
10 000 services that check is most of the restart's serial work.

So the full pass that writes a GlobalService's status records in it (``status.syncedFrom``)
a digest of everything that status and the service's objects were written from, *as they are
once written*:

- the inputs of ``desired`` for the key: every peer's Link, staleness and entry content,
  the local gateway addresses, whether the namespace exists, and the key's allocated ports;
- each of its Services' and EndpointSlices' reference and resourceVersion (any write to one,
  ours or anybody's, changes it; a deleted or added object changes the set);
- the GlobalService's ``metadata.generation`` (bumped by every spec change), its labels, and
  the status being written;
- ``CODE``: the source of the modules that decide what is written, so a new isthmus version
  never trusts what an older one wrote.

At start, a key whose objects give the same digest again was converged by that pass and has
not changed since: nothing to check. Any difference (a missing digest included) means the
full check, as before. The digest is written only with a status write that happens anyway:
a later change that writes objects but not the status leaves it stale, which costs that key
its full check at the next start, never correctness.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isthmus import labels as _labels_module
from isthmus.mirror import desired as _desired_module
from isthmus.mirror import names as _names_module
from isthmus.mirror import plan as _plan_module
from isthmus.mirror import projection as _projection_module
from isthmus.mirror.model import JsonObj, ObjRef

FIELD = "syncedFrom"


def _code_digest() -> str:
    digest = hashlib.sha256()
    for module in (_desired_module, _plan_module, _projection_module, _names_module,
                   _labels_module):
        digest.update(Path(str(module.__file__)).read_bytes())
    digest.update(Path(__file__).read_bytes())
    return digest.hexdigest()


CODE = _code_digest()


def digest(inputs: Any, objects: Mapping[ObjRef, JsonObj], status: Mapping[str, Any]) -> str:
    """The digest of one key's ``inputs`` (a value with a deterministic ``repr``), its
    ``objects`` (the GlobalService and its Services and slices, as written or observed) and
    the GlobalService's ``status`` (its own digest field ignored)."""
    parts: list[Any] = [CODE, repr(inputs)]
    for ref in sorted(objects):
        meta = objects[ref].get("metadata") or {}
        if ref[0] == "GlobalService":
            parts.append((ref, meta.get("generation"), sorted((meta.get("labels") or {}).items())))
        else:
            parts.append((ref, meta.get("resourceVersion")))
    parts.append(json.dumps({k: v for k, v in status.items() if k != FIELD}, sort_keys=True))
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def unchanged(inputs: Any, observed: Mapping[ObjRef, JsonObj]) -> bool:
    """True when ``observed`` (every object of one key, as cached) is exactly what a full pass
    with the same ``inputs`` converged on and recorded: the GlobalService carries the digest
    that they give again, and nothing is being deleted."""
    gs = next((obj for ref, obj in observed.items() if ref[0] == "GlobalService"), None)
    if gs is None:
        return False
    status = gs.get("status") or {}
    recorded = status.get(FIELD)
    if not recorded:
        return False
    if any((obj.get("metadata") or {}).get("deletionTimestamp") for obj in observed.values()):
        return False
    return bool(digest(inputs, observed, status) == recorded)
