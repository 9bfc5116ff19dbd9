"""A Link's status: the problems of its import, and the pure function that turns the
peer's state and those problems into the status the Link carries.

``LinkProblems`` is written by the peer catalogs (refused and rejected entries) and by the
reconciler (conflicts, failed writes, missing namespaces). ``link_status`` reads it with
the peer's state; the controller only writes its answer (``link_conditions`` supplies the
three conditions about what is not imported).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Container, Mapping
from dataclasses import dataclass, field
from typing import Any

from isthmus.mirror.import_policy import Refusal
from isthmus.mirror.link_conditions import import_conditions
from isthmus.mirror.model import ServiceKey


@dataclass
class LinkProblems:
    conflicts: dict[ServiceKey, str] = field(default_factory=dict)
    write_failures: dict[ServiceKey, str] = field(default_factory=dict)
    missing_namespaces: dict[ServiceKey, str] = field(default_factory=dict)
    refused: dict[tuple[str, str], int] = field(default_factory=dict)  # link_conditions.summary
    invalid: dict[str, str] = field(default_factory=dict)  # "ns/name" -> why rejected


def link_status(
    *,
    up: bool | None,
    synced: bool,
    reason: str,
    version: int,
    last_message: dt.datetime | None,
    entries: Collection[ServiceKey],
    refused: Mapping[ServiceKey, Refusal],
    problems: LinkProblems,
    namespaces: Container[str],
) -> dict[str, Any]:
    """The status of a Link whose peer is in this state (``peers.PeerState``: ``up`` None
    until first tried, ``reason`` why it is down, ``entries`` the admitted keys, ``refused``
    what the import policy refused) with these ``problems``; ``namespaces`` are the
    namespaces that exist here."""
    conditions = []
    if up is None:
        conditions.append({"type": "Ready", "status": "Unknown", "reason": "Connecting",
                           "message": "connecting to the peer's catalog"})
    elif up:
        conditions.append({"type": "Ready", "status": "True", "reason": "Connected",
                           "message": "catalog stream open"})
    else:
        conditions.append({"type": "Ready", "status": "False", "reason": "PeerUnreachable",
                           "message": reason[:1000]})
    if synced and up:
        conditions.append({"type": "Synced", "status": "True", "reason": "CatalogSynced",
                           "message": f"catalog version {version}"})
    else:
        why = "PeerUnreachable" if up is False else "NotSynced"
        stale = " (mirrors kept, marked Stale)" if up is False and entries else ""
        conditions.append({"type": "Synced", "status": "False", "reason": why,
                           "message": (reason if up is False
                                       else "waiting for the catalog snapshot") + stale})
    failures = {**problems.conflicts, **problems.write_failures}
    if failures:
        detail = "; ".join(f"{k[0]}/{k[1]}: {v}" for k, v in sorted(failures.items())[:5])
        conditions.append({"type": "Conflict", "status": "True",
                           "reason": "WriteFailed" if problems.write_failures
                           else "NameTaken", "message": detail[:2000]})
    else:
        conditions.append({"type": "Conflict", "status": "False", "reason": "NoConflict",
                           "message": ""})
    conditions.extend(import_conditions(refused, problems.invalid))
    if problems.missing_namespaces:
        names = sorted(set(problems.missing_namespaces.values()))
        conditions.append({"type": "NamespacesMissing", "status": "True",
                           "reason": "NamespaceNotFound",
                           "message": "not imported, namespace absent here: "
                           + ", ".join(names[:20])})
    else:
        conditions.append({"type": "NamespacesMissing", "status": "False",
                           "reason": "AllPresent", "message": ""})
    imported = sum(1 for k in entries if k[0] in namespaces and k not in problems.conflicts)
    status: dict[str, Any] = {
        "conditions": conditions,
        "importedServices": imported,
        "catalogVersion": version,
    }
    if last_message is not None:
        status["lastSyncTime"] = last_message.strftime("%Y-%m-%dT%H:%M:%SZ")
    return status
