"""isthmus.trust: the shared root, per-cluster intermediates and SPIFFE identities.

Hierarchy::

    root (offline, 10 y)  ──signs──▶  cluster CA "west" (1 y, pathLen 0)  ──signs──▶  leaves (24 h)
                                      Secret isthmus-system/isthmus-cluster-ca      Secrets written
                                                                                     by the mirror
    bundle: ConfigMap isthmus-system/isthmus-trust-bundle, key roots.pem (one root, two in rotation)

Identities: ``spiffe://<trust-domain>/cluster/<cluster>/ns/<namespace>/sa/<service-account>``.

For the gateway and the catalog server (after the TLS handshake)::

    verify_peer(bundle: TrustBundle, chain_der: Sequence[bytes], now: datetime)
        -> PeerIdentity | Refusal
    verify_tls_peer(endpoint: ssl.SSLSocket | ssl.SSLObject, bundle: TrustBundle,
                    now: datetime | None = None) -> PeerIdentity | Refusal
    peer_chain_der(endpoint) -> list[bytes]          # what the peer sent, leaf first
    require_peer(bundle, chain_der, now) -> PeerIdentity   # raises PeerRefused

    PeerIdentity.identity: IsthmusIdentity(trust_domain, cluster, namespace, service_account)
    Refusal.reason: Reason (StrEnum, e.g. Reason.OTHER_ROOT == "other_root"), .detail, .subject

``ssl`` is the first gate (chain to the bundle, TLS 1.3, client certificate required);
``verify_peer`` is the second: SPIFFE syntax, X.509-SVID rules, validity at ``now``
(boundary seconds included), the path rebuilt by ``cryptography``'s verifier, and the
signing intermediate's cluster equal to the leaf's. Whether that cluster is *linked* is
the caller's knowledge (the Links); ``authorize_cluster`` turns it into a verdict::

    authorize_cluster(peer: PeerIdentity, linked: Collection[str]) -> Refusal | None

TLS contexts and hot reload::

    tls = ReloadableTls.from_files(cert: Path, key: Path, bundle: Path)
    # or ReloadableTls(TlsMaterial.from_secret_data(secret_data, bundle_pem), source=...)
    server = await asyncio.start_server(handle, host, port, ssl=tls.server_context())
    reader, writer = await asyncio.open_connection(host, port, ssl=tls.client_context())
    tls.reload() -> bool            # re-read the source; swap if changed and usable
    await tls.watch(interval=2.0)   # poll forever
    tls.bundle -> TrustBundle       # the bundle to pass to verify_peer

``server_context()`` is one stable context; its SNI callback moves each new handshake
onto the newest material, so rotation needs no new listener and drops no connection.

asyncio's TLS transport drops the alert of a failed handshake (the peer sees EOF, not
``unknown_ca``); to send it, drive the handshake by hand over a plain stream::

    stream = await accept_tls(reader, writer, tls.server_context(), timeout=10.0)
    stream = await connect_tls(reader, writer, tls.client_context(), timeout=10.0)
    stream.ssl_object / await stream.read(n) / stream.write(b) / await stream.drain()

For the mirror controller (holds the cluster CA, writes leaf Secrets)::

    issuer = Issuer(cluster_ca_from_secret(secret_obj))
    leaf = issuer.issue(namespace, service_account, lifetime=timedelta(hours=24))
    leaf_secret(leaf, name, namespace) -> dict        # kubernetes.io/tls manifest
    next_renewal(not_before, not_after, rng) -> datetime
    LeafRenewer(issue=..., publish=...).run()         # renew at ~half life, retry on error

Errors: one tree under ``TrustError`` (see ``isthmus.trust.errors``).
"""

from isthmus.trust.bundle import TrustBundle
from isthmus.trust.ca import CertifiedKey, create_cluster_ca, create_root
from isthmus.trust.errors import (
    ApplyError,
    ExpiryError,
    IssuanceError,
    MaterialError,
    PeerRefused,
    RootExistsError,
    SpiffeIdError,
    TrustError,
)
from isthmus.trust.issuer import LEAF_LIFETIME, Issuer, LeafRenewer, next_renewal
from isthmus.trust.manifests import (
    BUNDLE_CONFIGMAP,
    BUNDLE_KEY,
    CLUSTER_CA_SECRET,
    NAMESPACE,
    bundle_configmap,
    bundle_from_configmap,
    cluster_ca_from_secret,
    cluster_ca_secret,
    leaf_secret,
)
from isthmus.trust.refusal import Reason, Refusal
from isthmus.trust.spiffe import IsthmusIdentity, SpiffeId, parse_spiffe_id
from isthmus.trust.tls import (
    ReloadableTls,
    TlsMaterial,
    build_client_context,
    build_server_context,
    peer_chain_der,
    verify_tls_peer,
)
from isthmus.trust.tls_stream import TlsStream, accept_tls, connect_tls
from isthmus.trust.verifier import PeerIdentity, authorize_cluster, require_peer, verify_peer

__all__ = [
    "BUNDLE_CONFIGMAP",
    "BUNDLE_KEY",
    "CLUSTER_CA_SECRET",
    "LEAF_LIFETIME",
    "NAMESPACE",
    "ApplyError",
    "CertifiedKey",
    "ExpiryError",
    "IssuanceError",
    "Issuer",
    "IsthmusIdentity",
    "LeafRenewer",
    "MaterialError",
    "PeerIdentity",
    "PeerRefused",
    "Reason",
    "Refusal",
    "ReloadableTls",
    "RootExistsError",
    "SpiffeId",
    "SpiffeIdError",
    "TlsMaterial",
    "TlsStream",
    "TrustBundle",
    "TrustError",
    "accept_tls",
    "authorize_cluster",
    "build_client_context",
    "build_server_context",
    "bundle_configmap",
    "bundle_from_configmap",
    "cluster_ca_from_secret",
    "cluster_ca_secret",
    "connect_tls",
    "create_cluster_ca",
    "create_root",
    "leaf_secret",
    "next_renewal",
    "parse_spiffe_id",
    "peer_chain_der",
    "require_peer",
    "verify_peer",
    "verify_tls_peer",
]
