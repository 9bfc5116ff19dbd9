"""The names isthmus puts on Kubernetes objects, in one place.

Export side (set by operators on their own Services):
- ``isthmus.io/export=true`` (label): export this Service to linked peers. A missing or empty
  label, or any other value, exports nothing.
- ``isthmus.io/export-to`` (annotation): comma-separated peer cluster names that may import
  it. Absent means every linked cluster; present but empty means none.
- ``isthmus.io/weight`` (annotation): this cluster's weight for the service in the
  importers' GlobalService endpoint (an integer 0-10000, as the CRD allows; 0 = take no new
  traffic while another cluster can). Absent means 100; an invalid value also means 100,
  reported in a Warning Event on the Service.

Import side (set by the mirror on what it writes, never by hand):
- ``isthmus.io/mirror=true``: this object is a mirror; it is never exported onward.
- ``isthmus.io/peer-cluster``, ``isthmus.io/link-uid``: which link wrote it, for cleanup.
- ``isthmus.io/global-service``: the GlobalService a mirror Service belongs to.
"""

from __future__ import annotations

EXPORT_LABEL = "isthmus.io/export"
EXPORT_TO_ANNOTATION = "isthmus.io/export-to"
WEIGHT_ANNOTATION = "isthmus.io/weight"
DEFAULT_WEIGHT = 100
MAX_WEIGHT = 10000  # the GlobalService CRD's bound for spec.endpoints[].weight
MIRROR_LABEL = "isthmus.io/mirror"
PEER_CLUSTER_LABEL = "isthmus.io/peer-cluster"
LINK_UID_LABEL = "isthmus.io/link-uid"
GLOBAL_SERVICE_LABEL = "isthmus.io/global-service"
PINNED_CLUSTER_LABEL = "isthmus.io/pinned-cluster"
POD_LABEL = "isthmus.io/pod"  # a per-pod mirror of a headless import: the pod's hostname
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "isthmus"

SYSTEM_NAMESPACE = "isthmus-system"
# The leaf Secrets: created empty by `isthmus install`, filled (patched) by the mirror.
GATEWAY_TLS_SECRET = "isthmus-gateway-tls"  # noqa: S105 - a name
MIRROR_TLS_SECRET = "isthmus-mirror-tls"  # noqa: S105 - a name
# The mirror's leader Lease: created holderless by `isthmus install` (RBAC cannot limit
# `create` by name, so the mirror only has get/update on this one).
MIRROR_LEASE = "isthmus-mirror"
GATEWAY_SERVICE_ACCOUNT = "isthmus-gateway"
MIRROR_SERVICE_ACCOUNT = "isthmus-mirror"
DNS_SERVICE_ACCOUNT = "isthmus-dns"

# EndpointSlice label naming the Service a slice belongs to (Kubernetes' own).
SLICE_SERVICE_LABEL = "kubernetes.io/service-name"

# Multi-Cluster Services API (KEP-1645): the labels an imported EndpointSlice carries.
MCS_SERVICE_NAME_LABEL = "multicluster.kubernetes.io/service-name"
MCS_SOURCE_CLUSTER_LABEL = "multicluster.kubernetes.io/source-cluster"
