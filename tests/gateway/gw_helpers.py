"""Helpers for the gateway tests: a PKI with three clusters, API objects, backends, and
gateways running in-process on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from isthmus.gateway.server import Gateway
from isthmus.gateway.settings import GatewaySettings
from isthmus.gateway.snapshot import Snapshot, build_snapshot
from isthmus.gateway.state import GatewayState
from isthmus.trust import (
    CertifiedKey,
    Issuer,
    ReloadableTls,
    TlsMaterial,
    TrustBundle,
    create_cluster_ca,
    create_root,
)
from isthmus.wellknown import API_VERSION

TD = "example.org"
SYSTEM = "isthmus-system"
GW_SA = "isthmus-gateway"
MIRROR_SA = "isthmus-mirror"


class Pki:
    def __init__(self, td: str = TD, clusters: tuple[str, ...] = ("west", "east", "central")):
        self.td = td
        self.root = create_root(td)
        self.cas = {c: create_cluster_ca(self.root, c) for c in clusters}

    def leaf(self, cluster: str, ns: str = SYSTEM, sa: str = GW_SA) -> CertifiedKey:
        return Issuer(self.cas[cluster]).issue(ns, sa)

    def material(self, cluster: str, ns: str = SYSTEM, sa: str = GW_SA) -> TlsMaterial:
        return TlsMaterial.from_certified(self.leaf(cluster, ns, sa), self.bundle)

    @property
    def bundle(self) -> TrustBundle:
        return TrustBundle.of([self.root.cert])

    def tls(self, cluster: str, ns: str = SYSTEM, sa: str = GW_SA) -> ReloadableTls:
        return ReloadableTls(self.material(cluster, ns, sa))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- API objects -------------------------------------------------------------------------------
def service(ns: str, name: str, port: int, *, export: bool = True,
            export_to: str | None = None, mirror: bool = False) -> dict[str, Any]:
    labels = {}
    if export:
        labels["isthmus.io/export"] = "true"
    if mirror:
        labels["isthmus.io/mirror"] = "true"
    annotations = {} if export_to is None else {"isthmus.io/export-to": export_to}
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": ns, "name": name, "labels": labels,
                     "annotations": annotations},
        "spec": {"ports": [{"name": "p", "port": port, "protocol": "TCP"}]},
    }


def endpoint_slice(ns: str, name: str, backends: list[tuple[str, int]],
                   ready: bool = True) -> dict[str, Any]:
    port = backends[0][1] if backends else 1
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": ns, "name": f"{name}-abc",
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a, _ in backends],
        "ports": [{"name": "p", "port": port, "protocol": "TCP"}],
    }


def link(cluster: str, host: str = "127.0.0.1", port: int = 15443, td: str = TD) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "Link",
        "metadata": {"name": cluster},
        "spec": {"cluster": cluster, "trustDomain": td,
                 "gatewayAddresses": [{"host": host, "port": port}]},
    }


def global_service(ns: str, name: str, port: int, outbound_port: int,
                   endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "GlobalService",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"hosts": [f"{name}.{ns}.global"],
                 "ports": [{"name": "p", "port": port, "outboundPort": outbound_port}],
                 "endpoints": endpoints},
    }


def gs_endpoint(cluster: str, port: int, *, host: str = "127.0.0.1", weight: int = 100,
                region: str = "", zone: str = "",
                pinned: list[tuple[int, int]] | None = None) -> dict[str, Any]:
    return {"cluster": cluster, "address": host, "port": port, "weight": weight,
            "locality": {"region": region, "zone": zone}, "health": "Healthy",
            "pinnedPorts": [{"port": p, "outboundPort": o} for p, o in (pinned or [])]}


def snapshot(*, services: list[Any] = (), slices: list[Any] = (),  # type: ignore[assignment]
             links: list[Any] = (), gss: list[Any] = (),  # type: ignore[assignment]
             catalog: tuple[str, int] | None = None, version: int = 1) -> Snapshot:
    return build_snapshot(services=services, slices=slices, links=links, global_services=gss,
                          catalog_address=catalog, version=version)


def settings(**over: Any) -> GatewaySettings:
    base: dict[str, Any] = dict(
        inbound_address="127.0.0.1:0", outbound_host="127.0.0.1", admin_address="127.0.0.1:0",
        handshake_timeout=2.0, idle_timeout=30.0, connect_timeout=1.0, probe_interval=0.3,
        eject_after=2, pool_min_idle=1, access_log=True,
        # backends here are echo servers on loopback; test_backend_policy.py runs the
        # gateway without this and shows loopback refused
        backend_allow_loopback=True,
    )
    base.update(over)
    return GatewaySettings(**base)


@contextlib.asynccontextmanager
async def running(tls: ReloadableTls, snap: Snapshot | None = None,
                  state: GatewayState | None = None, **over: Any) -> AsyncIterator[Gateway]:
    if state is None:
        state = GatewayState(snap) if snap is not None else GatewayState()
    gw = Gateway(settings(**over), tls, state)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.close()


# --- backends ------------------------------------------------------------------------------------
@dataclass
class Backend:
    """An echo (or custom) TCP server that counts what it accepts."""

    server: asyncio.Server | None = None
    accepts: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in self.writers:
            w.close()


async def echo_backend(*, greet: bytes = b"") -> Backend:
    b = Backend()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        b.accepts += 1
        b.writers.append(w)
        try:
            if greet:
                w.write(greet)
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
            w.write_eof()  # echo the half-close
            await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    b.server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return b


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Pair:
    """west (outbound) → east (inbound) → backend, for service echo.shop port 80."""

    pki: Pki
    west: Gateway
    east: Gateway
    backend: Backend
    outbound_port: int

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.outbound_port)


def east_snapshot(backend_port: int, *, links: tuple[str, ...] = ("west",),
                  name: str = "echo", version: int = 1, **svc: Any) -> Snapshot:
    return snapshot(
        services=[service("shop", name, 80, **svc)],
        slices=[endpoint_slice("shop", name, [("127.0.0.1", backend_port)])],
        links=[link(c) for c in links],
        version=version,
    )


def west_snapshot(outbound_port: int, east_ports: list[tuple[str, int]],
                  name: str = "echo", version: int = 1) -> Snapshot:
    return snapshot(
        links=[link(c, port=p) for c, p in east_ports],
        gss=[global_service("shop", name, 80, outbound_port,
                            [gs_endpoint(c, p) for c, p in east_ports])],
        version=version,
    )


@contextlib.asynccontextmanager
async def pair(pki: Pki, **over: Any) -> AsyncIterator[Pair]:
    backend = await echo_backend()
    try:
        async with running(pki.tls("east"), east_snapshot(backend.port), **over) as east:
            port = free_port()
            snap = west_snapshot(port, [("east", east.inbound_port)])
            async with running(pki.tls("west"), snap, **over) as west:
                yield Pair(pki, west, east, backend, port)
    finally:
        backend.close()


# --- gateways as processes (CLI), for the network-namespace and load tests -----------------------
def write_tls(pki: Pki, cluster: str, directory: Any) -> list[str]:
    from pathlib import Path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    leaf = pki.leaf(cluster)
    (d / "tls.crt").write_bytes(leaf.chain_pem())
    (d / "tls.key").write_bytes(leaf.key_pem())
    (d / "tls.key").chmod(0o600)
    (d / "roots.pem").write_bytes(pki.bundle.to_pem())
    return ["--tls-cert", str(d / "tls.crt"), "--tls-key", str(d / "tls.key"),
            "--trust-bundle", str(d / "roots.pem")]


def write_routes(path: Any, *, services: list[Any] = (),  # type: ignore[assignment]
                 slices: list[Any] = (), links: list[Any] = (),  # type: ignore[assignment]
                 gss: list[Any] = ()) -> str:  # type: ignore[assignment]
    from pathlib import Path

    import yaml

    Path(path).write_text(yaml.safe_dump({
        "services": list(services), "endpointSlices": list(slices),
        "links": list(links), "globalServices": list(gss)}))
    return str(path)


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Stalled:
    """A peer that accepts TCP and never answers the TLS handshake; counts open sockets."""

    def __init__(self) -> None:
        self.accepted = 0
        self.open = 0
        self.server: asyncio.Server | None = None

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        try:
            while await r.read(65536):
                pass
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            w.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])
