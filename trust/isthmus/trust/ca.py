"""The offline root and the per-cluster intermediates (pure: no files, no network).

    root  (CA, pathLen 1, 10 years, URI SAN spiffe://<domain>)
     └── cluster intermediate  (CA, pathLen 0, 1 year, URI SAN spiffe://<domain>/cluster/<c>)
          └── leaf SVIDs  (24 h, see issuer.py)

The intermediate carries its cluster in its URI SAN; the verifier refuses a leaf whose
SPIFFE ID names another cluster than the intermediate that signed it, so one cluster's CA
key cannot mint identities for another cluster. (X.509 URI name constraints would be the
standard tool, but they only constrain the host part and ``cryptography``'s verifier
rejects them as unsupported.)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from isthmus.logging import get_logger
from isthmus.trust.errors import IssuanceError, MaterialError
from isthmus.trust.pem import (
    PrivateKey,
    certs_to_pem,
    fingerprint,
    generate_key,
    key_matches,
    key_to_pem,
)
from isthmus.trust.spiffe import SpiffeId, cluster_ca_id, cluster_of_ca_id, validate_trust_domain
from isthmus.trust.svid_rules import ca_spiffe_id, check_signing_cert

# Lazy: structlog builds it on first use, after the process configured logging.
log = get_logger(__name__)


ROOT_LIFETIME = dt.timedelta(days=3650)
INTERMEDIATE_LIFETIME = dt.timedelta(days=365)
BACKDATE = dt.timedelta(minutes=1)
"""Certificates start a little in the past, so a peer whose clock lags still accepts them."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class CertifiedKey:
    """A certificate, its private key, and the issuers to send after it (root excluded).

    ``repr`` never shows the key.
    """

    cert: x509.Certificate
    key: PrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if not key_matches(self.key, self.cert):
            raise MaterialError("private key does not match certificate")

    @property
    def full_chain(self) -> tuple[x509.Certificate, ...]:
        return (self.cert, *self.chain)

    def chain_pem(self) -> bytes:
        """The certificate followed by its intermediates: what a TLS endpoint presents."""
        return certs_to_pem(self.full_chain)

    def cert_pem(self) -> bytes:
        return certs_to_pem([self.cert])

    def key_pem(self) -> bytes:
        return key_to_pem(self.key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)


def key_id(key: PrivateKey) -> str:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest.hex()[:8]


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _name(common_name: str, unit: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "isthmus"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
        ]
    )


def create_root(
    trust_domain: str,
    *,
    lifetime: dt.timedelta = ROOT_LIFETIME,
    now: dt.datetime | None = None,
    key: PrivateKey | None = None,
) -> CertifiedKey:
    """A new self-signed root for ``trust_domain`` (ECDSA P-256, path length 1)."""
    validate_trust_domain(trust_domain)
    now = now or utcnow()
    key = key or generate_key()
    name = _name(f"isthmus root {key_id(key)}", "root")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(str(SpiffeId(trust_domain, "")))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    material = CertifiedKey(cert, key)
    log.info("root created", trust_domain=trust_domain, fingerprint=material.fingerprint)
    return material


def trust_domain_of(ca_cert: x509.Certificate) -> str:
    """The trust domain a root or intermediate belongs to (from its URI SAN)."""
    found = ca_spiffe_id(ca_cert)
    if found is None:
        raise MaterialError(f"{ca_cert.subject.rfc4514_string()}: no SPIFFE ID in the CA")
    return found.trust_domain


def cluster_of(ca_cert: x509.Certificate) -> str:
    """The cluster an intermediate signs for."""
    found = ca_spiffe_id(ca_cert)
    cluster = cluster_of_ca_id(found) if found else None
    if cluster is None:
        raise MaterialError(f"{ca_cert.subject.rfc4514_string()}: not a cluster CA")
    return cluster


def check_can_sign(ca: CertifiedKey, now: dt.datetime) -> None:
    """Raise ``IssuanceError`` unless ``ca`` is a CA certificate valid at ``now``."""
    refusal = check_signing_cert(ca.cert)
    if refusal is not None:
        raise IssuanceError(refusal.detail)
    if not ca.cert.not_valid_before_utc <= now <= ca.cert.not_valid_after_utc:
        raise IssuanceError(
            f"CA {ca.cert.subject.rfc4514_string()} is not valid now "
            f"({ca.cert.not_valid_before_utc:%Y-%m-%d} to {ca.cert.not_valid_after_utc:%Y-%m-%d})"
        )


def create_cluster_ca(
    root: CertifiedKey,
    cluster: str,
    *,
    lifetime: dt.timedelta = INTERMEDIATE_LIFETIME,
    now: dt.datetime | None = None,
    key: PrivateKey | None = None,
) -> CertifiedKey:
    """An intermediate for one cluster, signed by ``root``; path length 0.

    Its lifetime is cut to the root's end if the root expires sooner.
    """
    now = now or utcnow()
    check_can_sign(root, now)
    trust_domain = trust_domain_of(root.cert)
    ca_id = cluster_ca_id(trust_domain, cluster)
    key = key or generate_key()
    not_after = min(now + lifetime, root.cert.not_valid_after_utc)
    if not_after < now + lifetime:
        log.warning(
            "cluster CA lifetime cut to the root's", cluster=cluster, not_after=str(not_after)
        )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{cluster} {key_id(key)}", "cluster-ca"))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(now - BACKDATE, root.cert.not_valid_before_utc))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(ca_id))]),
            critical=False,
        )
        .sign(root.key, hashes.SHA256())
    )
    material = CertifiedKey(cert, key, ())
    log.info(
        "cluster CA created",
        cluster=cluster,
        trust_domain=trust_domain,
        fingerprint=material.fingerprint,
        root=root.fingerprint,
        not_after=str(not_after),
    )
    return material
