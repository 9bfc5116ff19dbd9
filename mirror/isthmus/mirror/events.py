"""The mirror's domain events: watch callbacks and the catalog client only enqueue these;
one dispatcher (``MirrorController.handle``) hands each to the one handler of its type.

Each class says when it is emitted. Handling an event means marking service keys dirty (the
per-key workers then reconcile them) or changing the peer/link state first.
"""

from __future__ import annotations

from dataclasses import dataclass

from isthmus.mirror.catalog_client import CatalogUpdate
from isthmus.mirror.model import LinkInfo, ServiceKey


@dataclass(frozen=True)
class LinkUpserted:
    """A Link was added or changed (spec, or re-created with a new UID)."""

    link: LinkInfo


@dataclass(frozen=True)
class LinkRemoved:
    """A Link was deleted: its peer's objects must go, and nothing else."""

    name: str
    uid: str
    cluster: str


@dataclass(frozen=True)
class PeerCatalogUpdated:
    """The catalog client got a snapshot, a delta, a heartbeat, or lost the stream."""

    update: CatalogUpdate


@dataclass(frozen=True)
class MirrorObjectChanged:
    """A mirror object changed or vanished locally (someone else touched it): repair."""

    key: ServiceKey


@dataclass(frozen=True)
class NamespaceAppeared:
    """A namespace now exists: services waiting for it can be imported."""

    namespace: str


@dataclass(frozen=True)
class GatewayEndpointsChanged:
    """The ready addresses of the local gateway changed: every mirror slice follows."""


@dataclass(frozen=True)
class OrphanGcTriggered:
    """Start-up (and periodic) resync: reconcile every key known locally or remotely, which
    deletes objects whose link or remote service is gone and drops peers past the stale
    grace period."""


MirrorEvent = (
    LinkUpserted
    | LinkRemoved
    | PeerCatalogUpdated
    | MirrorObjectChanged
    | NamespaceAppeared
    | GatewayEndpointsChanged
    | OrphanGcTriggered
)
