"""Names and labels of the objects the mirror writes (one place, documented in docs/mirror.md).

For an exported Service ``<svc>`` in namespace ``<ns>`` the importing cluster gets, in
``<ns>``:

- GlobalService ``<svc>`` (hosts ``<svc>.<ns>.global`` and ``<svc>.<ns>.<cluster>.global``);
- Service + EndpointSlice ``<svc>-global`` (the VIP of ``<svc>.<ns>.global``);
- per exporting cluster, Service + EndpointSlice ``<svc>-<cluster>-global`` (the VIP of the
  pinned name).

A name longer than 63 characters keeps its first 54 and ends with ``-`` and 8 hex digits of
the SHA-256 of the full name, so it stays unique and within the DNS-label limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from isthmus.labels import (
    GLOBAL_SERVICE_LABEL,
    LINK_UID_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MIRROR_LABEL,
    MIRROR_LEASE,
    PEER_CLUSTER_LABEL,
    PINNED_CLUSTER_LABEL,
    SYSTEM_NAMESPACE,
)

MAX_NAME = 63
FIELD_MANAGER = "isthmus-mirror"
# Per-link ownership: one label per link that contributed to an object, value = link UID.
LINK_LABEL_PREFIX = "link.isthmus.io/"
SLICE_MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGED_BY = "isthmus.io-mirror"
GATEWAY_SERVICE = "isthmus-gateway"
MIRROR_SERVICE_ACCOUNT = "isthmus-mirror"
LEASE_NAME = MIRROR_LEASE

__all__ = [
    "FIELD_MANAGER",
    "GLOBAL_SERVICE_LABEL",
    "LINK_UID_LABEL",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "MIRROR_LABEL",
    "PEER_CLUSTER_LABEL",
    "PINNED_CLUSTER_LABEL",
    "SYSTEM_NAMESPACE",
]


def fit(name: str) -> str:
    """``name`` if it is a valid length, else a unique shortened form."""
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-')}-{digest}"


def global_service_name(service: str) -> str:
    return service


def mirror_service_name(service: str) -> str:
    return fit(f"{service}-global")


def pinned_service_name(service: str, cluster: str) -> str:
    return fit(f"{service}-{cluster}-global")


def link_label(cluster: str) -> str:
    return f"{LINK_LABEL_PREFIX}{cluster}"


def link_owners(labels: dict[str, str]) -> dict[str, str]:
    """cluster -> link UID, from an object's per-link labels."""
    return {
        key[len(LINK_LABEL_PREFIX):]: value
        for key, value in labels.items()
        if key.startswith(LINK_LABEL_PREFIX)
    }


def is_ours(obj: Mapping[str, object]) -> bool:
    """Written by the mirror (so it may be changed or deleted by it)."""
    meta = obj.get("metadata")
    labels = (meta.get("labels") if isinstance(meta, dict) else None) or {}
    return labels.get(MIRROR_LABEL) == "true" and labels.get(MANAGED_BY_LABEL) == MANAGED_BY


def mirror_server_name(cluster: str) -> str:
    """The DNS name in a mirror's leaf that a client pins to reach *that cluster's* mirror."""
    return f"{MIRROR_SERVICE_ACCOUNT}.{SYSTEM_NAMESPACE}.{cluster}.isthmus"
