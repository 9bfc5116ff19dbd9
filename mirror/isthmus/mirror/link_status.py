"""What the mirror knows is wrong with each Link's import: the problems its status reports.

``LinkProblems`` is written by the peer catalogs (refused and rejected entries) and by the
reconciler (conflicts, failed writes, missing namespaces); the controller writes the Link
status from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from isthmus.mirror.model import ServiceKey


@dataclass
class LinkProblems:
    conflicts: dict[ServiceKey, str] = field(default_factory=dict)
    write_failures: dict[ServiceKey, str] = field(default_factory=dict)
    missing_namespaces: dict[ServiceKey, str] = field(default_factory=dict)
    refused: dict[tuple[str, str], int] = field(default_factory=dict)  # link_conditions.summary
    invalid: dict[str, str] = field(default_factory=dict)  # "ns/name" -> why rejected
