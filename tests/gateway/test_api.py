"""Against a real API server: links and exports reload from the API, and the gateway's
ServiceAccount can do exactly what it needs (manifests/gateway/rbac.yaml)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml
from gw_helpers import TD, Pki, echo_backend, endpoint_slice, link, running, service
from structlog.testing import capture_logs

from isthmus.api.crds import install_crds
from isthmus.devcluster import ControlPlane
from isthmus.gateway import Status, TunnelRefused
from isthmus.gateway.feed import ApiFeed, load_tls_secret
from isthmus.gateway.pool import PeerPool
from isthmus.gateway.snapshot import Snapshot
from isthmus.gateway.state import GatewayState
from isthmus.kube import errors as kube_errors
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import ENDPOINTSLICES, LINKS, SECRETS, SERVICEEXPORTS, SERVICES
from isthmus.trust import Issuer, ReloadableTls, TlsMaterial, create_cluster_ca, leaf_secret

pytestmark = pytest.mark.controlplane
RBAC = Path(__file__).parents[2] / "manifests" / "gateway" / "rbac.yaml"


def admin_post(cp: ControlPlane, path: str, obj: dict[str, object]) -> None:
    status, body = cp.admin_request("POST", path, obj)
    assert status in (201, 409), (path, status, body)


def ensure_namespace(cp: ControlPlane, name: str) -> None:
    admin_post(cp, "/api/v1/namespaces", {"metadata": {"name": name}})


def apply_rbac(cp: ControlPlane) -> None:
    ensure_namespace(cp, "isthmus-system")
    paths = {
        "ServiceAccount": "/api/v1/namespaces/isthmus-system/serviceaccounts",
        "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/isthmus-system/roles",
        "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/isthmus-system/rolebindings",
    }
    for doc in yaml.safe_load_all(RBAC.read_text()):
        admin_post(cp, paths[doc["kind"]], doc)


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


class LoopbackState(GatewayState):
    """API servers refuse loopback endpoint addresses; this seam maps the test's
    placeholder address to loopback after the feed built the snapshot."""

    PLACEHOLDER = "10.250.254.1"

    def swap(self, snapshot: Snapshot) -> None:
        exports = {
            k: e.model_copy(update={"backends": tuple(
                b.model_copy(update={"address": "127.0.0.1"})
                if b.address == self.PLACEHOLDER else b for b in e.backends)})
            for k, e in snapshot.exports.items()
        }
        super().swap(dataclasses.replace(snapshot, exports=MappingProxyType(exports)))


async def open_status(port: int, tls: ReloadableTls, target: str) -> int:
    pool = PeerPool("127.0.0.1", port, tls)
    try:
        tunnel = await pool.open_stream(target)
        tunnel.abort("test")
        return 0
    except TunnelRefused as exc:
        return exc.status
    finally:
        pool.close()


async def test_feed_runs_as_gateway_service_account(cluster: ControlPlane, api: KubeApi,
                                                    pki: Pki, unique: str,
                                                    tmp_path: Path) -> None:
    await install_crds(api)
    apply_rbac(cluster)
    ensure_namespace(cluster, unique)
    secret = leaf_secret(pki.leaf("east"), "isthmus-gateway-tls", "isthmus-system")
    secret["data"]["ca.crt"] = base64.b64encode(pki.bundle.to_pem()).decode()
    # this control plane is also the mirror tests' west: its own Secret goes back afterwards
    with _secret_replaced(cluster, secret):
        await _feed_as_gateway_service_account(cluster, api, unique, tmp_path)


@contextlib.contextmanager
def _secret_replaced(cp: ControlPlane, secret: dict[str, Any]) -> Iterator[None]:
    """Swap in ``secret`` (in isthmus-system), and put back whatever was there before."""
    path = f"/api/v1/namespaces/isthmus-system/secrets/{secret['metadata']['name']}"
    status, body = cp.admin_request("GET", path)
    saved = json.loads(body) if status == 200 else None
    cp.admin_request("DELETE", path)
    admin_post(cp, "/api/v1/namespaces/isthmus-system/secrets", secret)
    try:
        yield
    finally:
        cp.admin_request("DELETE", path)
        if saved is not None:
            meta = saved["metadata"]
            saved["metadata"] = {k: meta[k] for k in ("name", "namespace", "labels",
                                                      "annotations") if k in meta}
            admin_post(cp, "/api/v1/namespaces/isthmus-system/secrets", saved)


async def _feed_as_gateway_service_account(cluster: ControlPlane, api: KubeApi, unique: str,
                                           tmp_path: Path) -> None:
    admin_post(cluster, "/api/v1/namespaces/isthmus-system/secrets",
               {"metadata": {"name": f"other-{unique}"}, "stringData": {"k": "v"}})
    kubeconfig = cluster.service_account_kubeconfig(
        "isthmus-system", "isthmus-gateway", tmp_path / "gw.kubeconfig")
    sa = await KubeApi.connect(kubeconfig)
    try:
        # its own TLS Secret: yes
        material = await load_tls_secret(sa, "isthmus-gateway-tls", "isthmus-system", None)
        assert material.leaf() is not None
        # any other Secret, or listing Secrets: no
        with pytest.raises(kube_errors.KubeError):
            await sa.get(SECRETS, f"other-{unique}", "isthmus-system")
        with pytest.raises(kube_errors.KubeError):
            await sa.list(SECRETS, "isthmus-system")
        # and no writes anywhere
        with pytest.raises(kube_errors.KubeError):
            await sa.create(SERVICES, service(unique, "x", 80), unique)
        with pytest.raises(kube_errors.KubeError):
            await sa.create(LINKS, link("nope"))
        # the feed lists and watches everything it needs, and gets nothing singly
        await api.create(SERVICES, service(unique, "echo", 80), unique)
        with pytest.raises(kube_errors.ForbiddenError):
            await sa.get(SERVICES, "echo", unique)
        state = GatewayState()
        feed = ApiFeed(sa, state, catalog_address=None)
        task = asyncio.ensure_future(feed.run())
        try:
            await wait_for(lambda: state.synced and (unique, "echo") in state.snapshot.exports)
            # a ServiceExport exports its Service as the label does; the gateway may read
            # ServiceExports but never write one
            await api.create(SERVICES, service(unique, "viasx", 80, export=False), unique)
            assert (unique, "viasx") not in state.snapshot.exports
            sx = {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
                  "metadata": {"name": "viasx", "namespace": unique}}
            with pytest.raises(kube_errors.ForbiddenError):
                await sa.create(SERVICEEXPORTS, sx, unique)
            await api.create(SERVICEEXPORTS, sx, unique)
            await wait_for(lambda: (unique, "viasx") in state.snapshot.exports)
            await api.delete(SERVICEEXPORTS, "viasx", unique)
            await wait_for(lambda: (unique, "viasx") not in state.snapshot.exports)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await sa.close()


async def test_unlinked_then_linked_and_unexport(cluster: ControlPlane, api: KubeApi,
                                                 pki: Pki, unique: str) -> None:
    """A valid chain from an unlinked cluster is refused, then accepted once a Link is
    created; an unexported service is refused for new streams within one sync."""
    await install_crds(api)
    ensure_namespace(cluster, unique)
    backend = await echo_backend()
    # a cluster named after the test, so Links of other tests cannot interfere
    caller_ca = create_cluster_ca(pki.root, unique)
    caller = ReloadableTls(TlsMaterial.from_certified(
        Issuer(caller_ca).issue("isthmus-system", "isthmus-gateway"), pki.bundle))
    await api.create(SERVICES, service(unique, "echo", 80), unique)
    await api.create(ENDPOINTSLICES, endpoint_slice(
        unique, "echo", [(LoopbackState.PLACEHOLDER, backend.port)]),
                     unique)
    target = f"echo.{unique}:80"
    async with running(pki.tls("east"), state=LoopbackState()) as east:
        feed = ApiFeed(api, east.state, catalog_address=None)
        east.spawn(feed.run())
        await wait_for(lambda: (unique, "echo") in east.state.snapshot.exports)
        assert await open_status(east.inbound_port, caller, target) == Status.UNLINKED
        assert backend.accepts == 0
        await api.create(LINKS, link(unique, td=TD))
        try:
            loop = asyncio.get_running_loop()
            start = loop.time()
            while await open_status(east.inbound_port, caller, target) != 0:
                assert loop.time() - start < 10
                await asyncio.sleep(0.1)
            assert backend.accepts >= 1
            # unexport: remove the label
            svc = await api.get(SERVICES, "echo", unique)
            svc["metadata"]["labels"] = {}
            await api.replace(SERVICES, svc, unique)
            start = loop.time()
            while await open_status(east.inbound_port, caller, target) != Status.UNKNOWN_TARGET:
                assert loop.time() - start < 5, "still routed after a sync interval"
                await asyncio.sleep(0.1)
            config = east.state.snapshot.to_json()
            assert json.dumps(config)
        finally:
            await api.delete(LINKS, unique)
    backend.close()


def _slice(ns: str, name: str, owner: str, address_type: str, addresses: list[str],
           port: int) -> dict[str, object]:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": ns, "name": name,
                     "labels": {"kubernetes.io/service-name": owner}},
        "addressType": address_type,
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        "ports": [{"name": "p", "port": port, "protocol": "TCP"}],
    }


async def test_fqdn_slices_skipped_and_api_server_endpoints_never_dialled(
        cluster: ControlPlane, api: KubeApi, pki: Pki, unique: str, tmp_path: Path) -> None:
    """Slices from a real API server, read with the gateway's own RBAC: an FQDN slice gives
    no backend (never resolved; warned and counted); an exported Service whose slice names
    the API server's endpoint (the ``kubernetes`` Service's slice in ``default``) is
    answered like an unknown target, and nothing is dialled."""
    await install_crds(api)
    apply_rbac(cluster)
    ensure_namespace(cluster, unique)
    backend = await echo_backend()
    api_ip = "10.250.254.2"  # placeholder address of "the API server" for this test
    for name in ("echo", "named", "apisrv"):
        await api.create(SERVICES, service(unique, name, 80), unique)
    await api.create(ENDPOINTSLICES, endpoint_slice(
        unique, "echo", [(LoopbackState.PLACEHOLDER, backend.port)]), unique)
    await api.create(ENDPOINTSLICES, _slice(unique, "named-x", "named", "FQDN",
                                            ["backend.example.com"], backend.port), unique)
    await api.create(ENDPOINTSLICES, _slice(unique, "apisrv-x", "apisrv", "IPv4",
                                            [api_ip], 6443), unique)
    kube_slice = f"kubernetes-{unique}"
    await api.create(ENDPOINTSLICES, _slice("default", kube_slice, "kubernetes", "IPv4",
                                            [api_ip], 6443), "default")
    await api.create(LINKS, link(unique, td=TD))
    caller_ca = create_cluster_ca(pki.root, unique)
    caller = ReloadableTls(TlsMaterial.from_certified(
        Issuer(caller_ca).issue("isthmus-system", "isthmus-gateway"), pki.bundle))
    kubeconfig = cluster.service_account_kubeconfig(
        "isthmus-system", "isthmus-gateway", tmp_path / "gw.kubeconfig")
    sa = await KubeApi.connect(kubeconfig)
    try:
        async with running(pki.tls("east"), state=LoopbackState()) as east:
            east.spawn(ApiFeed(sa, east.state, catalog_address=None).run())
            await wait_for(lambda: (ip_address(api_ip), 6443) in east.state.snapshot.api_server
                           and (unique, "apisrv") in east.state.snapshot.exports
                           and unique in east.state.snapshot.links)
            snap = east.state.snapshot
            assert snap.exports[(unique, "named")].backends == ()
            assert any(f"{unique}/named-x" in s for s in snap.skipped)
            gauge = [s.value for m in east.metrics.skipped_slices.collect() for s in m.samples]
            assert gauge and gauge[0] >= 1
            assert await open_status(east.inbound_port, caller, f"echo.{unique}:80") == 0
            dialled = east.inbound.dial_attempts
            with capture_logs() as logs:
                assert await open_status(east.inbound_port, caller, f"named.{unique}:80") == \
                    Status.NO_BACKEND
                assert await open_status(east.inbound_port, caller, f"apisrv.{unique}:80") == \
                    Status.UNKNOWN_TARGET
            assert east.inbound.dial_attempts == dialled
            assert [e["reason"] for e in logs if e["event"] == "backend address refused"] == [
                "api_server"]
    finally:
        await sa.close()
        await api.delete(ENDPOINTSLICES, kube_slice, "default")
        await api.delete(LINKS, unique)
        backend.close()
