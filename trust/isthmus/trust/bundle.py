"""The trust bundle: the roots a cluster accepts, usually one, two during a root rotation.

A bundle belongs to one trust domain; every root in it carries that domain as its URI
SAN. Bundles are immutable values; ``with_root``/``without_root`` give new ones.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from isthmus.trust.ca import trust_domain_of
from isthmus.trust.errors import MaterialError
from isthmus.trust.pem import certs_to_pem, describe_name, fingerprint, load_certs
from isthmus.trust.svid_rules import check_signing_cert


@dataclass(frozen=True)
class TrustBundle:
    """Roots of one trust domain, in order, without duplicates."""

    trust_domain: str
    roots: tuple[x509.Certificate, ...]

    @classmethod
    def of(cls, roots: Iterable[x509.Certificate]) -> TrustBundle:
        """Validate and de-duplicate ``roots`` (same trust domain, self-signed CAs)."""
        unique: dict[str, x509.Certificate] = {}
        for root in roots:
            unique.setdefault(fingerprint(root), root)
        if not unique:
            raise MaterialError("a trust bundle needs at least one root")
        domains: set[str] = set()
        for root in unique.values():
            if root.subject != root.issuer:
                raise MaterialError(f"{describe_name(root)} is not self-signed, not a root")
            refusal = check_signing_cert(root)
            if refusal is not None:
                raise MaterialError(f"{describe_name(root)}: {refusal.detail}")
            try:
                root.verify_directly_issued_by(root)
            except (ValueError, TypeError, InvalidSignature) as exc:
                raise MaterialError(f"{describe_name(root)}: bad self-signature") from exc
            domains.add(trust_domain_of(root))
        if len(domains) != 1:
            raise MaterialError(f"roots of several trust domains in one bundle: {sorted(domains)}")
        return cls(domains.pop(), tuple(unique.values()))

    @classmethod
    def from_pem(cls, data: bytes | str, *, what: str = "bundle") -> TrustBundle:
        return cls.of(load_certs(data, what=what))

    def to_pem(self) -> bytes:
        return certs_to_pem(self.roots)

    @functools.cached_property
    def fingerprints(self) -> tuple[str, ...]:
        # Cached: the data path asks for every OPEN and every revocation check.
        return tuple(fingerprint(root) for root in self.roots)

    def with_root(self, root: x509.Certificate) -> TrustBundle:
        return TrustBundle.of([*self.roots, root])

    def without_root(self, root: x509.Certificate) -> TrustBundle:
        gone = fingerprint(root)
        return TrustBundle.of([r for r in self.roots if fingerprint(r) != gone])

    def contains(self, cert: x509.Certificate) -> bool:
        return fingerprint(cert) in self.fingerprints

    def valid_roots(self, now: dt.datetime) -> tuple[x509.Certificate, ...]:
        return tuple(
            r for r in self.roots if r.not_valid_before_utc <= now <= r.not_valid_after_utc
        )
