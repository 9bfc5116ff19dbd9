"""The catalog over real gRPC and real mTLS on loopback: who is served, what they see,
resume, and refusals (each named and counted)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from mirror_helpers import Pki

from isthmus.exports import ExportedPort, ExportedService
from isthmus.mirror.catalog_client import DirectDialer, Snapshot, follow
from isthmus.mirror.catalog_server import WATCH_METHOD, CatalogServer
from isthmus.mirror.export_catalog import ExportCatalog
from isthmus.mirror.metrics import MirrorMetrics
from isthmus.mirror.model import LinkInfo
from isthmus.mirror.names import mirror_server_name
from isthmus.mirror.wire import pb
from isthmus.trust import CertifiedKey, Issuer, TrustBundle


def leaf(pki: Pki, cluster: str, sa: str = "isthmus-mirror") -> CertifiedKey:
    return Issuer(pki.ca(cluster)).issue("isthmus-system", sa,
                                         dns_names=[mirror_server_name(cluster)])


def channel_creds(key: CertifiedKey, bundle: TrustBundle) -> Any:
    return grpc.ssl_channel_credentials(bundle.to_pem(), key.key_pem(), key.chain_pem())


def export(name: str, allowed: frozenset[str] | None = None) -> ExportedService:
    return ExportedService(namespace="shop", name=name, ports=(ExportedPort(port=80),),
                           allowed_clusters=allowed)


class Served:
    def __init__(self, server: CatalogServer, catalog: ExportCatalog, metrics: MirrorMetrics,
                 linked: set[str]) -> None:
        self.server, self.catalog, self.metrics, self.linked = server, catalog, metrics, linked

    def refusals(self, reason: str) -> float:
        return self.metrics.catalog_refusals.labels(reason=reason)._value.get()  # type: ignore[no-any-return]


@pytest.fixture
async def served(pki: Pki) -> AsyncIterator[Served]:
    own = leaf(pki, "west")
    catalog = ExportCatalog(history=4)
    catalog.set(("shop", "open"), export("open"))
    catalog.set(("shop", "east-only"), export("east-only", frozenset({"east"})))
    catalog.set(("shop", "central-only"), export("central-only", frozenset({"central"})))
    metrics = MirrorMetrics()
    linked = {"east"}
    server = CatalogServer(
        catalog, cluster="west", bundle=lambda: pki.bundle,
        credentials=lambda: grpc.ssl_server_credentials(
            [(own.key_pem(), own.chain_pem())], root_certificates=pki.bundle.to_pem(),
            require_client_auth=True),
        is_linked=lambda c: c in linked, metrics=metrics, heartbeat=0.3,
    )
    await server.start("127.0.0.1", 0)
    yield Served(server, catalog, metrics, linked)
    await server.stop(0)


async def watch(served: Served, key: CertifiedKey, *, pin: str = "west", epoch: str = "",
                version: int = 0, count: int = 1, bundle: TrustBundle | None = None) -> list[Any]:
    creds = channel_creds(key, bundle or PKI_BUNDLE[0])
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{served.server.port}", creds,
        options=[("grpc.ssl_target_name_override", mirror_server_name(pin))],
    ) as channel:
        call = channel.unary_stream(WATCH_METHOD,
                                    request_serializer=pb.WatchRequest.SerializeToString,
                                    response_deserializer=pb.CatalogEvent.FromString)
        out = []
        async for msg in call(pb.WatchRequest(epoch=epoch, version=version), timeout=5):
            out.append(msg)
            if len(out) >= count:
                break
        return out


PKI_BUNDLE: list[TrustBundle] = []


@pytest.fixture(autouse=True)
def _bundle(pki: Pki) -> None:
    PKI_BUNDLE[:] = [pki.bundle]


async def test_linked_mirror_gets_its_view_then_deltas(served: Served, pki: Pki) -> None:
    task = asyncio.create_task(watch(served, leaf(pki, "east"), count=2))
    await asyncio.sleep(0.3)
    served.catalog.set(("shop", "new"), export("new"))
    snap, delta = await task
    assert snap.kind == pb.CatalogEvent.SNAPSHOT and snap.cluster == "west"
    assert sorted(s.name for s in snap.services) == ["east-only", "open"]
    assert delta.kind == pb.CatalogEvent.DELTA and [s.name for s in delta.services] == ["new"]
    assert delta.version == snap.version + 1


async def test_resume_from_version_or_fresh_snapshot(served: Served, pki: Pki) -> None:
    (snap,) = await watch(served, leaf(pki, "east"))
    served.catalog.set(("shop", "open"), None)
    (resumed,) = await watch(served, leaf(pki, "east"), epoch=snap.epoch, version=snap.version)
    assert resumed.kind == pb.CatalogEvent.DELTA
    assert [(k.namespace, k.name) for k in resumed.removed] == [("shop", "open")]
    for i in range(5):  # more changes than the log keeps
        served.catalog.set(("shop", f"x{i}"), export(f"x{i}"))
    (again,) = await watch(served, leaf(pki, "east"), epoch=snap.epoch, version=snap.version)
    assert again.kind == pb.CatalogEvent.SNAPSHOT
    (other_epoch,) = await watch(served, leaf(pki, "east"), epoch="x", version=snap.version)
    assert other_epoch.kind == pb.CatalogEvent.SNAPSHOT


@pytest.mark.parametrize(
    ("cluster", "sa", "reason"),
    [
        pytest.param("central", "isthmus-mirror", "not_linked", id="not-linked"),
        pytest.param("east", "isthmus-gateway", "not_a_mirror", id="gateway-identity"),
        pytest.param("east", "someone", "not_a_mirror", id="workload-identity"),
    ],
)
async def test_refused_callers(served: Served, pki: Pki, cluster: str, sa: str,
                               reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch(served, leaf(pki, cluster, sa))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason in (caught.value.details() or "")
    assert served.refusals(reason) == 1


async def test_linking_later_admits_the_same_certificate(served: Served, pki: Pki) -> None:
    key = leaf(pki, "central")
    with pytest.raises(grpc.aio.AioRpcError):
        await watch(served, key)
    served.linked.add("central")
    (snap,) = await watch(served, key)
    assert sorted(s.name for s in snap.services) == ["central-only", "open"]


async def test_other_root_and_wrong_server_pin_fail_the_handshake(
    served: Served, pki: Pki
) -> None:
    stranger = Pki()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch(served, leaf(stranger, "east"), bundle=stranger.bundle)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    # a real linked client that expects *central*'s mirror refuses west's server
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watch(served, leaf(pki, "east"), pin="central")
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_follow_reports_snapshot_through_a_pluggable_dialer(
    served: Served, pki: Pki
) -> None:
    key = leaf(pki, "east")
    dialed: list[str] = []

    def address(link: LinkInfo) -> str:  # e.g. a gateway tunnel's local end
        dialed.append(link.cluster)
        return f"127.0.0.1:{served.server.port}"

    dialer = DirectDialer(lambda: channel_creds(key, pki.bundle), address)
    link = LinkInfo("west", "uid", "west", "example.org", "unused.invalid", 1)
    updates: list[Any] = []
    task = asyncio.create_task(follow(link, dialer, updates.append, idle_timeout=2))
    for _ in range(50):
        if updates:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert dialed == ["west"]
    assert isinstance(updates[0], Snapshot)
    assert set(updates[0].entries) == {("shop", "open"), ("shop", "east-only")}
