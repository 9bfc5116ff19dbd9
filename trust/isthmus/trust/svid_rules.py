"""X.509-SVID rules: what a leaf (and a signing certificate) must look like.

A leaf SVID has exactly one URI SAN, a valid SPIFFE ID with a non-root path, cA=false,
a key usage with digitalSignature and without keyCertSign or cRLSign, and an extended
key usage with both serverAuth and clientAuth (isthmus leaves serve and dial). Python's
``ssl`` does not look at any of this, and ``cryptography``'s verifier only at some, so the
verifier runs these checks itself. Pure functions: a certificate in, a verdict out.
"""

from __future__ import annotations

from typing import TypeVar

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from isthmus.trust.errors import SpiffeIdError
from isthmus.trust.pem import describe_name, uri_sans
from isthmus.trust.refusal import Reason, Refusal
from isthmus.trust.spiffe import SpiffeId, parse_spiffe_id

T = TypeVar("T", bound=x509.ExtensionType)

REQUIRED_EKUS = frozenset({ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH})


def extension(cert: x509.Certificate, kind: type[T]) -> T | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def leaf_spiffe_id(cert: x509.Certificate) -> SpiffeId | Refusal:
    """The leaf's one SPIFFE ID, or why it has none usable."""
    subject = describe_name(cert)
    uris = uri_sans(cert)
    if not uris:
        return Refusal(Reason.SPIFFE_NO_URI_SAN, "leaf has no URI SAN", subject)
    if len(uris) > 1:
        return Refusal(Reason.SPIFFE_TWO_URI_SANS, f"leaf has {len(uris)} URI SANs", subject)
    try:
        return parse_spiffe_id(uris[0])
    except SpiffeIdError as exc:
        return Refusal(exc.reason, exc.detail, subject)


def check_leaf(cert: x509.Certificate) -> SpiffeId | Refusal:
    """Every X.509-SVID leaf rule; the SPIFFE ID if all hold, else the first broken one."""
    subject = describe_name(cert)
    found = leaf_spiffe_id(cert)
    if isinstance(found, Refusal):
        return found
    constraints = extension(cert, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        return Refusal(Reason.LEAF_IS_CA, "leaf has basicConstraints cA=true", subject)
    usage = extension(cert, x509.KeyUsage)
    if usage is None:
        return Refusal(Reason.LEAF_NO_KEY_USAGE, "leaf has no keyUsage", subject)
    if usage.key_cert_sign:
        return Refusal(Reason.LEAF_KEY_CERT_SIGN, "leaf keyUsage has keyCertSign", subject)
    if usage.crl_sign:
        return Refusal(Reason.LEAF_CRL_SIGN, "leaf keyUsage has cRLSign", subject)
    if not usage.digital_signature:
        return Refusal(
            Reason.LEAF_NO_DIGITAL_SIGNATURE, "leaf keyUsage lacks digitalSignature", subject
        )
    ekus = extension(cert, x509.ExtendedKeyUsage)
    if ekus is None or not set(ekus) >= REQUIRED_EKUS:
        return Refusal(
            Reason.LEAF_EKU, "leaf extendedKeyUsage must hold serverAuth and clientAuth", subject
        )
    return found


def check_signing_cert(cert: x509.Certificate) -> Refusal | None:
    """A certificate above the leaf must be a CA allowed to sign certificates."""
    subject = describe_name(cert)
    constraints = extension(cert, x509.BasicConstraints)
    usage = extension(cert, x509.KeyUsage)
    if constraints is None or not constraints.ca:
        return Refusal(Reason.INTERMEDIATE_NOT_CA, "signing certificate is not a CA", subject)
    if usage is not None and not usage.key_cert_sign:
        return Refusal(Reason.INTERMEDIATE_NOT_CA, "signing certificate lacks keyCertSign", subject)
    return None


def ca_spiffe_id(cert: x509.Certificate) -> SpiffeId | None:
    """The SPIFFE ID a CA certificate carries (root: trust domain; intermediate: cluster)."""
    uris = uri_sans(cert)
    if len(uris) != 1:
        return None
    try:
        return parse_spiffe_id(uris[0], require_path=False)
    except SpiffeIdError:
        return None
