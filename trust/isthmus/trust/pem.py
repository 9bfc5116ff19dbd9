"""PEM and DER in and out: certificates, chains and ECDSA P-256 keys.

Pure conversions. A private key only ever leaves this module as bytes handed to the
caller; nothing here logs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from isthmus.trust.errors import MaterialError

PrivateKey = ec.EllipticCurvePrivateKey
_BEGIN_CERT = b"-----BEGIN CERTIFICATE-----"


def load_certs(data: bytes | str, *, what: str = "input") -> list[x509.Certificate]:
    """Every certificate in a PEM blob, in order. At least one, else ``MaterialError``."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    if _BEGIN_CERT not in raw:
        raise MaterialError(f"{what}: no PEM certificate found")
    try:
        certs = x509.load_pem_x509_certificates(raw)
    except ValueError as exc:
        raise MaterialError(f"{what}: unreadable PEM certificate ({exc})") from exc
    return certs


def load_cert_der(data: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise MaterialError(f"unreadable DER certificate ({exc})") from exc


def certs_to_pem(certs: Iterable[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def generate_key() -> PrivateKey:
    """A fresh ECDSA P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: PrivateKey) -> bytes:
    """PKCS#8, unencrypted: protect the file (0600) or the Secret, not the bytes."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(data: bytes | str, *, what: str = "key") -> PrivateKey:
    """An ECDSA P-256 private key from PEM; any other kind is refused."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError) as exc:
        # The exception text never contains key material, but keep it short anyway.
        raise MaterialError(f"{what}: unreadable PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise MaterialError(f"{what}: not an ECDSA P-256 private key")
    return key


def key_matches(key: PrivateKey, cert: x509.Certificate) -> bool:
    return key.public_key() == cert.public_key()


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER, lower-case hex: how isthmus names a certificate in logs."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def describe_name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def uri_sans(cert: x509.Certificate) -> list[str]:
    """The URI subjectAltNames of ``cert`` (empty if it has none)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))
