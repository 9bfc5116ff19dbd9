"""Names and labels of the objects the mirror writes (one place, documented in docs/mirror.md
and docs/decisions/mirror-object-names.md).

For an exported Service ``<svc>`` in namespace ``<ns>`` the importing cluster gets, in
``<ns>``:

- GlobalService ``<svc>`` (hosts ``<svc>.<ns>.global`` and ``<svc>.<ns>.<cluster>.global``);
- Service + EndpointSlice ``<svc>-global`` (the VIP of ``<svc>.<ns>.global``);
- per exporting cluster, Service + EndpointSlice ``<svc>-<cluster>-c<n>``, ``n`` the length
  of ``<cluster>`` (the VIP of the pinned name);
- per named pod of a headless export, Service + EndpointSlice
  ``<svc>-<pod>-<cluster>-p<m>x<n>``, ``m`` and ``n`` the lengths of ``<pod>`` and
  ``<cluster>`` (the VIP of ``<pod>.<svc>.<ns>.<cluster>.global``; the service comes first
  because a hostname may start with a digit and a Service name may not).

The mapping is injective: the last ``-``-separated part says which form a name has
(``global``: merged; ``c<digits>``: pinned, and the digits say where the service name ends;
``p<digits>x<digits>``: per pod, the digits say where the pod and cluster start;
``h<16 hex>``: hashed), so a readable name decodes back to its one (service, cluster). A
readable name longer than 63 characters becomes its first 45 characters, ``-h`` and 16 hex
digits of the SHA-256 of its (form, service, cluster): unique unless SHA-256 collides in 64
bits, and never equal to a readable name.
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


MERGED_SUFFIX = "global"
_HASH_PREFIX = 45  # 45 + len("-h") + 16 hex digits = 63


def hashed(form: str, service: str, cluster: str, readable: str) -> str:
    """The hashed name of a (form, service, cluster) whose readable name is too long."""
    digest = hashlib.sha256(f"{form}\0{service}\0{cluster}".encode()).hexdigest()[:16]
    return f"{readable[:_HASH_PREFIX].rstrip('-')}-h{digest}"


def global_service_name(service: str) -> str:
    return service


def mirror_service_name(service: str) -> str:
    """Service and EndpointSlice behind ``<svc>.<ns>.global``."""
    readable = f"{service}-{MERGED_SUFFIX}"
    return readable if len(readable) <= MAX_NAME else hashed("merged", service, "", readable)


def pinned_service_name(service: str, cluster: str) -> str:
    """Service and EndpointSlice behind ``<svc>.<ns>.<cluster>.global``."""
    readable = f"{service}-{cluster}-c{len(cluster)}"
    return readable if len(readable) <= MAX_NAME else hashed("pinned", service, cluster,
                                                             readable)


def pod_service_name(pod: str, service: str, cluster: str) -> str:
    """Service and EndpointSlice behind ``<pod>.<svc>.<ns>.<cluster>.global``."""
    readable = f"{service}-{pod}-{cluster}-p{len(pod)}x{len(cluster)}"
    # the pod goes into the hashed form's service part: no name holds a NUL, so the
    # (pod, service) pair is recovered from it
    return readable if len(readable) <= MAX_NAME else hashed("pod", f"{service}\0{pod}",
                                                             cluster, readable)


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
