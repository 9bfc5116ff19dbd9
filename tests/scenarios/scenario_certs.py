"""Leaf certificates for the rotation and expiry scenarios, issued the way the mirror does:
by the cluster's own CA (read from its Secret) for the gateway's identity."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from cryptography import x509

from isthmus.labels import SYSTEM_NAMESPACE
from isthmus.trust import CertifiedKey, Issuer, cluster_ca_from_secret

GATEWAY_ACCOUNT = "isthmus-gateway"


def gateway_leaf(ca_secret: dict[str, Any], *, expired: bool = False) -> CertifiedKey:
    """A new gateway leaf under the CA in ``ca_secret``; with ``expired``, one whose
    validity ended one second after the CA's began (so it is already over)."""
    issuer = Issuer(cluster_ca_from_secret(ca_secret))
    if not expired:
        return issuer.issue(SYSTEM_NAMESPACE, GATEWAY_ACCOUNT, lifetime=dt.timedelta(hours=1))
    start = issuer.ca.cert.not_valid_before_utc
    leaf = issuer.issue(SYSTEM_NAMESPACE, GATEWAY_ACCOUNT, now=start,
                        lifetime=dt.timedelta(seconds=1))
    assert leaf.cert.not_valid_after_utc < dt.datetime.now(dt.UTC)
    return leaf


def secret_data(leaf: CertifiedKey) -> dict[str, str]:
    """The ``data`` of a kubernetes.io/tls Secret holding ``leaf``."""
    return {"tls.crt": base64.b64encode(leaf.chain_pem()).decode(),
            "tls.key": base64.b64encode(leaf.key_pem()).decode()}


def leaf_of(secret: dict[str, Any]) -> x509.Certificate:
    """The first certificate of a TLS Secret."""
    pem = base64.b64decode(secret["data"]["tls.crt"])
    return x509.load_pem_x509_certificates(pem)[0]
