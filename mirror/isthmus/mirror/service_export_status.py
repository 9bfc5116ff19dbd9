"""Pure: the conditions of a ServiceExport (Multi-Cluster Services API, KEP-1645).

- ``Valid``: the Service of the same namespace and name exists and can be exported (not
  ExternalName, at least one TCP port, not itself a mirror).
- ``Ready``: the export is in this cluster's catalog, served to linked peers.
- ``Conflict``: another cluster exports the same namespace/name as another type (headless
  against ClusterSetIP: ``TypeConflict``), or with a port of the same number but another
  name or appProtocol (``PortConflict``). The KEP's rule decides: the oldest export wins
  (equal ages: the cluster whose name sorts first). Every cluster in the conflict gets
  ``Conflict=True``, and the message says which cluster's definition is used and why; a
  cluster that lost also gets a Warning Event (``losing``).

The age of each export comes from the catalog (``exported_at_ms``), so every cluster
reaches the same verdict from the same catalogs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from isthmus.exports import is_exportable
from isthmus.mirror.desired import precedence
from isthmus.mirror.model import CatalogEntry, PortSpec

VALID, READY, CONFLICT = "Valid", "Ready", "Conflict"


@dataclass(frozen=True)
class ExportVerdict:
    conditions: tuple[dict[str, str], ...]
    losing: bool  # another cluster's older export wins a conflict: an Event is due
    conflict_message: str = ""


def _cond(kind: str, ok: bool, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason,
            "message": message}


def _when(ms: int) -> str:
    if ms <= 0:
        return "at an unknown time"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("at %Y-%m-%dT%H:%M:%SZ")


def _describe(p: PortSpec) -> str:
    return f"name={p.name!r} appProtocol={p.app_protocol!r}"


def _invalid(service: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """Why the Service cannot be exported (reason, message), or None."""
    if service is None:
        return "NoService", "no Service of this namespace and name exists"
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return "InvalidServiceType", "an ExternalName Service has no endpoints to export"
    if not is_exportable(service):
        return "InvalidServiceType", "a Service written by the isthmus mirror is not exported again"
    if not any((p.get("protocol") or "TCP") == "TCP" for p in spec.get("ports") or []):
        return "NoTCPPorts", "the Service has no TCP port (isthmus carries TCP only)"
    return None


def port_conflicts(
    cluster: str, mine: CatalogEntry, peers: Mapping[str, CatalogEntry]
) -> tuple[list[str], bool]:
    """The port conflicts between this cluster's export and its peers' (one sentence each),
    and whether this cluster loses at least one of them."""
    exporters = sorted([(cluster, mine), *peers.items()], key=lambda ce: precedence(*ce))
    winners: dict[int, tuple[str, CatalogEntry, PortSpec]] = {}
    for c, entry in exporters:
        for p in entry.ports:
            winners.setdefault(p.port, (c, entry, p))
    sentences: list[str] = []
    losing = False
    for port in sorted(winners):
        win_cluster, win_entry, win_port = winners[port]
        differ = sorted(c for c, e in exporters for p in e.ports
                        if p.port == port and p != win_port)
        if not differ:
            continue
        losing = losing or cluster in differ
        sentences.append(
            f"port {port}: {', '.join(differ)} define it otherwise; {win_cluster}'s "
            f"definition ({_describe(win_port)}) is used, because its export is the oldest "
            f"(exported {_when(win_entry.exported_at_ms)})")
    return sentences, losing


def _type_name(entry: CatalogEntry) -> str:
    return "headless" if entry.headless else "ClusterSetIP"


def type_conflict(
    cluster: str, mine: CatalogEntry, peers: Mapping[str, CatalogEntry]
) -> tuple[str | None, bool]:
    """The type conflict between this cluster's export and its peers' (a sentence, or None),
    and whether this cluster loses it."""
    exporters = sorted([(cluster, mine), *peers.items()], key=lambda ce: precedence(*ce))
    win_cluster, win_entry = exporters[0]
    differ = sorted(c for c, e in exporters if e.headless != win_entry.headless)
    if not differ:
        return None, False
    return (f"type: {', '.join(differ)} export it as another type; {win_cluster}'s "
            f"({_type_name(win_entry)}) is used, because its export is the oldest "
            f"(exported {_when(win_entry.exported_at_ms)})"), cluster in differ


def export_verdict(
    *,
    cluster: str,
    service: Mapping[str, Any] | None,
    exported: CatalogEntry | None,
    peers: Mapping[str, CatalogEntry],
) -> ExportVerdict:
    """The conditions of the ServiceExport of one key.

    ``service``: the local Service of that key (None: absent). ``exported``: this cluster's
    catalog entry for it (None: not in the catalog). ``peers``: each linked cluster's
    catalog entry for the same key, for the clusters that export it."""
    invalid = _invalid(service)
    if invalid is not None:
        reason, message = invalid
        return ExportVerdict((
            _cond(VALID, False, reason, message),
            _cond(READY, False, "Pending", "the Service is not exported: " + message),
            _cond(CONFLICT, False, "NoConflicts", ""),
        ), losing=False)
    valid = _cond(VALID, True, "Valid", "the Service is exported")
    if exported is None:
        return ExportVerdict((
            valid,
            _cond(READY, False, "Pending", "not yet in this cluster's export catalog"),
            _cond(CONFLICT, False, "NoConflicts", ""),
        ), losing=False)
    ready = _cond(READY, True, "Ready",
                  "in this cluster's export catalog, served to linked clusters")
    sentences, losing = port_conflicts(cluster, exported, peers)
    type_sentence, type_losing = type_conflict(cluster, exported, peers)
    if type_sentence is None and not sentences:
        return ExportVerdict((valid, ready, _cond(CONFLICT, False, "NoConflicts", "")),
                             losing=False)
    reason = "PortConflict" if type_sentence is None else "TypeConflict"
    message = "; ".join([*([type_sentence] if type_sentence else []), *sentences])
    return ExportVerdict((valid, ready, _cond(CONFLICT, True, reason, message)),
                         losing=losing or type_losing, conflict_message=message)


def peer_entries(
    peers: Sequence[tuple[str, Mapping[tuple[str, str], CatalogEntry]]], key: tuple[str, str]
) -> dict[str, CatalogEntry]:
    """Each peer's entry for ``key``, by cluster, for the peers that export it."""
    return {cluster: entries[key] for cluster, entries in peers if key in entries}
