"""X.509-SVID leaf rules, each refused with its reason by ``check_leaf`` and by the
full verifier (where ``cryptography`` alone would accept several of them)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from trust_helpers import LeafSpec, Pki, der_chain, ident, key_usage, make_leaf

from isthmus.trust import PeerIdentity, Reason, Refusal, TrustBundle, verify_peer
from isthmus.trust.ca import utcnow
from isthmus.trust.svid_rules import check_leaf

TOO_LONG = "spiffe://example.org/cluster/west/ns/shop/sa/" + "a" * 2010

CASES = [
    pytest.param(LeafSpec(uris=(), dns=("users.shop",)), Reason.SPIFFE_NO_URI_SAN, id="no-uri-san"),
    pytest.param(LeafSpec(uris=()), Reason.SPIFFE_NO_URI_SAN, id="no-san-at-all"),
    pytest.param(
        LeafSpec(uris=(ident(), ident(sa="other"))), Reason.SPIFFE_TWO_URI_SANS, id="two-uri-sans"
    ),
    pytest.param(
        LeafSpec(uris=("https://example.org/cluster/west/ns/shop/sa/users",)),
        Reason.SPIFFE_BAD_SCHEME,
        id="https-scheme",
    ),
    pytest.param(LeafSpec(uris=("spiffe://example.org",)), Reason.SPIFFE_EMPTY_PATH, id="no-path"),
    pytest.param(
        LeafSpec(uris=("spiffe://example.org/",)), Reason.SPIFFE_EMPTY_PATH, id="root-path"
    ),
    pytest.param(
        LeafSpec(uris=("spiffe://EXAMPLE.org/cluster/west/ns/shop/sa/users",)),
        Reason.SPIFFE_UPPERCASE_TRUST_DOMAIN,
        id="uppercase-trust-domain",
    ),
    pytest.param(
        LeafSpec(uris=("spiffe://example.org/cluster/west/ns/shop/sa/us%65rs",)),
        Reason.SPIFFE_PERCENT_ENCODED,
        id="percent-encoded",
    ),
    pytest.param(
        LeafSpec(uris=("spiffe://example.org/cluster/west/ns/shop/sa/../users",)),
        Reason.SPIFFE_DOT_SEGMENT,
        id="dotdot-segment",
    ),
    pytest.param(
        LeafSpec(uris=("spiffe://example.org/cluster/west/./ns/shop/sa/users",)),
        Reason.SPIFFE_DOT_SEGMENT,
        id="dot-segment",
    ),
    pytest.param(LeafSpec(uris=(TOO_LONG,)), Reason.SPIFFE_TOO_LONG, id="over-2048-bytes"),
    pytest.param(LeafSpec(ca=True), Reason.LEAF_IS_CA, id="ca-true"),
    pytest.param(
        LeafSpec(usage=key_usage(digital_signature=True, key_cert_sign=True)),
        Reason.LEAF_KEY_CERT_SIGN,
        id="key-cert-sign",
    ),
    pytest.param(
        LeafSpec(usage=key_usage(digital_signature=True, crl_sign=True)),
        Reason.LEAF_CRL_SIGN,
        id="crl-sign",
    ),
    pytest.param(
        LeafSpec(usage=key_usage(key_agreement=True)),
        Reason.LEAF_NO_DIGITAL_SIGNATURE,
        id="no-digital-signature",
    ),
    pytest.param(LeafSpec(usage=None), Reason.LEAF_NO_KEY_USAGE, id="no-key-usage"),
    pytest.param(
        LeafSpec(ekus=(ExtendedKeyUsageOID.SERVER_AUTH,)), Reason.LEAF_EKU, id="server-auth-only"
    ),
    pytest.param(
        LeafSpec(ekus=(ExtendedKeyUsageOID.CLIENT_AUTH,)), Reason.LEAF_EKU, id="client-auth-only"
    ),
    pytest.param(LeafSpec(ekus=None), Reason.LEAF_EKU, id="no-eku"),
    pytest.param(
        LeafSpec(uris=("spiffe://example.org/workload/users",)),
        Reason.NOT_ISTHMUS_ID,
        id="not-isthmus-shape",
    ),
    pytest.param(
        LeafSpec(uris=(ident(td="other.org"),)),
        Reason.TRUST_DOMAIN_MISMATCH,
        id="other-trust-domain",
    ),
    pytest.param(
        LeafSpec(uris=(ident(cluster="east"),)), Reason.CLUSTER_MISMATCH, id="other-cluster"
    ),
]

VERIFIER_ONLY = {Reason.NOT_ISTHMUS_ID, Reason.TRUST_DOMAIN_MISMATCH, Reason.CLUSTER_MISMATCH}


@pytest.mark.parametrize(("spec", "reason"), CASES)
def test_leaf_rule_refused(pki: Pki, spec: LeafSpec, reason: Reason) -> None:
    leaf = make_leaf(pki.ca("west"), spec)
    if reason not in VERIFIER_ONLY:
        verdict = check_leaf(leaf.cert)
        assert isinstance(verdict, Refusal)
        assert verdict.reason is reason
    bundle = TrustBundle.of([pki.root.cert])
    refused = verify_peer(bundle, der_chain(leaf), utcnow())
    assert isinstance(refused, Refusal), refused
    assert refused.reason is reason
    assert refused.detail


def test_well_formed_leaf_passes(pki: Pki) -> None:
    leaf = make_leaf(pki.ca("west"), LeafSpec(dns=("users.shop.global",)))
    assert str(check_leaf(leaf.cert)) == ident()
    verdict = verify_peer(TrustBundle.of([pki.root.cert]), der_chain(leaf), utcnow())
    assert isinstance(verdict, PeerIdentity)
    assert verdict.identity.cluster == "west"


def test_issued_leaves_follow_every_rule(pki: Pki) -> None:
    from isthmus.trust import Issuer

    leaf = Issuer(pki.ca("west")).issue("shop", "users")
    assert str(check_leaf(leaf.cert)) == ident()
    assert leaf.cert.not_valid_after_utc - utcnow() <= dt.timedelta(hours=24)
