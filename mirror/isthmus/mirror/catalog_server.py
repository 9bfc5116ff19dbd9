"""The catalog server: a gRPC server-streaming ``Watch`` over mTLS, for linked peers only.

``ssl`` (grpc's) is the first gate: TLS with a client certificate chaining to the bundle.
``authorize`` is the second: TLS 1.3, the chain through ``trust.verify_peer`` (SPIFFE and
SVID rules), the identity must be a mirror (``isthmus-system/isthmus-mirror``) of this trust
domain, and a Link must exist for its cluster. Each caller then sees only the services whose
``isthmus.io/export-to`` allows its cluster. Refusals end the call with PERMISSION_DENIED
(or UNAUTHENTICATED) and are counted by reason.

A Watch lives long, so its caller is authorized again, with the same rule, against the
bundle and the Links of *now*, at least every ``recheck`` seconds and before every message:
a caller whose root left the bundle, whose certificate expired or whose Link was removed
is cut off with PERMISSION_DENIED and the reason (docs/decisions/open-streams-on-revocation.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from isthmus.logging import get_logger
from isthmus.mirror.errors import PeerRefused
from isthmus.mirror.export_catalog import Changes, ExportCatalog
from isthmus.mirror.grpc_tls import require_tls13
from isthmus.mirror.metrics import MirrorMetrics
from isthmus.mirror.model import CatalogEntry
from isthmus.mirror.names import MIRROR_SERVICE_ACCOUNT, SYSTEM_NAMESPACE
from isthmus.mirror.wire import pb
from isthmus.trust import Refusal, TrustBundle, verify_peer

log = get_logger("isthmus.mirror.catalog_server")

SERVICE_NAME = "isthmus.mirror.v1.Catalog"
WATCH_METHOD = f"/{SERVICE_NAME}/Watch"


def chain_from_auth_context(auth: Mapping[str, Sequence[bytes]]) -> list[bytes]:
    """The peer's chain as DER, leaf first, from grpc's auth context."""
    pems: list[bytes] = list(auth.get("x509_pem_cert") or [])
    pems += list(auth.get("x509_pem_cert_chain") or [])
    chain: list[bytes] = []
    for pem in pems:
        for cert in x509.load_pem_x509_certificates(pem):
            der = cert.public_bytes(Encoding.DER)
            if der not in chain:
                chain.append(der)
    return chain


def authorize(
    auth: Mapping[str, Sequence[bytes]],
    bundle: TrustBundle,
    is_linked: Callable[[str], bool],
    now: dt.datetime,
) -> str:
    """The calling cluster, or ``PeerRefused`` with a named reason."""
    versions = [v.decode() for v in auth.get("ssl_tls_version") or []]
    if versions and versions != ["TLSv1.3"]:
        raise PeerRefused("protocol_version", f"TLS version {versions} (TLS 1.3 required)")
    try:
        chain = chain_from_auth_context(auth)
    except ValueError as exc:
        raise PeerRefused("malformed", f"peer certificate unreadable: {exc}") from exc
    verdict = verify_peer(bundle, chain, now)
    if isinstance(verdict, Refusal):
        raise PeerRefused(str(verdict.reason), verdict.detail)
    ident = verdict.identity
    if (ident.namespace, ident.service_account) != (SYSTEM_NAMESPACE, MIRROR_SERVICE_ACCOUNT):
        raise PeerRefused("not_a_mirror", f"{ident.uri} is not an isthmus mirror")
    if not is_linked(ident.cluster):
        raise PeerRefused("not_linked", f"cluster {ident.cluster!r} is not linked")
    return ident.cluster


def entry_message(entry: CatalogEntry) -> pb.Service:
    return pb.Service(
        namespace=entry.namespace,
        name=entry.name,
        ports=[pb.Port(name=p.name, port=p.port, app_protocol=p.app_protocol)
               for p in entry.ports],
        ready_endpoints=entry.ready_endpoints,
        version=entry.version,
        changed_at_ms=entry.changed_at_ms,
        weight=entry.weight,
        headless=entry.headless,
        pods=list(entry.pods),
        exported_at_ms=entry.exported_at_ms,
    )


class CatalogServer:
    def __init__(
        self,
        catalog: ExportCatalog,
        *,
        cluster: str,
        bundle: Callable[[], TrustBundle],
        credentials: Callable[[], Any],
        is_linked: Callable[[str], bool],
        metrics: MirrorMetrics,
        heartbeat: float = 10.0,
        recheck: float = 1.0,
    ) -> None:
        self.catalog = catalog
        self.cluster = cluster
        self._bundle = bundle
        self._credentials = credentials
        self._is_linked = is_linked
        self.metrics = metrics
        self.heartbeat = heartbeat
        self.recheck = recheck
        self._server: Any = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        require_tls13()
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        handler = grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Watch": grpc.unary_stream_rpc_method_handler(
                    self._watch,
                    request_deserializer=pb.WatchRequest.FromString,
                    response_serializer=pb.CatalogEvent.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
        self.port = server.add_secure_port(f"{host}:{port}", self._credentials())
        await server.start()
        self._server = server
        log.info("catalog server listening", host=host, port=self.port)
        return self.port

    async def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    def _event(self, kind: int, version: int, services: Sequence[CatalogEntry] = (),
               removed: Sequence[tuple[str, str]] = ()) -> pb.CatalogEvent:
        return pb.CatalogEvent(
            kind=kind,
            epoch=self.catalog.epoch,
            version=version,
            cluster=self.cluster,
            services=[entry_message(e) for e in services],
            removed=[pb.ServiceKey(namespace=ns, name=n) for ns, n in removed],
        )

    async def _refuse(self, context: Any, refusal: PeerRefused) -> None:
        self.metrics.catalog_refusals.labels(reason=refusal.reason).inc()
        log.warning("catalog caller refused", reason=refusal.reason, detail=refusal.detail,
                    peer=context.peer())
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(refusal))

    async def _watch(
        self, request: pb.WatchRequest, context: Any
    ) -> AsyncIterator[pb.CatalogEvent]:
        auth = context.auth_context()
        now = dt.datetime.now(dt.UTC)
        try:
            cluster = authorize(auth, self._bundle(), self._is_linked, now)
        except PeerRefused as refusal:
            await self._refuse(context, refusal)
            return
        catalog = self.catalog
        sent: int
        changes: Changes | None = None
        if request.epoch == catalog.epoch:
            changes = catalog.changes_since(request.version, cluster)
        if changes is None:
            sent, entries = catalog.snapshot(cluster)
            log.info("catalog snapshot", peer=cluster, version=sent, services=len(entries))
            yield self._event(pb.CatalogEvent.SNAPSHOT, sent, entries)
        else:
            sent = changes.version
            log.info("catalog resumed", peer=cluster, since=request.version, version=sent)
            yield self._event(pb.CatalogEvent.DELTA, sent, changes.upserts, changes.removed)
        self.metrics.catalog_subscribers.inc()
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        try:
            while True:
                wait = min(self.recheck, max(0.0, last_sent + self.heartbeat - loop.time()))
                changed = await catalog.wait_change(sent, wait)
                try:
                    authorize(auth, self._bundle(), self._is_linked, dt.datetime.now(dt.UTC))
                except PeerRefused as refusal:
                    await self._refuse(context, refusal)
                    return
                if not changed:
                    if loop.time() - last_sent >= self.heartbeat:
                        yield self._event(pb.CatalogEvent.HEARTBEAT, sent)
                        last_sent = loop.time()
                    continue
                # Let a burst of changes gather into one message.
                await asyncio.sleep(0.01)
                delta = catalog.changes_since(sent, cluster)
                if delta is None:
                    sent, entries = catalog.snapshot(cluster)
                    yield self._event(pb.CatalogEvent.SNAPSHOT, sent, entries)
                    last_sent = loop.time()
                    continue
                sent = delta.version
                if delta.upserts or delta.removed:
                    yield self._event(pb.CatalogEvent.DELTA, sent, delta.upserts, delta.removed)
                    last_sent = loop.time()
        finally:
            self.metrics.catalog_subscribers.dec()
