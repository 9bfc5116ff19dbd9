"""Root, cluster CA and leaf issuance; the renewal schedule and loop; bundles; manifests."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import random

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from trust_helpers import Pki

from isthmus.trust import (
    BUNDLE_CONFIGMAP,
    CLUSTER_CA_SECRET,
    NAMESPACE,
    CertifiedKey,
    IssuanceError,
    Issuer,
    LeafRenewer,
    MaterialError,
    SpiffeIdError,
    TrustBundle,
    bundle_configmap,
    bundle_from_configmap,
    cluster_ca_from_secret,
    cluster_ca_secret,
    create_cluster_ca,
    create_root,
    leaf_secret,
    next_renewal,
)
from isthmus.trust.ca import utcnow
from isthmus.trust.manifests import to_yaml
from isthmus.trust.pem import uri_sans


def test_root_shape(pki: Pki) -> None:
    root = pki.root.cert
    assert isinstance(pki.root.key.curve, ec.SECP256R1)
    assert root.subject == root.issuer
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 1
    usage = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert dt.timedelta(days=3649) < lifetime < dt.timedelta(days=3651)
    assert uri_sans(root) == ["spiffe://example.org"]


def test_cluster_ca_shape(pki: Pki) -> None:
    ca = pki.ca("west").cert
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert uri_sans(ca) == ["spiffe://example.org/cluster/west"]
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert dt.timedelta(days=364) < lifetime < dt.timedelta(days=366)
    ca.verify_directly_issued_by(pki.root.cert)


def test_cluster_ca_is_cut_to_the_root() -> None:
    root = create_root("example.org", lifetime=dt.timedelta(days=100))
    ca = create_cluster_ca(root, "west")
    assert ca.cert.not_valid_after_utc == root.cert.not_valid_after_utc


def test_cluster_ca_refused_from_expired_root_and_bad_name() -> None:
    root = create_root(
        "example.org", lifetime=dt.timedelta(days=1), now=utcnow() - dt.timedelta(days=5)
    )
    with pytest.raises(IssuanceError, match="not valid now"):
        create_cluster_ca(root, "west")
    with pytest.raises(SpiffeIdError):
        create_cluster_ca(create_root("example.org"), "West_1")
    with pytest.raises(SpiffeIdError):
        create_root("Example.org")


def test_leaf_shape(pki: Pki) -> None:
    now = utcnow()
    leaf = Issuer(pki.ca("west")).issue("shop", "users", now=now, dns_names=["users.shop.global"])
    cert = leaf.cert
    assert isinstance(leaf.key.curve, ec.SECP256R1)
    assert cert.not_valid_after_utc == now + dt.timedelta(hours=24)
    assert uri_sans(cert) == ["spiffe://example.org/cluster/west/ns/shop/sa/users"]
    assert leaf.chain == (pki.ca("west").cert,)
    assert b"PRIVATE KEY" not in leaf.chain_pem()
    assert "key" not in repr(leaf).replace("CertifiedKey", "")


def test_leaf_is_cut_to_the_intermediate(pki: Pki) -> None:
    short = create_cluster_ca(pki.root, "west", lifetime=dt.timedelta(hours=3))
    leaf = Issuer(short).issue("shop", "users")
    assert leaf.cert.not_valid_after_utc == short.cert.not_valid_after_utc


def test_issuer_refuses(pki: Pki) -> None:
    issuer = Issuer(pki.ca("west"))
    with pytest.raises(IssuanceError):
        issuer.issue("shop", "users", lifetime=dt.timedelta(0))
    with pytest.raises(IssuanceError, match="not valid now"):
        issuer.issue("shop", "users", now=utcnow() + dt.timedelta(days=400))
    with pytest.raises(SpiffeIdError):
        issuer.issue("Shop", "users")
    with pytest.raises(MaterialError, match="not a cluster CA"):
        Issuer(pki.root)
    leaf = issuer.issue("shop", "users")
    with pytest.raises(MaterialError):  # a leaf cannot be a CA for an issuer
        Issuer(leaf)


def test_certified_key_refuses_a_mismatched_key(pki: Pki) -> None:
    other = Issuer(pki.ca("west")).issue("shop", "users")
    with pytest.raises(MaterialError, match="does not match"):
        CertifiedKey(pki.root.cert, other.key)


# --- renewal ------------------------------------------------------------------------


def test_next_renewal_is_half_life_with_bounded_jitter() -> None:
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    end = start + dt.timedelta(hours=24)
    seen = [next_renewal(start, end, random.Random(seed)) for seed in range(200)]
    assert all(start + dt.timedelta(hours=9.6) <= t <= start + dt.timedelta(hours=12) for t in seen)
    assert len(set(seen)) > 150  # spread, not in step
    assert next_renewal(start, end, random.Random(7)) == next_renewal(start, end, random.Random(7))


async def test_renewer_issues_publishes_and_retries(pki: Pki) -> None:
    issuer = Issuer(pki.ca("west"))
    published: list[CertifiedKey] = []
    attempts = 0

    async def publish(leaf: CertifiedKey) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 2:
            raise OSError("API server unavailable")
        published.append(leaf)

    renewer = LeafRenewer(
        lambda: issuer.issue("isthmus-system", "gateway"),
        publish,
        rng=random.Random(1),
        backoff=(0.01,),
    )
    await asyncio.wait_for(renewer.run(iterations=1), 5)  # no leaf yet: issue at once
    assert len(published) == 1 and renewer.current is published[0]
    due = renewer.due()
    cert = published[0].cert
    assert cert.not_valid_before_utc < due < cert.not_valid_after_utc
    # Intermediate rotated: renew now instead of waiting half a day.
    task = asyncio.create_task(renewer.run(iterations=1))
    await asyncio.sleep(0.05)
    assert not task.done()
    renewer.renew_now()
    await asyncio.wait_for(task, 5)
    assert attempts == 3 and len(published) == 2  # one failure, retried
    assert renewer.current is published[1]


# --- bundles and manifests ------------------------------------------------------------


def test_bundle_rules(pki: Pki, other_pki: Pki) -> None:
    one = TrustBundle.of([pki.root.cert, pki.root.cert])
    assert len(one.roots) == 1
    two = one.with_root(other_pki.root.cert)
    assert two.roots == (pki.root.cert, other_pki.root.cert)
    assert two.without_root(pki.root.cert).roots == (other_pki.root.cert,)
    assert TrustBundle.from_pem(two.to_pem()) == two
    with pytest.raises(MaterialError, match="at least one root"):
        one.without_root(pki.root.cert)
    with pytest.raises(MaterialError, match="not self-signed"):
        TrustBundle.of([pki.ca("west").cert])
    with pytest.raises(MaterialError, match="several trust domains"):
        TrustBundle.of([pki.root.cert, create_root("other.org").cert])
    with pytest.raises(MaterialError):
        TrustBundle.from_pem(b"nothing here")


def test_cluster_ca_secret_round_trip(pki: Pki) -> None:
    ca = pki.ca("west")
    secret = cluster_ca_secret(ca, pki.root.cert_pem())
    assert secret["metadata"]["name"] == CLUSTER_CA_SECRET == "isthmus-cluster-ca"
    assert secret["metadata"]["namespace"] == NAMESPACE == "isthmus-system"
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    assert base64.b64decode(secret["data"]["ca.crt"]) == pki.root.cert_pem()
    back = cluster_ca_from_secret(yaml.safe_load(to_yaml([secret])))
    assert back.cert == ca.cert and back.fingerprint == ca.fingerprint
    with pytest.raises(MaterialError):
        cluster_ca_from_secret({"kind": "ConfigMap", "metadata": {"name": "x"}})
    broken = dict(secret, data={"tls.crt": secret["data"]["tls.crt"]})
    with pytest.raises(MaterialError, match=r"tls\.key"):
        cluster_ca_from_secret(broken)


def test_bundle_configmap_round_trip(pki: Pki, other_pki: Pki) -> None:
    bundle = TrustBundle.of([pki.root.cert, other_pki.root.cert])
    configmap = bundle_configmap(bundle)
    assert configmap["metadata"]["name"] == BUNDLE_CONFIGMAP == "isthmus-trust-bundle"
    assert configmap["data"]["roots.pem"].count("BEGIN CERTIFICATE") == 2
    assert bundle_from_configmap(yaml.safe_load(to_yaml([configmap]))) == bundle


def test_leaf_secret(pki: Pki) -> None:
    leaf = Issuer(pki.ca("west")).issue("isthmus-system", "gateway")
    secret = leaf_secret(leaf, "isthmus-gateway-tls", "isthmus-system")
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]) == leaf.chain_pem()
