"""Pure: what a Link says about the part of its peer's catalog that is not imported.

Three conditions, each always present (False when nothing is refused):

- ``NamespacesRefused``: entries the namespace policy refuses, with the namespaces named;
- ``LimitExceeded``: entries over one of the peer's limits (ports per service, services per
  Link, port share), with the first few services named;
- ``InvalidEntries``: entries the catalog boundary rejected (``catalog_validation``).

``notices`` turns a change of what is refused into the Events to emit: one per namespace
newly refused (the first ten; one more Event lists the rest), one per limit newly
exceeded, so a peer over its limit by 10 000 services makes one Event, not 10 000.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from isthmus.mirror.import_policy import LIMIT_REASONS, NAMESPACE_REASONS, Refusal
from isthmus.mirror.model import ServiceKey

_SHOWN = 5
MAX_NOTICES = 10  # namespaces named in Events of their own, per change


def summary(refused: Mapping[ServiceKey, Refusal]) -> dict[tuple[str, str], int]:
    """(reason, namespace) -> how many entries; limits counted under namespace ""."""
    out: dict[tuple[str, str], int] = {}
    for key, refusal in refused.items():
        where = key[0] if refusal.reason in NAMESPACE_REASONS else ""
        out[(refusal.reason, where)] = out.get((refusal.reason, where), 0) + 1
    return out


def notices(before: Mapping[tuple[str, str], int], after: Mapping[tuple[str, str], int],
            refused: Mapping[ServiceKey, Refusal], cluster: str) -> list[tuple[str, str]]:
    """(Event reason, note) for each refusal that is new in ``after``: at most
    ``MAX_NOTICES`` namespaces are named one by one, the rest in one more Event."""
    new = sorted(set(after) - set(before))
    if not new:
        return []
    example: dict[tuple[str, str], Refusal] = {}
    for key, refusal in sorted(refused.items()):
        where = key[0] if refusal.reason in NAMESPACE_REASONS else ""
        example.setdefault((refusal.reason, where), refusal)
    out: list[tuple[str, str]] = []
    namespaces = [(r, ns) for r, ns in new if ns]
    for reason, namespace in namespaces[:MAX_NOTICES]:
        out.append(("NamespaceRefused", f"{after[(reason, namespace)]} service(s) of {cluster} "
                    f"not imported into {namespace}: {example[(reason, namespace)].message}"))
    if len(namespaces) > MAX_NOTICES:
        rest = sorted({ns for _, ns in namespaces[MAX_NOTICES:]})
        out.append(("NamespaceRefused", f"services of {cluster} not imported into "
                    f"{len(rest)} more namespace(s): {', '.join(rest[:20])}"))
    for reason, _ in (k for k in new if not k[1]):
        out.append(("LimitExceeded", f"{after[(reason, '')]} service(s) of {cluster} not "
                    f"imported ({reason}): {example[(reason, '')].message}"))
    return out


def _condition(type_: str, problems: list[str], reason: str, ok_reason: str) -> dict[str, Any]:
    if not problems:
        return {"type": type_, "status": "False", "reason": ok_reason, "message": ""}
    more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
    return {"type": type_, "status": "True", "reason": reason,
            "message": ("; ".join(problems[:_SHOWN]) + more)[:2000]}


def import_conditions(refused: Mapping[ServiceKey, Refusal],
                      invalid: Mapping[str, str]) -> list[dict[str, Any]]:
    """The three conditions, from the refused entries and the rejected ones
    (``"namespace/name" -> reason``)."""
    by_ns: dict[str, Refusal] = {}
    limits: list[tuple[ServiceKey, Refusal]] = []
    for key, refusal in sorted(refused.items()):
        if refusal.reason in NAMESPACE_REASONS:
            by_ns.setdefault(key[0], refusal)
        elif refusal.reason in LIMIT_REASONS:
            limits.append((key, refusal))
    ns_reasons = sorted({r.reason for r in by_ns.values()})
    limit_reasons = sorted({r.reason for _, r in limits})
    return [
        _condition("NamespacesRefused", [r.message for _, r in sorted(by_ns.items())],
                   ",".join(ns_reasons) or "None", "NoneRefused"),
        _condition("LimitExceeded", [f"{k[0]}/{k[1]}: {r.message}" for k, r in limits],
                   ",".join(limit_reasons) or "None", "WithinLimits"),
        _condition("InvalidEntries", [f"{k}: {v}" for k, v in sorted(invalid.items())],
                   "RejectedByValidation", "AllValid"),
    ]
