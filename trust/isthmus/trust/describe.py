"""Certificates in human terms (pure; used by ``isthmus trust inspect``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from isthmus.trust.bundle import TrustBundle
from isthmus.trust.errors import MaterialError
from isthmus.trust.expiry import format_delta
from isthmus.trust.pem import describe_name, fingerprint, uri_sans
from isthmus.trust.refusal import Refusal
from isthmus.trust.spiffe import cluster_of_ca_id
from isthmus.trust.svid_rules import ca_spiffe_id, extension
from isthmus.trust.verifier import verify_peer


def kind_of(cert: x509.Certificate) -> str:
    constraints = extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        return "leaf"
    if cert.subject == cert.issuer:
        found = ca_spiffe_id(cert)
        return f"root (trust domain {found.trust_domain})" if found else "root"
    found = ca_spiffe_id(cert)
    cluster = cluster_of_ca_id(found) if found else None
    return f"cluster CA ({cluster})" if cluster else "intermediate CA"


def validity_line(cert: x509.Certificate, now: dt.datetime) -> str:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now > end:
        state = f"EXPIRED {format_delta(now - end)} ago"
    elif now < start:
        state = f"NOT YET VALID (starts in {format_delta(start - now)})"
    else:
        state = f"{format_delta(end - now)} left"
    return f"{start.isoformat()} to {end.isoformat()} ({state})"


def describe_cert(label: str, cert: x509.Certificate, now: dt.datetime) -> list[str]:
    uris = uri_sans(cert)
    return [
        f"{label}",
        f"  kind:        {kind_of(cert)}",
        f"  subject:     {describe_name(cert)}",
        f"  spiffe id:   {', '.join(uris) if uris else '(none)'}",
        f"  issuer:      {cert.issuer.rfc4514_string()}",
        f"  validity:    {validity_line(cert, now)}",
        f"  fingerprint: sha256:{fingerprint(cert)}",
    ]


def chain_verdict(
    certs: Sequence[x509.Certificate], bundle: TrustBundle | None, now: dt.datetime
) -> str:
    """``chain: OK ...`` or ``chain: refused (...)`` for a leaf-first list; roots in the
    list are used as the bundle when none is given."""
    if not certs or kind_of(certs[0]) != "leaf":
        return "chain: (no leaf to verify)"
    if bundle is None:
        roots = [c for c in certs if c.subject == c.issuer]
        if not roots:
            return "chain: not checked (no root given: pass --bundle)"
        try:
            bundle = TrustBundle.of(roots)
        except MaterialError as exc:
            return f"chain: not checked ({exc})"
    der = [c.public_bytes(serialization.Encoding.DER) for c in certs]
    verdict = verify_peer(bundle, der, now)
    if isinstance(verdict, Refusal):
        return f"chain: {verdict}"
    return f"chain: OK ({verdict.identity.uri}, root sha256:{verdict.root_fingerprint[:16]})"
