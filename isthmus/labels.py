"""The names isthmus puts on Kubernetes objects, in one place.

Export side (set by operators on their own Services):
- ``isthmus.io/export=true`` (label): export this Service to linked peers. A missing or empty
  label, or any other value, exports nothing.
- ``isthmus.io/export-to`` (annotation): comma-separated peer cluster names that may import
  it. Absent means every linked cluster; present but empty means none.

Import side (set by the mirror on what it writes, never by hand):
- ``isthmus.io/mirror=true``: this object is a mirror; it is never exported onward.
- ``isthmus.io/peer-cluster``, ``isthmus.io/link-uid``: which link wrote it, for cleanup.
- ``isthmus.io/global-service``: the GlobalService a mirror Service belongs to.
"""

from __future__ import annotations

EXPORT_LABEL = "isthmus.io/export"
EXPORT_TO_ANNOTATION = "isthmus.io/export-to"
MIRROR_LABEL = "isthmus.io/mirror"
PEER_CLUSTER_LABEL = "isthmus.io/peer-cluster"
LINK_UID_LABEL = "isthmus.io/link-uid"
GLOBAL_SERVICE_LABEL = "isthmus.io/global-service"
PINNED_CLUSTER_LABEL = "isthmus.io/pinned-cluster"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "isthmus"

SYSTEM_NAMESPACE = "isthmus-system"
GATEWAY_SERVICE_ACCOUNT = "isthmus-gateway"
MIRROR_SERVICE_ACCOUNT = "isthmus-mirror"
DNS_SERVICE_ACCOUNT = "isthmus-dns"

# EndpointSlice label naming the Service a slice belongs to (Kubernetes' own).
SLICE_SERVICE_LABEL = "kubernetes.io/service-name"
