"""The verifier on whole chains: roots, validity (boundary seconds), structure, clusters."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from trust_helpers import LeafSpec, Pki, der_chain, ident, key_usage, make_leaf

from isthmus.trust import (
    Issuer,
    PeerIdentity,
    PeerRefused,
    Reason,
    Refusal,
    TrustBundle,
    authorize_cluster,
    create_cluster_ca,
    create_root,
    require_peer,
    verify_peer,
)
from isthmus.trust.ca import utcnow
from isthmus.trust.pem import fingerprint
from isthmus.trust.verifier import _build_path

SECOND = dt.timedelta(seconds=1)


def bundle_of(*pkis: Pki) -> TrustBundle:
    return TrustBundle.of([p.root.cert for p in pkis])


def test_accepts_and_names_the_peer(pki: Pki) -> None:
    leaf = Issuer(pki.ca("west")).issue("shop", "users")
    verdict = verify_peer(bundle_of(pki), der_chain(leaf), utcnow())
    assert isinstance(verdict, PeerIdentity)
    assert verdict.identity.uri == ident()
    assert verdict.cluster == "west"
    assert verdict.root_fingerprint == fingerprint(pki.root.cert)
    assert [c.subject for c in verdict.chain] == [
        leaf.cert.subject,
        pki.ca("west").cert.subject,
        pki.root.cert.subject,
    ]
    assert verdict.not_after == leaf.cert.not_valid_after_utc


def test_other_root_refused(pki: Pki, other_pki: Pki) -> None:
    stranger = Issuer(other_pki.ca("west")).issue("shop", "users")
    verdict = verify_peer(bundle_of(pki), der_chain(stranger), utcnow())
    assert isinstance(verdict, Refusal)
    assert verdict.reason is Reason.OTHER_ROOT


def test_other_root_refused_even_if_peer_sends_its_root(pki: Pki, other_pki: Pki) -> None:
    stranger = Issuer(other_pki.ca("west")).issue("shop", "users")
    chain = [*der_chain(stranger), der_chain(other_pki.root)[0]]
    verdict = verify_peer(bundle_of(pki), chain, utcnow())
    assert isinstance(verdict, Refusal)
    assert verdict.reason is Reason.OTHER_ROOT


def test_sending_the_bundle_root_along_is_harmless(pki: Pki) -> None:
    leaf = Issuer(pki.ca("west")).issue("shop", "users")
    chain = [*der_chain(leaf), der_chain(pki.root)[0]]
    assert isinstance(verify_peer(bundle_of(pki), chain, utcnow()), PeerIdentity)


def test_bundle_with_two_roots_accepts_both(pki: Pki, other_pki: Pki) -> None:
    both = bundle_of(pki, other_pki)
    for p in (pki, other_pki):
        leaf = Issuer(p.ca("west")).issue("shop", "users")
        verdict = verify_peer(both, der_chain(leaf), utcnow())
        assert isinstance(verdict, PeerIdentity)
        assert verdict.root_fingerprint == fingerprint(p.root.cert)


@pytest.mark.parametrize(
    ("chain", "reason"),
    [
        pytest.param([], Reason.NO_CERTIFICATE, id="no-certificate"),
        pytest.param([b"\x30\x03garbage"], Reason.MALFORMED, id="garbage-der"),
    ],
)
def test_unusable_input(pki: Pki, chain: list[bytes], reason: Reason) -> None:
    verdict = verify_peer(bundle_of(pki), chain, utcnow())
    assert isinstance(verdict, Refusal)
    assert verdict.reason is reason


def test_missing_intermediate_refused(pki: Pki) -> None:
    leaf = Issuer(pki.ca("west")).issue("shop", "users")
    verdict = verify_peer(bundle_of(pki), der_chain(leaf)[:1], utcnow())
    assert isinstance(verdict, Refusal)
    assert verdict.reason is Reason.OTHER_ROOT


def test_leaf_signed_by_root_directly_refused(pki: Pki) -> None:
    leaf = make_leaf(pki.root)
    verdict = verify_peer(bundle_of(pki), der_chain(leaf)[:1], utcnow())
    assert isinstance(verdict, Refusal)
    assert verdict.reason is Reason.CLUSTER_MISMATCH


def test_leaf_signed_by_a_leaf_refused(pki: Pki) -> None:
    middle = Issuer(pki.ca("west")).issue("shop", "middle")
    leaf = make_leaf(middle)
    verdict = verify_peer(bundle_of(pki), der_chain(leaf), utcnow())
    assert isinstance(verdict, Refusal)
    assert verdict.reason is Reason.CHAIN_INVALID


def test_cluster_ca_cannot_mint_another_clusters_identity(pki: Pki) -> None:
    forged = make_leaf(pki.ca("west"), LeafSpec(uris=(ident(cluster="east"),)))
    verdict = verify_peer(bundle_of(pki), der_chain(forged), utcnow())
    assert isinstance(verdict, Refusal)
    assert verdict.reason is Reason.CLUSTER_MISMATCH
    assert "east" in verdict.detail


def test_require_peer_raises_with_the_refusal(pki: Pki, other_pki: Pki) -> None:
    stranger = Issuer(other_pki.ca("west")).issue("shop", "users")
    with pytest.raises(PeerRefused) as caught:
        require_peer(bundle_of(pki), der_chain(stranger), utcnow())
    assert caught.value.refusal.reason is Reason.OTHER_ROOT
    assert "other_root" in str(caught.value)


# --- validity: RFC 5280 4.1.2.5, both boundary seconds belong to the validity period ----


@pytest.fixture(scope="module")
def edges(pki: Pki) -> tuple[dt.datetime, dt.datetime]:
    start = utcnow() + dt.timedelta(hours=1)
    return start, start + dt.timedelta(hours=2)


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        pytest.param("start-1s", Reason.NOT_YET_VALID, id="second-before-notBefore"),
        pytest.param("start", None, id="notBefore-second"),
        pytest.param("end", None, id="notAfter-second"),
        pytest.param("end+1s", Reason.EXPIRED, id="second-after-notAfter"),
    ],
)
def test_leaf_boundary_seconds(
    pki: Pki, edges: tuple[dt.datetime, dt.datetime], at: str, reason: Reason | None
) -> None:
    start, end = edges
    leaf = make_leaf(pki.ca("west"), LeafSpec(not_before=start, not_after=end))
    when = {"start-1s": start - SECOND, "start": start, "end": end, "end+1s": end + SECOND}[at]
    verdict = verify_peer(bundle_of(pki), der_chain(leaf), when)
    if reason is None:
        assert isinstance(verdict, PeerIdentity), verdict
    else:
        assert isinstance(verdict, Refusal)
        assert verdict.reason is reason
        assert "leaf" in verdict.detail


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        pytest.param("start-1s", Reason.NOT_YET_VALID, id="second-before-notBefore"),
        pytest.param("start", None, id="notBefore-second"),
        pytest.param("end", None, id="notAfter-second"),
        pytest.param("end+1s", Reason.EXPIRED, id="second-after-notAfter"),
    ],
)
def test_intermediate_boundary_seconds(pki: Pki, at: str, reason: Reason | None) -> None:
    issued = utcnow() + dt.timedelta(hours=1)
    ca = create_cluster_ca(pki.root, "west", lifetime=dt.timedelta(hours=2), now=issued)
    start, end = ca.cert.not_valid_before_utc, ca.cert.not_valid_after_utc
    leaf = make_leaf(
        ca, LeafSpec(not_before=start - dt.timedelta(days=1), not_after=end + dt.timedelta(days=1))
    )
    when = {"start-1s": start - SECOND, "start": start, "end": end, "end+1s": end + SECOND}[at]
    verdict = verify_peer(bundle_of(pki), der_chain(leaf), when)
    if reason is None:
        assert isinstance(verdict, PeerIdentity), verdict
    else:
        assert isinstance(verdict, Refusal)
        assert verdict.reason is reason
        assert "intermediate" in verdict.detail
        assert verdict.subject == ca.cert.subject.rfc4514_string()


def test_everything_under_an_expired_root_is_refused() -> None:
    past = utcnow() - dt.timedelta(days=30)
    root = create_root("example.org", lifetime=dt.timedelta(days=10), now=past)
    ca = create_cluster_ca(root, "west", now=past + dt.timedelta(days=1))
    leaf = Issuer(ca).issue("shop", "users", now=past + dt.timedelta(days=2))
    bundle = TrustBundle.of([root.cert])
    assert isinstance(
        verify_peer(bundle, der_chain(leaf), past + dt.timedelta(days=2)), PeerIdentity
    )
    verdict = verify_peer(bundle, der_chain(leaf), utcnow())
    assert isinstance(verdict, Refusal)
    assert verdict.reason is Reason.EXPIRED


def test_unlinked_cluster_refused_then_accepted_after_join(pki: Pki) -> None:
    leaf = Issuer(pki.ca("west")).issue("shop", "users")
    peer = verify_peer(bundle_of(pki), der_chain(leaf), utcnow())
    assert isinstance(peer, PeerIdentity)
    refused = authorize_cluster(peer, {"east"})
    assert isinstance(refused, Refusal)
    assert refused.reason is Reason.CLUSTER_NOT_LINKED
    assert authorize_cluster(peer, {"east", "west"}) is None  # after `isthmus join`


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(LeafSpec(usage=key_usage(key_agreement=True)), id="no-digital-signature"),
        pytest.param(
            LeafSpec(usage=key_usage(digital_signature=True, crl_sign=True)), id="crl-sign"
        ),
        pytest.param(LeafSpec(ekus=(ExtendedKeyUsageOID.CLIENT_AUTH,)), id="client-auth-only"),
        pytest.param(LeafSpec(uris=(ident(), ident(sa="x"))), id="two-uris"),
    ],
)
def test_cryptography_policies_repeat_the_svid_rules(pki: Pki, spec: LeafSpec) -> None:
    """Defence in depth: the path builder's extension policies refuse these on their own
    (plain ``cryptography`` would accept them)."""
    leaf = make_leaf(pki.ca("west"), spec)
    path = _build_path(bundle_of(pki), leaf.cert, [pki.ca("west").cert], utcnow())
    assert isinstance(path, Refusal)
    assert path.reason is Reason.CHAIN_INVALID
