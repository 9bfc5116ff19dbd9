"""The catalog through the gateway (``catalog_via=gateway``, the production path) on the
shared mesh: a real isthmus gateway for west, wired as ``isthmus gateway`` wires it (routes
from west's real API server through ``ApiFeed``, running as the isthmus-gateway
ServiceAccount with its own RBAC; TLS from the ``isthmus-gateway-tls`` Secret that west's
mirror issued; ``catalog`` routed to west's mirror), and central's mirror reading west's
catalog through it: gRPC mTLS between the two mirrors inside the gateway's TLS 1.3 tunnel.

Central is not linked in west at first, so the gateway refuses the tunnel before dialling
anything; once west links central, the export reaches central. Everything is put back as
the mesh had it (west and central unlinked, central's mirror on the direct path)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mirror_helpers import (
    RBAC_RESOURCES,
    ROOT,
    Mesh,
    apply,
    condition,
    ensure_namespace,
    eventually,
    export_service,
)

from isthmus.gateway.feed import ApiFeed, load_tls_secret
from isthmus.gateway.server import Gateway
from isthmus.gateway.settings import GatewaySettings
from isthmus.kube.client import KubeApi
from isthmus.trust import ReloadableTls

SYSTEM = "isthmus-system"


@pytest.fixture
async def west_gateway(mesh: Mesh, workdir: Path) -> AsyncIterator[Gateway]:
    west = mesh["west"]
    for doc in yaml.safe_load_all((ROOT / "manifests/gateway/rbac.yaml").read_text()):
        await apply(west.admin, RBAC_RESOURCES[doc["kind"]], doc)
    kubeconfig = workdir / "west-gateway.kubeconfig"
    await asyncio.to_thread(west.cp.service_account_kubeconfig, SYSTEM, "isthmus-gateway",
                            kubeconfig)
    api = await KubeApi.connect(kubeconfig, None)
    gateway: Gateway | None = None
    try:
        material = await load_tls_secret(api, "isthmus-gateway-tls", SYSTEM, None)
        settings = GatewaySettings(
            cluster="west", inbound_address="127.0.0.1:0", outbound_host="127.0.0.1",
            admin_address="", handshake_timeout=2.0, connect_timeout=1.0,
            catalog_address=f"127.0.0.1:{west.catalog_port}")
        gateway = Gateway(settings, ReloadableTls(material))
        await gateway.start()
        gateway.spawn(ApiFeed(api, gateway.state,
                              catalog_address=("127.0.0.1", west.catalog_port)).run())
        yield gateway
    finally:
        if gateway is not None:
            await gateway.close()
        await api.close()


def _refusals(gateway: Gateway, reason: str) -> float:
    counter = gateway.metrics.refusals.labels(peer_cluster="central", service="-",
                                              reason=reason)
    return counter._value.get()  # type: ignore[no-any-return]


async def test_catalog_through_the_gateway(mesh: Mesh, unique: str,
                                           west_gateway: Gateway) -> None:
    for m in ("west", "central"):
        await ensure_namespace(mesh[m].admin, unique)
    west = mesh["west"].admin
    await export_service(west, unique, "via-gw", ready=2)
    await mesh.stop("central")
    forwarders: list[int] = []
    try:
        # central links west at west's gateway (not at its catalog server), and follows it
        # the production way; west has not linked central.
        await mesh.link("central", "west", port=west_gateway.inbound_port)
        await mesh.start("central", catalog_via="gateway")

        async def refused() -> bool:
            assert _refusals(west_gateway, "cluster_not_linked") >= 1
            status = await mesh.link_status("central", "west")
            assert condition(status, "Ready").get("status") == "False", status
            return True

        await eventually(refused, what="the gateway refuses an unlinked cluster")
        assert await mesh.gs("central", unique, "via-gw") is None

        # west links central: the same tunnel is now admitted and the catalog flows
        await mesh.link("west", "central")

        async def imported() -> dict[str, Any]:
            gs = await mesh.gs("central", unique, "via-gw")
            assert gs is not None, "not imported yet"
            return gs

        gs = await eventually(imported, timeout=30, what="export reaches central via gateway")
        (endpoint,) = gs["spec"]["endpoints"]
        assert (endpoint["cluster"], endpoint["port"]) == ("west", west_gateway.inbound_port)
        assert endpoint["readyEndpoints"] == 2 and endpoint["health"] == "Healthy"
        # the catalog stream is open through west's gateway, not around it
        active = west_gateway.metrics.active.labels(direction="inbound")._value.get()
        assert active >= 1, active

        async def synced() -> bool:
            status = await mesh.link_status("central", "west")
            assert condition(status, "Synced").get("status") == "True", status
            return True

        await eventually(synced, what="central's Link to west synced")
        forwarders = list(mesh["central"].c.dialer().ports.values())
        assert forwarders, "central reads west's catalog through a local forwarder"
        # a change travels the same way
        await export_service(west, unique, "via-gw", ready=3)

        async def updated() -> bool:
            gs = await mesh.gs("central", unique, "via-gw")
            assert gs is not None and gs["spec"]["endpoints"][0]["readyEndpoints"] == 3
            return True

        await eventually(updated, what="delta via gateway")
    finally:
        await mesh.unlink("west", "central")
        await mesh.unlink("central", "west")
        await mesh.stop("central")
        await mesh.start("central")

    # the stopped controller closed its dialer: no forwarder is left listening
    for port in forwarders:
        with pytest.raises(ConnectionRefusedError):
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()

    async def gone() -> bool:
        return await mesh.gs("central", unique, "via-gw") is None

    await eventually(gone, what="central's imports of west removed after the unlink")
