"""Certificates: the mirror holds the cluster CA and keeps two leaves fresh.

It reads the intermediate from Secret ``isthmus-system/isthmus-cluster-ca`` and the roots
from ConfigMap ``isthmus-system/isthmus-trust-bundle``, issues (and renews at about half
life, with ``trust.LeafRenewer``) the gateway's leaf into ``isthmus-gateway-tls`` and its own
into ``isthmus-mirror-tls``. Its own leaf also carries the DNS name
``isthmus-mirror.isthmus-system.<cluster>.isthmus``: gRPC checks the server's name, and
pinning that name per Link makes a client accept only the *linked cluster's* mirror.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import grpc

from isthmus.kube import errors as kube_errors
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import CONFIGMAPS, SECRETS
from isthmus.labels import GATEWAY_TLS_SECRET, MIRROR_TLS_SECRET
from isthmus.logging import get_logger
from isthmus.mirror.errors import CertificateError
from isthmus.mirror.names import (
    FIELD_MANAGER,
    GATEWAY_SERVICE,
    MIRROR_SERVICE_ACCOUNT,
    mirror_server_name,
)
from isthmus.trust import (
    BUNDLE_CONFIGMAP,
    CLUSTER_CA_SECRET,
    CertifiedKey,
    Issuer,
    LeafRenewer,
    TlsMaterial,
    TrustBundle,
    TrustError,
    bundle_from_configmap,
    cluster_ca_from_secret,
    leaf_secret,
)

log = get_logger("isthmus.mirror.certs")


class MirrorCertificates:
    """The CA, the bundle and the mirror's current leaf, read from the cluster."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        *,
        lifetime: dt.timedelta = dt.timedelta(hours=24),
        refresh_seconds: float = 30.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.lifetime = lifetime
        self.refresh_seconds = refresh_seconds
        self.issuer: Issuer | None = None
        self.bundle: TrustBundle | None = None
        self.leaf: CertifiedKey | None = None
        self.gateway_leaf: CertifiedKey | None = None
        self._ca_fingerprint = ""

    @property
    def cluster(self) -> str:
        return self._issuer().cluster

    @property
    def trust_domain(self) -> str:
        return self._issuer().trust_domain

    def _issuer(self) -> Issuer:
        if self.issuer is None:
            raise CertificateError("the cluster CA has not been loaded")
        return self.issuer

    async def load(self) -> bool:
        """(Re)read the CA and the bundle; True if the CA changed."""
        try:
            secret = await self.api.get(SECRETS, CLUSTER_CA_SECRET, self.namespace)
            configmap = await self.api.get(CONFIGMAPS, BUNDLE_CONFIGMAP, self.namespace)
        except kube_errors.KubeError as exc:
            raise CertificateError(f"cannot read the cluster CA or trust bundle: {exc}") from exc
        try:
            ca = cluster_ca_from_secret(secret)
            self.bundle = bundle_from_configmap(configmap)
        except TrustError as exc:
            raise CertificateError(str(exc)) from exc
        changed = ca.fingerprint != self._ca_fingerprint
        if changed:
            self.issuer = Issuer(ca)
            self._ca_fingerprint = ca.fingerprint
        return changed

    def issue_mirror(self) -> CertifiedKey:
        issuer = self._issuer()
        return issuer.issue(
            self.namespace, MIRROR_SERVICE_ACCOUNT, lifetime=self.lifetime,
            dns_names=[mirror_server_name(issuer.cluster)],
        )

    def issue_gateway(self) -> CertifiedKey:
        return self._issuer().issue(self.namespace, GATEWAY_SERVICE, lifetime=self.lifetime)

    async def _publish(self, leaf: CertifiedKey, name: str) -> None:
        """Patch the leaf into its Secret. ``isthmus install`` creates the (empty) Secret, so
        the mirror needs ``patch`` on these two names only and no ``create`` on Secrets."""
        wanted = leaf_secret(leaf, name, self.namespace)
        patch = {"metadata": {"labels": wanted["metadata"]["labels"],
                              "annotations": wanted["metadata"]["annotations"]},
                 "data": wanted["data"]}
        try:
            await self.api.merge_patch(SECRETS, name, patch, self.namespace,
                                       field_manager=FIELD_MANAGER)
        except kube_errors.NotFoundError as exc:
            raise CertificateError(
                f"Secret {self.namespace}/{name} does not exist: run `isthmus install` "
                "(it creates the empty leaf Secrets; the mirror may only fill them)") from exc
        except kube_errors.KubeError as exc:
            raise CertificateError(f"cannot write Secret {self.namespace}/{name}: {exc}") from exc

    async def publish_mirror(self, leaf: CertifiedKey) -> None:
        self.leaf = leaf
        await self._publish(leaf, MIRROR_TLS_SECRET)

    async def publish_gateway(self, leaf: CertifiedKey) -> None:
        self.gateway_leaf = leaf
        await self._publish(leaf, GATEWAY_TLS_SECRET)

    async def start(self) -> None:
        """Load the CA, issue and publish both leaves once (so serving can begin)."""
        await self.load()
        await self.publish_mirror(self.issue_mirror())
        await self.publish_gateway(self.issue_gateway())

    async def run(self) -> None:
        """Renew both leaves forever; re-issue at once when the CA changes."""
        mirror = LeafRenewer(self.issue_mirror, self.publish_mirror, current=self.leaf)
        gateway = LeafRenewer(self.issue_gateway, self.publish_gateway, current=self.gateway_leaf)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(mirror.run())
            tg.create_task(gateway.run())
            while True:
                await asyncio.sleep(self.refresh_seconds)
                try:
                    if await self.load():
                        log.info("cluster CA changed, re-issuing leaves")
                        mirror.renew_now()
                        gateway.renew_now()
                except CertificateError as exc:
                    log.warning("cannot refresh the cluster CA", error=str(exc))

    # --- gRPC credentials ----------------------------------------------------------------
    def _material(self) -> tuple[bytes, bytes, bytes]:
        if self.leaf is None or self.bundle is None:
            raise CertificateError("no leaf certificate yet")
        return self.leaf.key_pem(), self.leaf.chain_pem(), self.bundle.to_pem()

    def _server_config(self) -> Any:
        key, chain, roots = self._material()
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=roots)

    def server_credentials(self) -> Any:
        """Server credentials that pick up a renewed leaf/bundle at the next handshake."""
        served = {"digest": self._material()}

        def fetch() -> Any:
            current = self._material()
            if current == served["digest"]:
                return None
            served["digest"] = current
            return self._server_config()

        return grpc.dynamic_ssl_server_credentials(
            self._server_config(), fetch, require_client_authentication=True
        )

    def tls_material(self) -> TlsMaterial:
        """The mirror's leaf and bundle for plain TLS (the tunnel to a peer gateway)."""
        key, chain, roots = self._material()
        return TlsMaterial.from_secret_data({"tls.crt": chain, "tls.key": key}, roots)

    def channel_credentials(self) -> Any:
        key, chain, roots = self._material()
        return grpc.ssl_channel_credentials(
            root_certificates=roots, private_key=key, certificate_chain=chain
        )
