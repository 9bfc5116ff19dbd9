"""A forged catalog, served under a valid mirror certificate (the peer's operator is the
adversary and holds its cluster's mirror key): east's real mirror, on a real API server,
imports only the entries that pass the boundary and the import policy, and says why not
for the rest."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mirror_helpers import Mesh, Pki, condition, ensure_namespace, eventually

from isthmus.devcluster.controlplane import free_port
from isthmus.kube.backoff import Backoff
from isthmus.kube.resources import EVENTS, GLOBALSERVICES, SERVICES
from isthmus.mirror.catalog_client import Delta, DirectDialer, Down, Snapshot, follow
from isthmus.mirror.catalog_server import SERVICE_NAME
from isthmus.mirror.model import CatalogEntry, LinkInfo
from isthmus.mirror.names import mirror_server_name
from isthmus.mirror.wire import pb
from isthmus.trust import Issuer

FORGER = "forger"


def service(ns: str, name: str, ports: Sequence[tuple[str, int]] = (("http", 80),),
            **fields: Any) -> Any:
    msg = pb.Service(namespace=ns, name=name, ready_endpoints=fields.pop("ready", 1), **fields)
    for pname, port in ports:
        msg.ports.append(pb.Port(name=pname, port=port))
    return msg


class ForgedCatalog:
    """A catalog server that sends what the test scripts, then heartbeats."""

    def __init__(self, pki: Pki, cluster: str, *, heartbeat: bool = True) -> None:
        leaf = Issuer(pki.ca(cluster)).issue("isthmus-system", "isthmus-mirror",
                                             dns_names=[mirror_server_name(cluster)])
        self.credentials = grpc.ssl_server_credentials(
            [(leaf.key_pem(), leaf.chain_pem())], root_certificates=pki.bundle.to_pem(),
            require_client_auth=True)
        self.cluster = cluster
        self.heartbeat = heartbeat  # False: the stream ends after the script
        self.script: list[Any] = []
        self.port = free_port()
        self._server: Any = None

    async def _watch(self, _request: Any, _context: Any) -> AsyncIterator[Any]:
        for msg in self.script:
            yield msg
        while self.heartbeat:
            await asyncio.sleep(0.5)
            yield pb.CatalogEvent(kind=pb.CatalogEvent.HEARTBEAT, cluster=self.cluster,
                                  version=100)

    async def start(self) -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            SERVICE_NAME, {"Watch": grpc.unary_stream_rpc_method_handler(
                self._watch, request_deserializer=pb.WatchRequest.FromString,
                response_serializer=pb.CatalogEvent.SerializeToString)}),))
        server.add_secure_port(f"127.0.0.1:{self.port}", self.credentials)
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)


@pytest.fixture
async def forged(pki: Pki) -> AsyncIterator[ForgedCatalog]:
    server = ForgedCatalog(pki, FORGER)
    await server.start()
    yield server
    await server.stop()


async def test_forged_catalog_only_lands_where_it_may(mesh: Mesh, unique: str,
                                                      forged: ForgedCatalog) -> None:
    east = mesh["east"].admin
    await ensure_namespace(east, unique)
    snapshot = pb.CatalogEvent(kind=pb.CatalogEvent.SNAPSHOT, epoch="e", version=1,
                               cluster=FORGER)
    snapshot.services.extend([
        service(unique, "ok"),
        service("kube-system", f"evil-{unique}"),
        service(unique, "wide", [("", p) for p in range(1, 2001)]),
        service(unique, "Bad_Name"),
        service(unique, "heavy", weight=99_999),
        service(unique, "dup", [("a", 80), ("b", 80)]),
        service(unique, "proto", [("http", 80)]),
    ])
    snapshot.services[-1].ports[0].app_protocol = "not a protocol"
    delta = pb.CatalogEvent(kind=pb.CatalogEvent.DELTA, epoch="e", version=2, cluster=FORGER)
    delta.services.extend([service(unique, "later"), service(unique, "x" * 64)])
    delta.removed.extend([pb.ServiceKey(namespace=unique, name="../../etc")])
    forged.script = [snapshot, delta]
    await mesh.link("east", FORGER, port=forged.port)
    try:
        async def imported() -> bool:
            for name in ("ok", "later"):
                gs = await mesh.gs("east", unique, name)
                assert gs is not None and (gs.get("status") or {}).get("vips"), name
            return True

        await eventually(imported, what="the valid entries imported")

        async def reported() -> dict[str, Any]:
            status = await mesh.link_status("east", FORGER)
            invalid = condition(status, "InvalidEntries")
            assert invalid["status"] == "True", invalid
            refused = condition(status, "NamespacesRefused")
            assert refused["reason"] == "ProtectedNamespace", refused
            assert "kube-system" in refused["message"]
            return invalid

        invalid = await eventually(reported, what="the Link says what was refused")
        for text in (f"{unique}/wide: ports: 2000 ports", f"{unique}/Bad_Name: name",
                     f"{unique}/dup: ports", f"{unique}/heavy: weight"):
            assert text in invalid["message"], invalid["message"]
        assert "(and " in invalid["message"]  # more than shown: proto, the 64-char name
        names = {i["metadata"]["name"]
                 for i in (await east.list(GLOBALSERVICES, unique))["items"]}
        assert names == {"ok", "later"}
        assert await mesh.gs("east", "kube-system", f"evil-{unique}") is None
        mirrors = {i["metadata"]["name"] for i in (await east.list(SERVICES, unique))["items"]}
        assert mirrors == {"ok-global", "ok-forger-c6", "later-global", "later-forger-c6"}
        c = mesh["east"].c
        assert c.metrics.catalog_rejected.labels(peer=FORGER)._value.get() >= 6

        async def evented() -> bool:
            events = [e for e in (await east.list(EVENTS, "default"))["items"]
                      if e["regarding"]["name"] == FORGER]
            reasons = {e["reason"] for e in events}
            assert {"InvalidCatalogEntries", "NamespaceRefused"} <= reasons, reasons
            return True

        await eventually(evented, what="Events on the forger's Link")
    finally:
        await mesh.unlink("east", FORGER)

    async def gone() -> bool:
        return not (await east.list(GLOBALSERVICES, unique))["items"]

    await eventually(gone, what="the forger's imports removed with its Link")


async def test_catalog_naming_another_cluster_is_not_used(mesh: Mesh, unique: str,
                                                          forged: ForgedCatalog) -> None:
    """The forger holds its own mirror key but claims to serve west's catalog."""
    east = mesh["east"].admin
    await ensure_namespace(east, unique)
    snapshot = pb.CatalogEvent(kind=pb.CatalogEvent.SNAPSHOT, epoch="e", version=1,
                               cluster="west")
    snapshot.services.extend([service(unique, "spoofed")])
    forged.script = [snapshot]
    await mesh.link("east", FORGER, port=forged.port)
    try:
        async def refused() -> bool:
            status = await mesh.link_status("east", FORGER)
            ready = condition(status, "Ready")
            assert ready["status"] == "False" and "names cluster 'west'" in ready["message"], ready
            return True

        await eventually(refused, what="the Link reports the spoofed catalog")
        assert await mesh.gs("east", unique, "spoofed") is None
    finally:
        await mesh.unlink("east", FORGER)


