"""The catalog server re-authorizes every open Watch against the bundle and the clock of
now, over real gRPC and real mTLS: a caller whose root left the bundle, or whose
certificate expired, is cut off (PERMISSION_DENIED, counted by reason); another caller's
Watch goes on."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from mirror_helpers import Pki

from isthmus.exports import ExportedPort, ExportedService
from isthmus.mirror.catalog_server import WATCH_METHOD, CatalogServer
from isthmus.mirror.export_catalog import ExportCatalog
from isthmus.mirror.metrics import MirrorMetrics
from isthmus.mirror.names import mirror_server_name
from isthmus.mirror.wire import pb
from isthmus.trust import CertifiedKey, Issuer, TrustBundle


def mirror_leaf(pki: Pki, cluster: str, lifetime: dt.timedelta = dt.timedelta(hours=1),
                ) -> CertifiedKey:
    return Issuer(pki.ca(cluster)).issue("isthmus-system", "isthmus-mirror",
                                         dns_names=[mirror_server_name(cluster)],
                                         lifetime=lifetime)


@dataclass
class Server:
    server: CatalogServer
    metrics: MirrorMetrics
    bundle: list[TrustBundle]
    roots_pem: bytes

    def refusals(self, reason: str) -> float:
        return self.metrics.catalog_refusals.labels(reason=reason)._value.get()  # type: ignore[no-any-return]


@pytest.fixture
async def two_roots() -> tuple[Pki, Pki]:
    return Pki(), Pki()


@pytest.fixture
async def server(two_roots: tuple[Pki, Pki]) -> AsyncIterator[Server]:
    kept, removed = two_roots
    both = TrustBundle.of([kept.root.cert, removed.root.cert])
    own = mirror_leaf(kept, "west")
    catalog = ExportCatalog(history=4)
    catalog.set(("shop", "open"), ExportedService(namespace="shop", name="open",
                                                  ports=(ExportedPort(port=80),)))
    metrics = MirrorMetrics()
    holder = [both]
    srv = CatalogServer(
        catalog, cluster="west", bundle=lambda: holder[0],
        credentials=lambda: grpc.ssl_server_credentials(
            [(own.key_pem(), own.chain_pem())], root_certificates=both.to_pem(),
            require_client_auth=True),
        is_linked=lambda c: c in {"east", "central"}, metrics=metrics, heartbeat=0.3,
    )
    await srv.start("127.0.0.1", 0)
    yield Server(srv, metrics, holder, both.to_pem())
    await srv.stop(0)


@dataclass
class Watch:
    messages: list[Any] = field(default_factory=list)
    error: grpc.aio.AioRpcError | None = None


async def run_watch(server: Server, key: CertifiedKey, out: Watch) -> None:
    creds = grpc.ssl_channel_credentials(server.roots_pem, key.key_pem(), key.chain_pem())
    async with grpc.aio.secure_channel(
        f"127.0.0.1:{server.server.port}", creds,
        options=[("grpc.ssl_target_name_override", mirror_server_name("west"))],
    ) as channel:
        call = channel.unary_stream(WATCH_METHOD,
                                    request_serializer=pb.WatchRequest.SerializeToString,
                                    response_deserializer=pb.CatalogEvent.FromString)
        try:
            async for msg in call(pb.WatchRequest(), timeout=60):
                out.messages.append(msg)
        except grpc.aio.AioRpcError as exc:
            out.error = exc


async def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_root_removed_cuts_watches_under_that_root_only(
        server: Server, two_roots: tuple[Pki, Pki]) -> None:
    kept, removed = two_roots
    cut, stays = Watch(), Watch()
    tasks = [asyncio.create_task(run_watch(server, mirror_leaf(removed, "east"), cut)),
             asyncio.create_task(run_watch(server, mirror_leaf(kept, "central"), stays))]
    try:
        await wait_for(lambda: cut.messages and stays.messages)
        server.bundle[0] = TrustBundle.of([kept.root.cert])
        await wait_for(lambda: cut.error is not None)
        assert cut.error is not None
        assert cut.error.code() == grpc.StatusCode.PERMISSION_DENIED
        seen = len(stays.messages)
        await wait_for(lambda: len(stays.messages) > seen)  # heartbeats go on
        assert stays.error is None
        assert sum(server.refusals(r) for r in ("other_root", "chain_invalid")) == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_expired_caller_is_cut(server: Server, two_roots: tuple[Pki, Pki]) -> None:
    kept, _ = two_roots
    short = mirror_leaf(kept, "east", lifetime=dt.timedelta(seconds=3))
    cut, stays = Watch(), Watch()
    tasks = [asyncio.create_task(run_watch(server, short, cut)),
             asyncio.create_task(run_watch(server, mirror_leaf(kept, "central"), stays))]
    try:
        await wait_for(lambda: cut.messages and stays.messages)
        await wait_for(lambda: cut.error is not None)
        assert cut.error is not None
        assert cut.error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "expired" in (cut.error.details() or "")
        assert dt.datetime.now(dt.UTC) > short.cert.not_valid_after_utc
        assert server.refusals("expired") == 1
        seen = len(stays.messages)
        await wait_for(lambda: len(stays.messages) > seen)
        assert stays.error is None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
