"""isthmus.mirror: the service-mirror controller (export catalog, import of peers' services).

Public surface::

    MirrorController(api, MirrorSettings(...), dialer=None).run()
    MirrorSettings                      env ISTHMUS_MIRROR_*, flags of `isthmus mirror`
    remove_link_objects(api, link) -> int   what `isthmus unjoin` calls (no controller needed)
    desired(peers, ...) -> Desired      pure: wanted objects
    plan(observed, desired) -> actions  pure: what to write
    Dialer, DirectDialer                how the catalog channel reaches a peer
    MirrorError and subclasses          see isthmus.mirror.errors
    require_tls13()                     raises GrpcTlsNotPinned if grpc could speak TLS 1.2

Generated gRPC code (``catalog_pb2``) is produced by the package build (setup.py).
"""

from isthmus.mirror.catalog_client import Dialer, DirectDialer
from isthmus.mirror.cleanup import remove_link_objects
from isthmus.mirror.controller import MirrorController
from isthmus.mirror.desired import Desired, desired
from isthmus.mirror.errors import (
    CatalogError,
    CertificateError,
    LeadershipLost,
    MirrorError,
    OwnershipConflict,
    PeerRefused,
    RetryableError,
    WriteRejected,
)
from isthmus.mirror.grpc_tls import GrpcTlsNotPinned, require_tls13
from isthmus.mirror.plan import plan
from isthmus.mirror.settings import MirrorSettings

__all__ = [
    "CatalogError",
    "CertificateError",
    "Desired",
    "Dialer",
    "DirectDialer",
    "GrpcTlsNotPinned",
    "LeadershipLost",
    "MirrorController",
    "MirrorError",
    "MirrorSettings",
    "OwnershipConflict",
    "PeerRefused",
    "RetryableError",
    "WriteRejected",
    "desired",
    "plan",
    "remove_link_objects",
    "require_tls13",
]
