"""Kubernetes objects the trust layer writes, and reads back (pydantic at the boundary).

- Secret ``isthmus-system/isthmus-cluster-ca`` (type ``kubernetes.io/tls``): the cluster
  intermediate. ``tls.crt`` the intermediate, ``tls.key`` its key, ``ca.crt`` the root that
  signed it. Read by the mirror controller only.
- ConfigMap ``isthmus-system/isthmus-trust-bundle``: key ``roots.pem``, every accepted root.
  Mounted by the gateway and the mirror.
- Leaf Secrets (type ``kubernetes.io/tls``): ``tls.crt`` leaf then intermediate,
  ``tls.key``; written by the mirror for the gateway and for itself.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any

import pydantic
import yaml

from isthmus.trust.bundle import TrustBundle
from isthmus.trust.ca import CertifiedKey, cluster_of, trust_domain_of
from isthmus.trust.errors import MaterialError
from isthmus.trust.pem import load_certs, load_key

NAMESPACE = "isthmus-system"
CLUSTER_CA_SECRET = "isthmus-cluster-ca"  # noqa: S105 - a name, not a password
BUNDLE_CONFIGMAP = "isthmus-trust-bundle"
BUNDLE_KEY = "roots.pem"
PART_OF = {"app.kubernetes.io/part-of": "isthmus", "app.kubernetes.io/managed-by": "isthmus-trust"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def cluster_ca_secret(
    ca: CertifiedKey, root_pem: bytes, *, namespace: str = NAMESPACE
) -> dict[str, Any]:
    """The Secret that hands a cluster its intermediate."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": CLUSTER_CA_SECRET,
            "namespace": namespace,
            "labels": {**PART_OF, "isthmus.io/cluster": cluster_of(ca.cert)},
            "annotations": {
                "isthmus.io/trust-domain": trust_domain_of(ca.cert),
                "isthmus.io/fingerprint": ca.fingerprint,
                "isthmus.io/not-after": ca.cert.not_valid_after_utc.isoformat(),
            },
        },
        "data": {
            "tls.crt": _b64(ca.cert_pem()),
            "tls.key": _b64(ca.key_pem()),
            "ca.crt": _b64(root_pem),
        },
    }


def leaf_secret(leaf: CertifiedKey, name: str, namespace: str) -> dict[str, Any]:
    """A ``kubernetes.io/tls`` Secret for a leaf (chain in ``tls.crt``)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(PART_OF),
            "annotations": {
                "isthmus.io/fingerprint": leaf.fingerprint,
                "isthmus.io/not-after": leaf.cert.not_valid_after_utc.isoformat(),
            },
        },
        "data": {"tls.crt": _b64(leaf.chain_pem()), "tls.key": _b64(leaf.key_pem())},
    }


def bundle_configmap(bundle: TrustBundle, *, namespace: str = NAMESPACE) -> dict[str, Any]:
    """The ConfigMap of accepted roots."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": BUNDLE_CONFIGMAP,
            "namespace": namespace,
            "labels": dict(PART_OF),
            "annotations": {
                "isthmus.io/trust-domain": bundle.trust_domain,
                "isthmus.io/roots": ",".join(f[:16] for f in bundle.fingerprints),
            },
        },
        "data": {BUNDLE_KEY: bundle.to_pem().decode("ascii")},
    }


def to_yaml(objects: Iterable[dict[str, Any]]) -> str:
    """A multi-document YAML stream, ready for ``kubectl apply -f -``."""
    return yaml.safe_dump_all(list(objects), sort_keys=False, explicit_start=True)


class _Meta(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")
    name: str
    namespace: str | None = None


class SecretObject(pydantic.BaseModel):
    """A Secret as read back from YAML or the API (base64 ``data`` and/or ``stringData``)."""

    model_config = pydantic.ConfigDict(extra="ignore", populate_by_name=True)
    kind: str = pydantic.Field(pattern="^Secret$")
    metadata: _Meta
    data: dict[str, str] = {}
    string_data: dict[str, str] = pydantic.Field(default={}, alias="stringData")

    def decoded(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for name, value in self.data.items():
            try:
                out[name] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise MaterialError(f"secret {self.metadata.name}: {name} is not base64") from exc
        out.update({k: v.encode("utf-8") for k, v in self.string_data.items()})
        return out


class ConfigMapObject(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")
    kind: str = pydantic.Field(pattern="^ConfigMap$")
    metadata: _Meta
    data: dict[str, str] = {}


def cluster_ca_from_secret(obj: dict[str, Any]) -> CertifiedKey:
    """The intermediate held in an ``isthmus-cluster-ca`` Secret."""
    try:
        secret = SecretObject.model_validate(obj)
    except pydantic.ValidationError as exc:
        raise MaterialError(f"not a cluster CA Secret: {exc.error_count()} problem(s)") from exc
    data = secret.decoded()
    for needed in ("tls.crt", "tls.key"):
        if needed not in data:
            raise MaterialError(f"secret {secret.metadata.name} has no {needed!r}")
    certs = load_certs(data["tls.crt"], what=f"secret {secret.metadata.name} tls.crt")
    key = load_key(data["tls.key"], what=f"secret {secret.metadata.name} tls.key")
    return CertifiedKey(certs[0], key, tuple(certs[1:]))


def bundle_from_configmap(obj: dict[str, Any]) -> TrustBundle:
    try:
        configmap = ConfigMapObject.model_validate(obj)
    except pydantic.ValidationError as exc:
        raise MaterialError(f"not a bundle ConfigMap: {exc.error_count()} problem(s)") from exc
    if BUNDLE_KEY not in configmap.data:
        raise MaterialError(f"configmap {configmap.metadata.name} has no {BUNDLE_KEY!r}")
    return TrustBundle.from_pem(configmap.data[BUNDLE_KEY], what=configmap.metadata.name)


def certs_in_object(obj: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(label, PEM) for every certificate-bearing value of a Secret or ConfigMap."""
    kind = obj.get("kind")
    name = (obj.get("metadata") or {}).get("name", "?")
    values: dict[str, bytes] = {}
    try:
        if kind == "Secret":
            values = SecretObject.model_validate(obj).decoded()
        elif kind == "ConfigMap":
            values = {k: v.encode() for k, v in ConfigMapObject.model_validate(obj).data.items()}
    except pydantic.ValidationError as exc:
        raise MaterialError(f"{kind}/{name}: malformed ({exc.error_count()} problem(s))") from exc
    return [
        (f"{kind}/{name}[{key}]", value)
        for key, value in values.items()
        if b"-----BEGIN CERTIFICATE-----" in value
    ]
