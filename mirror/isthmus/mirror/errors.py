"""The mirror's errors, one tree under ``IsthmusError``::

    IsthmusError
     └── MirrorError
          ├── RetryableError        a write failed in a way a later retry may cure (409, 429,
          │                         5xx, connection lost); the dispatcher requeues its key a
          │                         bounded number of times, then records a condition + Event
          ├── WriteRejected         the API server refused a write for good (403, 422)
          ├── OwnershipConflict     an object that isthmus does not own holds a mirror's name
          ├── ClusterPropertyConflict  the ClusterProperty cluster.clusterset.k8s.io names
          │                         another cluster (never overwritten)
          ├── CatalogError          the peer's catalog stream failed or sent nonsense
          │    └── PeerRefused      the catalog server refused a caller (identity, not linked)
          ├── CertificateError      the cluster CA or the trust bundle cannot be used
          └── LeadershipLost        another replica holds the Lease; this one must stop writing

Errors from the Kubernetes client (``isthmus.kube.errors``) are chained with ``from``.
"""

from __future__ import annotations

from isthmus.errors import IsthmusError


class MirrorError(IsthmusError):
    """Anything the mirror controller raises on purpose."""


class RetryableError(MirrorError):
    """A transient failure: the key it concerns is requeued (with a limit)."""


class OwnershipConflict(MirrorError):
    """An object isthmus does not own already has the name a mirror needs."""


class ClusterPropertyConflict(MirrorError):
    """The ClusterProperty ``cluster.clusterset.k8s.io`` holds another cluster's name."""


class CatalogError(MirrorError):
    """The catalog stream to or from a peer failed."""


class PeerRefused(CatalogError):
    """The catalog server refused the caller; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class CertificateError(MirrorError):
    """The cluster CA Secret or the trust bundle is missing or unusable."""


class LeadershipLost(MirrorError):
    """The Lease was lost (or never renewed in time): stop writing at once."""


class WriteRejected(MirrorError):
    """The API server refused a write for good (403, 422, ...): a condition, not a retry."""
