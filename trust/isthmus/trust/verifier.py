"""Decide whether a peer's certificate chain is an isthmus identity we accept.

``verify_peer(bundle, chain_der, now)`` is what the gateway and the catalog server call
after the TLS handshake. Python's ``ssl`` already chained the peer to the bundle (the first
gate); this is the second, and it is pure: the same inputs always give the same verdict.

It checks, in order, returning the first failure as a ``Refusal``:

1. a chain was presented and every certificate parses;
2. the leaf obeys the X.509-SVID rules (svid_rules.py) and its SPIFFE ID is an isthmus
   identity of the bundle's trust domain;
3. every presented certificate is valid at ``now`` (both boundary seconds included, as
   RFC 5280 says);
4. ``cryptography``'s path builder (``PolicyBuilder``/``ClientVerifier``, with extension
   policies that repeat the SVID key-usage rules) finds a path to a root of the bundle
   that is itself valid at ``now``;
5. the intermediate that signed the leaf is the CA of the cluster the leaf names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509 import verification

from isthmus.trust.bundle import TrustBundle
from isthmus.trust.errors import MaterialError, PeerRefused, SpiffeIdError
from isthmus.trust.pem import describe_name, fingerprint, load_cert_der
from isthmus.trust.refusal import Reason, Refusal
from isthmus.trust.spiffe import IsthmusIdentity, SpiffeId, cluster_of_ca_id
from isthmus.trust.svid_rules import REQUIRED_EKUS, ca_spiffe_id, check_leaf

MAX_INTERMEDIATES = 2


@dataclass(frozen=True)
class PeerIdentity:
    """An accepted peer: who it is, and the verified chain (leaf first, root last)."""

    identity: IsthmusIdentity
    spiffe_id: SpiffeId
    chain: tuple[x509.Certificate, ...]
    root_fingerprint: str
    not_after: dt.datetime
    """The earliest end of validity in the chain: the identity is good until then."""

    @property
    def cluster(self) -> str:
        return self.identity.cluster

    def __str__(self) -> str:
        return self.identity.uri


def _validity(cert: x509.Certificate, now: dt.datetime, role: str) -> Refusal | None:
    subject = describe_name(cert)
    if now < cert.not_valid_before_utc:
        return Refusal(
            Reason.NOT_YET_VALID,
            f"{role} not valid before {cert.not_valid_before_utc.isoformat()}",
            subject,
        )
    if now > cert.not_valid_after_utc:
        return Refusal(
            Reason.EXPIRED, f"{role} expired at {cert.not_valid_after_utc.isoformat()}", subject
        )
    return None


def _ee_key_usage(
    _policy: verification.Policy, _cert: x509.Certificate, usage: x509.KeyUsage
) -> None:
    if usage.key_cert_sign or usage.crl_sign or not usage.digital_signature:
        raise ValueError("leaf keyUsage is not an SVID's")


def _ee_eku(
    _policy: verification.Policy, _cert: x509.Certificate, ekus: x509.ExtendedKeyUsage
) -> None:
    if not set(ekus) >= REQUIRED_EKUS:
        raise ValueError("leaf extendedKeyUsage lacks serverAuth or clientAuth")


def _ee_san(
    _policy: verification.Policy, _cert: x509.Certificate, san: x509.SubjectAlternativeName
) -> None:
    if len(san.get_values_for_type(x509.UniformResourceIdentifier)) != 1:
        raise ValueError("leaf must carry exactly one URI SAN")


def _policies() -> tuple[verification.ExtensionPolicy, verification.ExtensionPolicy]:
    agnostic = verification.Criticality.AGNOSTIC
    ee = (
        verification.ExtensionPolicy.webpki_defaults_ee()
        .require_present(x509.KeyUsage, agnostic, _ee_key_usage)
        .require_present(x509.ExtendedKeyUsage, agnostic, _ee_eku)
        .require_present(x509.SubjectAlternativeName, agnostic, _ee_san)
    )
    return verification.ExtensionPolicy.webpki_defaults_ca(), ee


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _touches_bundle(certs: Sequence[x509.Certificate], bundle: TrustBundle) -> bool:
    """Whether any presented certificate is a bundle root or signed by one."""
    return any(
        bundle.contains(cert) or any(_issued_by(cert, root) for root in bundle.roots)
        for cert in certs
    )


def _build_path(
    bundle: TrustBundle, leaf: x509.Certificate, rest: list[x509.Certificate], now: dt.datetime
) -> list[x509.Certificate] | Refusal:
    ca_policy, ee_policy = _policies()
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(bundle.roots)))
        .time(now)
        .max_chain_depth(MAX_INTERMEDIATES)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        return verifier.verify(leaf, rest).chain
    except verification.VerificationError as exc:
        presented = [leaf, *rest]
        if not _touches_bundle(presented, bundle):
            return Refusal(
                Reason.OTHER_ROOT,
                "chain does not lead to any root of the trust bundle",
                describe_name(presented[-1]),
            )
        for root in bundle.roots:
            if any(_issued_by(cert, root) for cert in presented):
                expired = _validity(root, now, "root")
                if expired is not None:
                    return expired
        return Refusal(Reason.CHAIN_INVALID, str(exc), describe_name(leaf))


def verify_peer(
    bundle: TrustBundle, chain_der: Sequence[bytes], now: dt.datetime
) -> PeerIdentity | Refusal:
    """The peer's identity if its chain (leaf first, DER) is acceptable at ``now``."""
    if not chain_der:
        return Refusal(Reason.NO_CERTIFICATE, "peer presented no certificate")
    try:
        certs = [load_cert_der(der) for der in chain_der]
    except MaterialError as exc:
        return Refusal(Reason.MALFORMED, str(exc))
    leaf, rest = certs[0], certs[1:]
    # Whatever the peer sends beyond the leaf and its intermediates (often the root itself)
    # is harmless: only bundle roots anchor a path.
    checked = check_leaf(leaf)
    if isinstance(checked, Refusal):
        return checked
    try:
        identity = IsthmusIdentity.from_spiffe_id(checked)
    except SpiffeIdError as exc:
        return Refusal(exc.reason, exc.detail, describe_name(leaf))
    if identity.trust_domain != bundle.trust_domain:
        return Refusal(
            Reason.TRUST_DOMAIN_MISMATCH,
            f"peer is in trust domain {identity.trust_domain!r}, "
            f"the bundle is {bundle.trust_domain!r}",
            describe_name(leaf),
        )
    for index, cert in enumerate(certs):
        if bundle.contains(cert):
            continue
        timing = _validity(cert, now, "leaf" if index == 0 else "intermediate")
        if timing is not None:
            return timing
    path = _build_path(bundle, leaf, [c for c in rest if not bundle.contains(c)], now)
    if isinstance(path, Refusal):
        return path
    if len(path) < 3:
        return Refusal(
            Reason.CLUSTER_MISMATCH, "leaf is not signed by a cluster CA", describe_name(leaf)
        )
    ca_id = ca_spiffe_id(path[1])
    signer = cluster_of_ca_id(ca_id) if ca_id else None
    if signer != identity.cluster:
        return Refusal(
            Reason.CLUSTER_MISMATCH,
            f"leaf names cluster {identity.cluster!r} but its CA signs for {signer!r}",
            describe_name(leaf),
        )
    return PeerIdentity(
        identity=identity,
        spiffe_id=checked,
        chain=tuple(path),
        root_fingerprint=fingerprint(path[-1]),
        not_after=min(cert.not_valid_after_utc for cert in path),
    )


def authorize_cluster(peer: PeerIdentity, linked: Collection[str]) -> Refusal | None:
    """Refuse a verified peer whose cluster is not one of ``linked`` (the Links' clusters).

    Pure; the gateway calls it with its current set of linked clusters, so the same
    certificate is refused before ``isthmus join`` and accepted after it.
    """
    if peer.cluster in linked:
        return None
    return Refusal(
        Reason.CLUSTER_NOT_LINKED,
        f"cluster {peer.cluster!r} is not linked to this one",
        peer.identity.uri,
    )


def require_peer(bundle: TrustBundle, chain_der: Sequence[bytes], now: dt.datetime) -> PeerIdentity:
    """``verify_peer`` that raises ``PeerRefused`` instead of returning a ``Refusal``."""
    verdict = verify_peer(bundle, chain_der, now)
    if isinstance(verdict, Refusal):
        raise PeerRefused(verdict)
    return verdict