# --- fuzzing: random catalog streams through the real client over mTLS gRPC -------------

_text = st.text(max_size=40) | st.from_regex(r"\A[a-z0-9-]{1,66}\Z", fullmatch=True)
_port = st.builds(pb.Port, name=_text, port=st.integers(0, 70_000), app_protocol=_text)
_service = st.builds(
    pb.Service, namespace=_text, name=_text, ports=st.lists(_port, max_size=66),
    ready_endpoints=st.integers(0, 2**32 - 1), version=st.integers(0, 2**64 - 1),
    changed_at_ms=st.integers(-(2**63), 2**63 - 1), weight=st.integers(0, 20_000))
_event = st.builds(
    pb.CatalogEvent, kind=st.sampled_from([0, 1, 2, 3, 9]), epoch=_text,
    version=st.integers(0, 2**64 - 1), cluster=st.sampled_from([FORGER, FORGER, "", "west"]),
    services=st.lists(_service, max_size=5),
    removed=st.lists(st.builds(pb.ServiceKey, namespace=_text, name=_text), max_size=3))


@pytest.fixture(scope="module")
async def fuzz_server(pki: Pki) -> AsyncIterator[ForgedCatalog]:
    server = ForgedCatalog(pki, FORGER, heartbeat=False)
    await server.start()
    yield server
    await server.stop()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=st.lists(_event, max_size=6))
async def test_fuzzed_catalog_streams(fuzz_server: ForgedCatalog, pki: Pki,
                                      events: list[Any]) -> None:
    """Whatever a peer streams, the client reports only validated entries, refuses a
    catalog that names another cluster, and never raises."""
    fuzz_server.script = events
    leaf = Issuer(pki.ca("east")).issue("isthmus-system", "isthmus-mirror",
                                        dns_names=[mirror_server_name("east")])
    dialer = DirectDialer(lambda: grpc.ssl_channel_credentials(
        pki.bundle.to_pem(), leaf.key_pem(), leaf.chain_pem()),
        lambda _link: f"127.0.0.1:{fuzz_server.port}")
    link = LinkInfo(FORGER, "uid", FORGER, "example.org", "unused.invalid", 1)
    updates: list[Any] = []
    await follow(link, dialer, updates.append, idle_timeout=5, iterations=1,
                 backoff=Backoff(initial=0.0, maximum=0.0))
    assert isinstance(updates[-1], Down)
    first_foreign = next((i for i, e in enumerate(events) if e.cluster not in ("", FORGER)),
                         None)
    if first_foreign is not None:
        assert "names cluster" in updates[-1].reason
    served = events[:first_foreign]
    assert len(updates) - 1 == sum(1 for e in served if e.kind in (1, 2, 3))
    for update in updates:
        if isinstance(update, Snapshot):
            entries = list(update.entries.values())
        elif isinstance(update, Delta):
            entries = list(update.upserts)
            assert all(len(k) == 2 for k in update.removed)
        else:
            continue
        for entry in entries:
            assert isinstance(entry, CatalogEntry)
            assert 1 <= len(entry.ports) <= 64 and 0 <= entry.weight <= 10_000
            assert all(1 <= p.port <= 65535 for p in entry.ports)
