"""The mirror controller: watches, one dispatcher, per-key workers, link status.

Shape (as Linkerd's service mirror; docs/development.md): watch consumers and catalog clients only
update caches and enqueue typed events (``isthmus.mirror.events``); one dispatcher turns each
event into state changes and *dirty service keys*; ``KeyedWorkers`` reconcile keys in
parallel (bounded), one task per key at a time, so each object sees its changes in order.
A reconcile is ``desired`` → ``plan`` → ``Applier.execute``: pure, pure, one writer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from isthmus.exports import build_exports, is_exported
from isthmus.kube import errors as kube_errors
from isthmus.kube.backoff import Backoff
from isthmus.kube.client import JsonObj, KubeApi
from isthmus.kube.reflector import Reflector, WatchSettings, drop_managed_fields
from isthmus.kube.resources import (
    ENDPOINTSLICES,
    GLOBALSERVICES,
    LINKS,
    NAMESPACES,
    SERVICES,
    Resource,
)
from isthmus.kube.store import key_of, pack, unpack
from isthmus.labels import (
    DEFAULT_WEIGHT,
    GLOBAL_SERVICE_LABEL,
    MIRROR_LABEL,
    SLICE_SERVICE_LABEL,
)
from isthmus.logging import get_logger
from isthmus.mirror import catalog_endpoint
from isthmus.mirror import events as ev
from isthmus.mirror.applier import Applier, Outcome, vips_of
from isthmus.mirror.catalog_client import (
    CatalogUpdate,
    Delta,
    Dialer,
    DirectDialer,
    Down,
    Heartbeat,
    Snapshot,
    follow,
)
from isthmus.mirror.catalog_server import CatalogServer
from isthmus.mirror.catalog_validation import Rejected
from isthmus.mirror.certs import MirrorCertificates
from isthmus.mirror.desired import (
    DesiredService,
    PortKey,
    desired,
    global_service_status,
    required_ports,
)
from isthmus.mirror.errors import MirrorError, RetryableError, WriteRejected
from isthmus.mirror.export_catalog import ExportCatalog
from isthmus.mirror.gateway_dialer import GatewayDialer
from isthmus.mirror.import_policy import ImportPolicy, PeerAdmission
from isthmus.mirror.leader import LeaderElector
from isthmus.mirror.link_conditions import import_conditions, notices, summary
from isthmus.mirror.metrics import MirrorMetrics, serve_metrics
from isthmus.mirror.model import CatalogEntry, LinkInfo, ObjRef, PeerView, PortSpec, ServiceKey
from isthmus.mirror.names import FIELD_MANAGER, GATEWAY_SERVICE, is_ours, link_label, link_owners
from isthmus.mirror.plan import (
    Action,
    is_urgent,
    plan,
    plan_status,
    ref_of,
    status_changed,
    with_transition_times,
)
from isthmus.mirror.ports import PortAllocator, recovered_ports
from isthmus.mirror.projection import SHAPES, project
from isthmus.mirror.recorder import EventRecorder
from isthmus.mirror.resync import FIELD as SYNCED_FROM
from isthmus.mirror.resync import digest as sync_digest
from isthmus.mirror.resync import unchanged as sync_unchanged
from isthmus.mirror.settings import MirrorSettings

log = get_logger("isthmus.mirror.controller")


# The kinds whose caches are kept packed (isthmus.kube.store), and their reflectors.
_PACKED = {"Service": "services", "EndpointSlice": "slices", "GlobalService": "globalservices"}


def _rv(obj: JsonObj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _content(entry: CatalogEntry | None) -> tuple[Any, ...] | None:
    """What ``desired`` reads of an entry: ports, readiness and weight (not its version or
    change time, which a snapshot after a restart always brings anew)."""
    if entry is None:
        return None
    return (entry.ports, entry.ready_endpoints, entry.weight)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ObservedIndex:
    """The mirror's own objects, by the service key they belong to.

    Kept packed (``isthmus.kube.store``), usually the very bytes the reflector's store
    holds for the same object (``put``'s ``raw``), so the cache costs one copy; every read
    decodes a fresh dict."""

    def __init__(self) -> None:
        self.by_key: dict[ServiceKey, dict[ObjRef, bytes]] = {}
        self._key_of: dict[ObjRef, ServiceKey] = {}

    def put(self, obj: JsonObj, raw: bytes | None = None) -> ServiceKey | None:
        """Index ``obj`` (``raw``: its packed form, if the caller has it) unless a newer
        version of it is indexed already."""
        ref = ref_of(obj)
        if not is_ours(obj):
            self.remove(ref)
            return None
        labels = obj["metadata"].get("labels") or {}
        key = (ref[1], str(labels.get(GLOBAL_SERVICE_LABEL) or ""))
        old_key = self._key_of.get(ref)
        if old_key is not None and old_key != key:
            self.remove(ref)
        bucket = self.by_key.setdefault(key, {})
        old = bucket.get(ref)
        if old is None:
            bucket[ref] = raw if raw is not None else pack(obj)
        else:
            rv, old_rv = _rv(obj), _rv(unpack(old))
            # One version arrives twice, as a write's answer and as its watch event, in
            # either order. The event's bytes are the reflector's (shared), so they replace
            # the answer's copy, and a late answer never replaces them (the cache would
            # otherwise hold about half of the objects of a long import twice).
            if rv > old_rv or (rv == old_rv and raw is not None):
                if raw is not None:
                    # re-keyed too: the event's reference shares its strings with the
                    # reflector's key (a dict keeps the first key object it was given)
                    del bucket[ref]
                    self._key_of.pop(ref, None)
                bucket[ref] = raw if raw is not None else pack(obj)
        self._key_of[ref] = key
        return key

    def remove(self, ref: ObjRef) -> ServiceKey | None:
        key = self._key_of.pop(ref, None)
        if key is not None:
            bucket = self.by_key.get(key, {})
            bucket.pop(ref, None)
            if not bucket:
                self.by_key.pop(key, None)
        return key

    @property
    def refs(self) -> dict[ObjRef, ServiceKey]:
        return self._key_of

    def get(self, ref: ObjRef) -> JsonObj | None:
        key = self._key_of.get(ref)
        raw = self.by_key.get(key, {}).get(ref) if key is not None else None
        return unpack(raw) if raw is not None else None

    def for_key(self, key: ServiceKey) -> dict[ObjRef, JsonObj]:
        return {ref: unpack(raw) for ref, raw in self.by_key.get(key, {}).items()}

    def objects(self, kind: str | None = None) -> Iterator[JsonObj]:
        for bucket in self.by_key.values():
            for ref, raw in bucket.items():
                if kind is None or ref[0] == kind:
                    yield unpack(raw)

    def keys_of_cluster(self, cluster: str) -> set[ServiceKey]:
        # marshal keeps strings as their UTF-8 bytes: an object without the label's text in
        # its bytes cannot carry it, so most objects are ruled out without decoding them
        # (each Link event at start asks this of every cached object).
        needle = link_label(cluster).encode()
        found = set()
        for key, objs in self.by_key.items():
            for raw in objs.values():
                if needle in raw and cluster in link_owners(
                        unpack(raw)["metadata"].get("labels") or {}):
                    found.add(key)
                    break
        return found


@dataclass
class PeerState:
    link: LinkInfo
    admission: PeerAdmission  # the catalog as offered, and what of it is imported
    up: bool | None = None  # None: not tried yet since start (recovered mirrors stay fresh)
    synced: bool = False
    reason: str = "connecting"
    stale_since: float | None = None
    epoch: str = ""
    version: int = 0
    last_message: dt.datetime | None = None
    last_monotonic: float = 0.0
    view: PeerView | None = None

    @property
    def entries(self) -> dict[ServiceKey, CatalogEntry]:
        """The admitted entries (``import_policy``): all that is ever imported."""
        return self.admission.entries

    def make_view(self) -> PeerView:
        if self.view is None:
            stale = None if self.up is not False else self.reason
            self.view = PeerView(self.link, self.entries, stale)
        return self.view


class KeyedWorkers:
    """Reconcile keys with a fixed pool of ``concurrency`` tasks, one pass per key at a time.

    Keys wait in two FIFO queues. A key's first pass is urgent; when it reports work left
    (``handler(key, True)`` returns True) the key queues again for a full pass behind every
    urgent one, so in a burst every key's urgent objects are written before any key's
    deferred ones (docs/decisions/mirror-write-order.md). A key submitted while it is queued or
    being handled is not queued twice: it is marked dirty and handled again after its turn. A
    fixed pool, not a task per key: 10 000 waiting keys cost a deque entry each."""

    def __init__(
        self,
        tg: asyncio.TaskGroup,
        handler: Callable[[ServiceKey, bool], Awaitable[bool]],
        concurrency: int,
    ) -> None:
        self._handler = handler
        self._urgent: collections.deque[ServiceKey] = collections.deque()
        self._deferred: collections.deque[ServiceKey] = collections.deque()
        self._queued = asyncio.Semaphore(0)  # one unit per queued entry
        self._owned: set[ServiceKey] = set()  # queued or being handled
        self._dirty: set[ServiceKey] = set()
        self.idle = asyncio.Event()
        self.idle.set()
        self._pool = [tg.create_task(self._worker()) for _ in range(concurrency)]

    def submit(self, key: ServiceKey) -> None:
        if key in self._owned:
            self._dirty.add(key)
            return
        self._owned.add(key)
        self.idle.clear()
        self._push(self._urgent, key)

    def _push(self, queue: collections.deque[ServiceKey], key: ServiceKey) -> None:
        queue.append(key)
        self._queued.release()

    @property
    def pending(self) -> int:
        return len(self._owned)

    async def _worker(self) -> None:
        while True:
            await self._queued.acquire()
            urgent = bool(self._urgent)
            key = (self._urgent if urgent else self._deferred).popleft()
            self._dirty.discard(key)  # this pass reads the state as it is now
            more = False
            try:
                more = await self._handler(key, urgent)
            finally:
                if urgent and more:
                    self._push(self._deferred, key)
                elif key in self._dirty:
                    self._dirty.discard(key)
                    self._push(self._urgent, key)
                else:
                    self._owned.discard(key)
                    if not self._owned:
                        self.idle.set()


@dataclass
class LinkProblems:
    conflicts: dict[ServiceKey, str] = field(default_factory=dict)
    write_failures: dict[ServiceKey, str] = field(default_factory=dict)
    missing_namespaces: dict[ServiceKey, str] = field(default_factory=dict)
    refused: dict[tuple[str, str], int] = field(default_factory=dict)  # link_conditions.summary
    invalid: dict[str, str] = field(default_factory=dict)  # "ns/name" -> why rejected


class MirrorController:
    """One cluster's mirror: export catalog server, and import of every linked peer."""

    def __init__(
        self,
        api: KubeApi,
        settings: MirrorSettings,
        *,
        dialer: Dialer | None = None,
        metrics: MirrorMetrics | None = None,
    ) -> None:
        self.api = api
        self.settings = settings
        self.metrics = metrics or MirrorMetrics()
        self.identity = settings.identity or os.environ.get("HOSTNAME") or uuid.uuid4().hex[:12]
        self.certs = MirrorCertificates(
            api, settings.namespace, lifetime=dt.timedelta(hours=settings.leaf_hours)
        )
        self._dialer = dialer
        self._own_dialer: GatewayDialer | None = None  # made here, so closed here
        self.catalog = ExportCatalog(history=settings.catalog_history)
        self.queue: asyncio.Queue[ev.MirrorEvent] = asyncio.Queue()
        self.links: dict[str, LinkInfo] = {}
        self.peers: dict[str, PeerState] = {}
        self.observed = ObservedIndex()
        self.foreign: dict[ObjRef, bytes] = {}  # packed, as in the ObservedIndex
        self._conflict_refs: dict[ObjRef, ServiceKey] = {}
        self._inflight: set[ObjRef] = set()
        self.namespaces: set[str] = set()
        self.gateway_addresses: tuple[str, ...] = ()
        self.allocator = PortAllocator(*settings.ports)
        self.policy = ImportPolicy.from_settings(settings)
        self.problems: dict[str, LinkProblems] = {}
        self.ready = asyncio.Event()
        self.catalog_port = 0
        self.metrics_port = 0
        self.recorder = EventRecorder(api, self.identity)
        api.limit_in_flight(settings.api_in_flight)
        self.applier = Applier(
            api, self.metrics, attempts=settings.write_attempts,
            on_written=self._written, on_deleted=self._deleted, verify_absent=False,
            on_writing=self._writing, project=project, shapes=SHAPES,
        )
        self.elector: LeaderElector | None = None
        self.watch_settings = WatchSettings(
            timeout_seconds=(max(1, settings.watch_timeout_seconds // 2),
                             settings.watch_timeout_seconds),
            backoff=Backoff(initial=0.2, maximum=5.0),
        )
        self.reflectors: dict[str, Reflector] = {}
        self._subscriptions: dict[str, asyncio.Task[None]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._own_rv: dict[ObjRef, int] = {}
        self._export_slices: dict[ServiceKey, dict[str, bytes]] = {}  # packed, shared
        self._weight_problems: dict[ServiceKey, str] = {}  # reported once per distinct value
        self._requeues: dict[ServiceKey, int] = {}
        # keys whose last reconcile had nothing to do: the inputs it saw (its wanted objects
        # were then exactly its observed ones)
        self._settled: dict[ServiceKey, tuple[Any, ...]] = {}
        self._unverified: set[ServiceKey] = set()
        self._namespaces_frozen: frozenset[str] | None = None
        self._status_dirty: set[str] = set()
        self._link_status_written: dict[str, dict[str, Any]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self.workers: KeyedWorkers | None = None
        self._started = False

    # --- running ------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve metrics; take the Lease (if enabled); then run the controller until
        cancelled (or ``LeadershipLost``)."""
        runner = None
        if self.settings.metrics_port >= 0:
            runner = await serve_metrics(self.metrics, self.settings.metrics_host,
                                         self.settings.metrics_port, self.ready.is_set)
            self.metrics_port = runner.addresses[0][1] if runner.addresses else 0
        try:
            if self.settings.leader_election:
                self.elector = LeaderElector(
                    self.api, self.settings.namespace, self.settings.lease_name, self.identity,
                    lease_seconds=self.settings.lease_seconds,
                    renew_interval=self.settings.lease_renew_seconds,
                    retry_interval=min(2.0, self.settings.lease_renew_seconds),
                )
                await self.elector.run(self.lead)
            else:
                await self.lead()
        finally:
            self.ready.clear()
            self.metrics.leader.set(0)
            if runner is not None:
                await runner.cleanup()

    @property
    def leading(self) -> bool:
        return self._started

    async def lead(self) -> None:
        self.metrics.leader.set(1)
        self._settled.clear()  # a new term starts from what it sees, not from memory
        await self.certs.start()
        server: CatalogServer | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self.workers = KeyedWorkers(tg, self._reconcile_guarded, self.settings.concurrency)
                workers = self.workers
                # read when scraped: a value set on submit would stay stale once work drains
                self.metrics.queue_depth.set_function(lambda: workers.pending)
                self._start_watches(tg)
                await asyncio.gather(*(r.synced.wait() for r in self.reflectors.values()))
                self._seed()
                # keys not yet checked in this term: the first check may find them unchanged
                self._unverified = set(self.observed.by_key)
                server = CatalogServer(
                    self.catalog, cluster=self.certs.cluster,
                    bundle=self._bundle, credentials=self.certs.server_credentials,
                    is_linked=self._is_linked, metrics=self.metrics,
                    heartbeat=self.settings.heartbeat_seconds,
                )
                self.catalog_port = await server.start(
                    self.settings.catalog_host, self.settings.catalog_port
                )
                if self.settings.pod_ip:
                    tg.create_task(self._publish_catalog_endpoint(self.settings.pod_ip))
                for link in list(self.links.values()):
                    self._subscribe(link)
                self.queue.put_nowait(ev.OrphanGcTriggered())
                tg.create_task(self._dispatch())
                tg.create_task(self._status_loop())
                tg.create_task(self._ticker())
                tg.create_task(self.certs.run())
                self._started = True
                self.ready.set()
                log.info("mirror running", cluster=self.certs.cluster, catalog=self.catalog_port)
        finally:
            self._started = False
            self.ready.clear()
            if server is not None:
                await asyncio.shield(server.stop(0.5))
            if self._own_dialer is not None:  # its forwarders and tasks end with the lead
                dialer, self._own_dialer, self._dialer = self._own_dialer, None, None
                await asyncio.shield(dialer.close())

    async def _publish_catalog_endpoint(self, pod_ip: str) -> None:
        """Point the catalog Service at this leader; retried until it is written."""
        backoff = Backoff(initial=0.5, maximum=10.0)
        attempt = 0
        while True:
            try:
                await catalog_endpoint.publish(self.api, self.settings.namespace, pod_ip,
                                               self.catalog_port, self.identity)
                log.info("catalog endpoint published", pod_ip=pod_ip, port=self.catalog_port)
                return
            except kube_errors.KubeError as exc:
                log.error("catalog endpoint not published; retrying", error=str(exc))
                await backoff.sleep(attempt)
                attempt += 1

    def _bundle(self) -> Any:
        if self.certs.bundle is None:
            raise MirrorError("no trust bundle")
        return self.certs.bundle

    def _is_linked(self, cluster: str) -> bool:
        return any(link.cluster == cluster for link in self.links.values())

    def dialer(self) -> Dialer:
        if self._dialer is None:
            if self.settings.catalog_via == "gateway":
                self._dialer = self._own_dialer = GatewayDialer(
                    self.certs.channel_credentials, self.certs.tls_material)
            else:
                self._dialer = DirectDialer(self.certs.channel_credentials)
        return self._dialer

    # --- watches ------------------------------------------------------------------------
    def _start_watches(self, tg: asyncio.TaskGroup) -> None:
        specs: dict[str, tuple[Resource, bool, Callable[[str, JsonObj], None]]] = {
            "links": (LINKS, False, self._on_link),
            "services": (SERVICES, True, self._on_service),
            "slices": (ENDPOINTSLICES, True, self._on_slice),
            "globalservices": (GLOBALSERVICES, True, self._on_mirror_object),
            "namespaces": (NAMESPACES, True, self._on_namespace),
        }
        for name, (res, slim, handler) in specs.items():
            # The caches hold the whole cluster: keep only what the mirror reads.
            reflector = Reflector(self.api, res, settings=self.watch_settings,
                                  transform=project if slim else drop_managed_fields,
                                  shape=SHAPES[res.kind] if slim else None,
                                  packed=res.kind in _PACKED)
            self.reflectors[name] = reflector
            self._watchers[name] = tg.create_task(self._consume(reflector, handler))

    async def _consume(self, reflector: Reflector,
                       handler: Callable[[str, JsonObj], None]) -> None:
        async for kind, obj in reflector.events():
            if obj is None:
                continue
            try:
                handler(kind, obj)
            except (MirrorError, ValueError, KeyError) as exc:
                self.metrics.errors.labels(kind="watch_handler").inc()
                log.warning("watch event not handled", error=str(exc), kind=kind)

    def pause_watches(self) -> None:
        """Stop consuming watches, keeping each reflector's cache and resourceVersion (the
        next ``resume_watches`` continues from there: a test hook for 410 Gone)."""
        for task in self._watchers.values():
            task.cancel()

    def resume_watches(self) -> None:
        handlers = {
            "links": self._on_link, "services": self._on_service,
            "slices": self._on_slice, "globalservices": self._on_mirror_object,
            "namespaces": self._on_namespace,
        }
        assert self._tg is not None
        for name, reflector in self.reflectors.items():
            self._watchers[name] = self._tg.create_task(self._consume(reflector, handlers[name]))

    def _on_link(self, kind: str, obj: JsonObj) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            old = self.links.pop(name, None)
            if old is not None:
                self.queue.put_nowait(ev.LinkRemoved(old.name, old.uid, old.cluster))
            return
        try:
            link = LinkInfo.from_object(obj)
        except ValueError as exc:
            log.warning("ignoring invalid Link", name=name, error=str(exc))
            return
        if self.links.get(name) != link:
            self.links[name] = link
            self.queue.put_nowait(ev.LinkUpserted(link))

    def _export_changed(self, key: ServiceKey) -> None:
        svc = self.reflectors["services"].store.get(key)
        slices = [unpack(raw) for raw in self._export_slices.get(key, {}).values()]
        exported = build_exports([svc], slices).get(key) if svc is not None else None
        self.catalog.set(key, exported)
        problem = exported.weight_problem if exported is not None else None
        if problem is None:
            self._weight_problems.pop(key, None)
        elif svc is not None and self._weight_problems.get(key) != problem:
            self._weight_problems[key] = problem
            log.warning("invalid export weight", namespace=key[0], name=key[1], problem=problem)
            meta = svc["metadata"]
            self._event_later({"apiVersion": "v1", "kind": "Service", "metadata": {
                "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")}},
                "InvalidWeight", problem, warning=True, action="Export")
        self.metrics.exported.set(len(self.catalog.entries))
        self.metrics.local_catalog_version.set(self.catalog.version)

    def _on_service(self, kind: str, obj: JsonObj) -> None:
        """Every Service: exported ones feed the catalog, mirrors the observed index, and
        any other is remembered so a mirror never takes its name."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        if is_exported(obj) or key in self.catalog.entries:
            self._export_changed(key)
        self._on_mirror_object(kind, obj)

    def _on_slice(self, kind: str, obj: JsonObj) -> None:
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        if labels.get(MIRROR_LABEL) == "true" or (kind == "DELETED" and is_ours(obj)):
            self._on_mirror_object(kind, obj)
            return
        if kind == "DELETED":
            waiting = self._conflict_refs.pop(ref_of(obj), None)
            if waiting is not None:  # a mirror wanted this slice's name: take it now
                self.queue.put_nowait(ev.MirrorObjectChanged(waiting))
        owner = labels.get(SLICE_SERVICE_LABEL)
        if not owner:
            return
        key = (meta["namespace"], owner)
        bucket = self._export_slices.setdefault(key, {})
        if kind == "DELETED":
            bucket.pop(meta["name"], None)
            if not bucket:
                self._export_slices.pop(key, None)
        else:
            bucket[meta["name"]] = self._kept(obj)
        if key == (self.settings.namespace, GATEWAY_SERVICE):
            self._gateway_changed()
        if key in self.catalog.entries or is_exported(
            self.reflectors["services"].store.get(key) or {}
        ):
            self._export_changed(key)

    def _gateway_changed(self) -> None:
        addresses: set[str] = set()
        for raw in self._export_slices.get((self.settings.namespace, GATEWAY_SERVICE), {}).values():
            for ep in unpack(raw).get("endpoints") or []:
                cond = ep.get("conditions") or {}
                if cond.get("ready", True) is False or cond.get("terminating") is True:
                    continue
                addresses.update(ep.get("addresses") or [])
        new = tuple(sorted(addresses))
        if new != self.gateway_addresses:
            self.gateway_addresses = new
            self.queue.put_nowait(ev.GatewayEndpointsChanged())

    def _kept(self, obj: JsonObj) -> bytes:
        """The packed ``obj``: the bytes its reflector's store holds for it (just stored,
        as the event came), so the indexes share them."""
        reflector = self.reflectors.get(_PACKED.get(str(obj.get("kind")), ""))
        raw = reflector.store.raw(key_of(obj)) if reflector is not None else None
        return raw if isinstance(raw, bytes) else pack(obj)

    def _on_mirror_object(self, kind: str, obj: JsonObj) -> None:
        ref = ref_of(obj)
        if not is_ours(obj):
            # someone else's object: remembered (by reference) so plan() sees the name taken
            was_ours = self.observed.remove(ref)
            if kind == "DELETED":
                self.foreign.pop(ref, None)
                waiting = self._conflict_refs.pop(ref, None)
                if waiting is not None:  # a mirror wanted this name: take it now
                    self.queue.put_nowait(ev.MirrorObjectChanged(waiting))
            else:
                self.foreign[ref] = self._kept(obj)
            if was_ours is not None:
                self.queue.put_nowait(ev.MirrorObjectChanged(was_ours))
            return
        self.foreign.pop(ref, None)
        if kind == "DELETED":
            key = self.observed.remove(ref)
            own = self._own_rv.pop(ref, None)
            if key is not None and own != -1:
                self.queue.put_nowait(ev.MirrorObjectChanged(key))
            waiting = self._conflict_refs.pop(ref, None)
            if waiting is not None and waiting != key:
                # another mirror's object held the name (e.g. a name from an older naming
                # scheme being removed): the key that wanted it takes it now
                self.queue.put_nowait(ev.MirrorObjectChanged(waiting))
            return
        key = self.observed.put(obj, self._kept(obj))
        # Our own write echoing back (in flight, or the version we wrote) needs no repair;
        # once it is back, its version need not be remembered (one entry per object less).
        if self._own_rv.get(ref) == _rv(obj):
            del self._own_rv[ref]
        elif key is not None and ref not in self._inflight:
            self.queue.put_nowait(ev.MirrorObjectChanged(key))

    def _on_namespace(self, kind: str, obj: JsonObj) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self.namespaces.discard(name)
            self._namespaces_frozen = None
        elif name not in self.namespaces:
            self.namespaces.add(name)
            self._namespaces_frozen = None
            self.queue.put_nowait(ev.NamespaceAppeared(name))

    def _writing(self, ref: ObjRef, busy: bool) -> None:
        if busy:
            self._inflight.add(ref)
        else:
            self._inflight.discard(ref)

    def _written(self, obj: JsonObj) -> None:
        ref = ref_of(obj)
        seen = self.observed.get(ref)
        seen_rv = _rv(seen) if seen is not None else -1
        if seen_rv > _rv(obj):
            # changed by someone else while we wrote it: look again
            key = self.observed.refs.get(ref)
            if key is not None:
                self.queue.put_nowait(ev.MirrorObjectChanged(key))
        if seen_rv < _rv(obj):
            # remembered until its watch event echoes it; an echo that came first (the
            # write was in flight, so it asked for nothing) leaves nothing to remember
            self._own_rv[ref] = _rv(obj)
        self.observed.put(obj)

    def _deleted(self, ref: ObjRef) -> None:
        if self.observed.remove(ref) is not None:  # else its DELETED event came first
            self._own_rv[ref] = -1

    # --- start-up -----------------------------------------------------------------------
    def _seed(self) -> None:
        """Recover port allocations and, per existing link, the catalog its mirrors show,
        so a restart changes nothing until each peer answers (then its snapshot rules)."""
        by_cluster = {link.cluster: link for link in self.links.values()}
        for link in by_cluster.values():
            self.peers[link.cluster] = self._new_peer(link)
        shown: dict[str, dict[ServiceKey, CatalogEntry]] = {c: {} for c in self.peers}
        recovered: dict[PortKey, int] = {}
        # one GlobalService decoded at a time: a list of 10 000 would only feed the GC
        for gs in self.observed.objects("GlobalService"):
            recovered.update(recovered_ports([gs]))
            meta, spec = gs["metadata"], gs.get("spec") or {}
            ports = {int(p["port"]): p for p in spec.get("ports") or []}
            for endpoint in spec.get("endpoints") or []:
                peer = self.peers.get(str(endpoint.get("cluster")))
                if peer is None:
                    continue
                specs = []
                for pinned in endpoint.get("pinnedPorts") or []:
                    p = ports.get(int(pinned["port"]), {})
                    specs.append(PortSpec(int(pinned["port"]), str(p.get("name") or ""),
                                          str(p.get("appProtocol") or "")))
                if specs:
                    key = (sys.intern(meta["namespace"]), meta["name"])
                    shown[peer.link.cluster][key] = CatalogEntry(
                        key[0], key[1], tuple(sorted(specs)),
                        int(endpoint.get("readyEndpoints") or 0),
                        weight=int(endpoint.get("weight", DEFAULT_WEIGHT)))
        # what was imported before is admitted again by today's policy: an import it now
        # refuses is removed by the start-up pass
        for cluster, entries in shown.items():
            self.peers[cluster].admission.replace(entries)
            self._refusals_changed(cluster)
        self.allocator = PortAllocator(*self.settings.ports, recovered)
        self._gateway_changed()

    # --- subscriptions ------------------------------------------------------------------
    def _subscribe(self, link: LinkInfo) -> None:
        old = self._subscriptions.pop(link.cluster, None)
        if old is not None:
            old.cancel()
        assert self._tg is not None

        def report(update: CatalogUpdate) -> None:
            self.queue.put_nowait(ev.PeerCatalogUpdated(update))

        self._subscriptions[link.cluster] = self._tg.create_task(
            follow(link, self.dialer(), report,
                   idle_timeout=self.settings.idle_timeout_seconds,
                   backoff=Backoff(initial=0.2, maximum=self.settings.reconnect_max_seconds))
        )

    # --- what a peer may import (import_policy) -------------------------------------------
    def _new_peer(self, link: LinkInfo) -> PeerState:
        return PeerState(link, PeerAdmission(self.policy, link.allowed_namespaces))

    def _rejected(self, peer: PeerState, rejected: tuple[Rejected, ...], *, reset: bool,
                  valid: Iterable[ServiceKey]) -> None:
        """Record the entries the catalog boundary rejected (a snapshot replaces them all;
        a delta's valid entries and removals clear theirs)."""
        problems = self.problems.setdefault(peer.link.cluster, LinkProblems())
        if not rejected and not problems.invalid:
            return  # the common case: nothing rejected, before or now
        before = dict(problems.invalid)
        if reset:
            problems.invalid.clear()
        for key in valid:
            problems.invalid.pop(f"{key[0]}/{key[1]}", None)
        fresh = [r for r in rejected if f"{r.namespace}/{r.name}" not in before]
        for r in rejected:
            problems.invalid[f"{r.namespace}/{r.name}"] = r.reason
        if rejected:
            self.metrics.catalog_rejected.labels(peer=peer.link.cluster).inc(len(rejected))
        if fresh:
            shown = "; ".join(f"{r.namespace}/{r.name}: {r.reason}" for r in fresh[:3])
            self._event_later(self._link_obj(peer.link), "InvalidCatalogEntries",
                              f"{len(fresh)} entries of {peer.link.cluster}'s catalog rejected: "
                              f"{shown}", warning=True)
        if problems.invalid != before:
            self._status_dirty.add(peer.link.cluster)

    def _refusals_changed(self, cluster: str) -> None:
        """Bring the Link's view of refused entries (conditions, Events, metric) up to date
        with the peer's admission."""
        peer = self.peers.get(cluster)
        if peer is None:
            return
        problems = self.problems.setdefault(cluster, LinkProblems())
        after = summary(peer.admission.refused)
        if after == problems.refused:
            return
        for reason, note in notices(problems.refused, after, peer.admission.refused, cluster):
            log.warning("import refused", peer=cluster, reason=reason, note=note)
            self._event_later(self._link_obj(peer.link), reason, note, warning=True)
        for (reason, _ns), _count in problems.refused.items():
            self.metrics.refused.labels(peer=cluster, reason=reason).set(0)
        totals: dict[str, int] = {}
        for (reason, _ns), count in after.items():
            totals[reason] = totals.get(reason, 0) + count
        for reason, count in totals.items():
            self.metrics.refused.labels(peer=cluster, reason=reason).set(count)
        problems.refused = after
        self._status_dirty.add(cluster)

    # --- the dispatcher -----------------------------------------------------------------
    async def _dispatch(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                self.handle(event)
            except MirrorError as exc:
                self.metrics.errors.labels(kind="dispatch").inc()
                log.warning("event not handled", event=type(event).__name__, error=str(exc))

    def _submit(self, keys: Iterable[ServiceKey]) -> None:
        assert self.workers is not None
        for key in keys:
            self.workers.submit(key)

    def handle(self, event: ev.MirrorEvent) -> None:
        if isinstance(event, ev.LinkUpserted):
            link = event.link
            peer = self.peers.get(link.cluster)
            known = peer is not None
            if peer is None:
                peer = self.peers[link.cluster] = self._new_peer(link)
            changed = peer.link != link
            peer.link = link
            peer.view = None
            admitted = peer.admission.reconfigure(self.policy, link.allowed_namespaces)
            if admitted:
                self._refusals_changed(link.cluster)
                self._submit(admitted)
            if changed or link.cluster not in self._subscriptions:
                self._subscribe(link)
            self._status_dirty.add(link.cluster)
            if changed or not known:
                self._submit(set(peer.entries) | self.observed.keys_of_cluster(link.cluster))
            # else: a Link the start-up recovery already knew as it is (``_seed``); the
            # start-up pass submits every key, so scanning every cached object for its
            # keys again would only repeat it
        elif isinstance(event, ev.LinkRemoved):
            others = sorted((lk for lk in self.links.values() if lk.cluster == event.cluster),
                            key=lambda lk: lk.name)
            if others:
                # Another Link names the same cluster: the peer follows it, not the removed
                # one's address (it may be the one the peer was watching).
                peer = self.peers.get(event.cluster)
                if peer is not None and peer.link.uid == event.uid:
                    self.handle(ev.LinkUpserted(others[0]))
                return
            task = self._subscriptions.pop(event.cluster, None)
            if task is not None:
                task.cancel()
            peer = self.peers.pop(event.cluster, None)
            gone = self.problems.pop(event.cluster, None)
            for reason, _ns in gone.refused if gone is not None else ():
                self.metrics.refused.labels(peer=event.cluster, reason=reason).set(0)
            self._link_status_written.pop(event.cluster, None)
            keys = set(peer.entries) if peer else set()
            self._submit(keys | self.observed.keys_of_cluster(event.cluster))
            log.info("link removed", cluster=event.cluster, uid=event.uid)
        elif isinstance(event, ev.PeerCatalogUpdated):
            self._peer_update(event.update)
        elif isinstance(event, ev.MirrorObjectChanged):
            self._submit([event.key])
        elif isinstance(event, ev.NamespaceAppeared):
            self._submit({k for p in self.peers.values() for k in p.entries
                          if k[0] == event.namespace})
        elif isinstance(event, ev.GatewayEndpointsChanged):
            self._submit(self._all_keys())
        elif isinstance(event, ev.OrphanGcTriggered):
            self._expire_stale()
            self._submit(self._all_keys())

    def _all_keys(self) -> set[ServiceKey]:
        keys = set(self.observed.by_key)
        for peer in self.peers.values():
            keys.update(peer.entries)
        return keys

    def _expire_stale(self) -> None:
        now = time.monotonic()
        for peer in self.peers.values():
            if peer.stale_since is None or not peer.entries:
                continue
            if now - peer.stale_since >= self.settings.stale_grace_seconds:
                log.warning("stale grace period over, removing mirrors", peer=peer.link.cluster,
                            services=len(peer.entries))
                self._event_later(self._link_obj(peer.link), "StaleGraceExpired",
                                  f"{len(peer.entries)} mirrors of unreachable {peer.link.cluster}"
                                  " removed after the grace period", warning=True)
                self._submit(set(peer.entries))
                peer.admission.clear()
                self._refusals_changed(peer.link.cluster)
                peer.view = None

    def _peer_update(self, update: CatalogUpdate) -> None:
        peer = self.peers.get(update.cluster)
        if peer is None:
            return
        now = _now()
        self.metrics.sync_lag.labels(peer=update.cluster).set(0)
        if isinstance(update, Down):
            was_up = peer.up
            peer.synced = False
            if was_up is not False:
                peer.up = False
                peer.reason = update.reason
                peer.stale_since = time.monotonic()
                peer.view = None
                self.metrics.peer_up.labels(peer=update.cluster).set(0)
                log.warning("peer unreachable", peer=update.cluster, reason=update.reason)
                self._event_later(self._link_obj(peer.link), "PeerUnreachable",
                                  f"catalog of {update.cluster}: {update.reason}", warning=True)
                self._submit(set(peer.entries))
            elif peer.reason != update.reason:
                peer.reason = update.reason
            self._status_dirty.add(update.cluster)
            return
        peer.last_message = now
        peer.last_monotonic = time.monotonic()
        came_back = peer.up is not True
        # Only a peer that was down has mirrors marked Stale to bring back; a first answer
        # since start (up None) changes only the keys whose entries it changes (below).
        was_down = peer.up is False
        if came_back:
            peer.up = True
            peer.stale_since = None
            peer.view = None
            self.metrics.peer_up.labels(peer=update.cluster).set(1)
        keys: set[ServiceKey] = set()
        if isinstance(update, Snapshot):
            # Compared by content: entries recovered at start carry no version or change
            # time, and a restart must not reconcile every key a second time for that.
            keys = peer.admission.replace(update.entries)
            self._rejected(peer, update.rejected, reset=True, valid=())
            self._refusals_changed(update.cluster)
            peer.view = None
            if not peer.synced:
                self._event_later(self._link_obj(peer.link), "CatalogSynced",
                                  f"catalog of {update.cluster} synced at version "
                                  f"{update.version} ({len(update.entries)} services)")
            peer.synced = True
            peer.epoch, peer.version = update.epoch, update.version
            log.debug("catalog snapshot applied", peer=update.cluster, version=update.version,
                      services=len(update.entries), changed=len(keys))
        elif isinstance(update, Delta):
            keys = peer.admission.update(update.upserts, update.removed)
            if keys:
                peer.view = None
            self._rejected(peer, update.rejected, reset=False,
                           valid=[*(e.key for e in update.upserts), *update.removed])
            self._refusals_changed(update.cluster)
            if not peer.synced:
                self._event_later(self._link_obj(peer.link), "CatalogSynced",
                                  f"catalog of {update.cluster} resumed at {update.version}")
            peer.synced = True
            peer.epoch, peer.version = update.epoch, update.version
        elif isinstance(update, Heartbeat):
            peer.version = max(peer.version, update.version)
        self.metrics.catalog_version.labels(peer=update.cluster).set(peer.version)
        if was_down:
            keys |= set(peer.entries)
        self._status_dirty.add(update.cluster)
        self._submit(keys)

    # --- reconcile ----------------------------------------------------------------------
    def views(self) -> list[PeerView]:
        return [p.make_view() for _, p in sorted(self.peers.items())]

    async def _reconcile_guarded(self, key: ServiceKey, urgent_only: bool = False) -> bool:
        """One pass over ``key``; True when an urgent pass left work for a full pass."""
        try:
            if await self.reconcile(key, urgent_only=urgent_only):
                return True
            self._requeues.pop(key, None)
            self._clear_problem(key, "write_failures")
        except RetryableError as exc:
            count = self._requeues.get(key, 0) + 1
            self._requeues[key] = count
            if count <= self.settings.requeue_limit:
                log.info("requeueing", key=key, attempt=count, error=str(exc))
                assert self._tg is not None
                self._tg.create_task(self._requeue_later(key, count))
            else:
                self._requeues.pop(key, None)
                self._write_failed(key, str(exc))
        except WriteRejected as exc:
            self._write_failed(key, str(exc))
        except MirrorError as exc:
            self.metrics.errors.labels(kind="reconcile").inc()
            log.warning("reconcile failed", key=key, error=str(exc))
        return False

    async def _requeue_later(self, key: ServiceKey, count: int) -> None:
        await asyncio.sleep(min(5.0, 0.2 * 2**count))
        self._submit([key])

    def _clusters_of(self, key: ServiceKey) -> set[str]:
        clusters = {c for c, p in self.peers.items() if key in p.entries}
        for obj in self.observed.for_key(key).values():
            clusters.update(c for c in link_owners(obj["metadata"].get("labels") or {})
                            if c in self.peers)
        return clusters

    def _write_failed(self, key: ServiceKey, message: str) -> None:
        self.metrics.errors.labels(kind="write_failed").inc()
        log.warning("writes for a service failed", key=key, error=message)
        for cluster in self._clusters_of(key):
            problems = self.problems.setdefault(cluster, LinkProblems())
            if key not in problems.write_failures:
                peer = self.peers.get(cluster)
                if peer is not None:
                    self._event_later(self._link_obj(peer.link), "WriteFailed",
                                      f"{key[0]}/{key[1]}: {message}", warning=True)
            problems.write_failures[key] = message
            self._status_dirty.add(cluster)

    def _clear_problem(self, key: ServiceKey, kind: str) -> None:
        for cluster, problems in self.problems.items():
            bucket: dict[ServiceKey, str] = getattr(problems, kind)
            if bucket.pop(key, None) is not None:
                self._status_dirty.add(cluster)

    async def reconcile(self, key: ServiceKey, *, urgent_only: bool = False) -> bool:
        """Make the objects of one service key what the peers' catalogs say.

        With ``urgent_only``, when the plan has both urgent writes (the GlobalService and
        the merged mirror Service and slice) and others (pinned objects, status, conflicts),
        only the urgent ones are written and True is returned: the caller runs the full
        reconcile later. Otherwise the full reconcile runs now and False is returned."""
        views = self.views()
        observed = self.observed.for_key(key)
        # read now, with what desired() reads below: the awaits that follow may change them
        basis = self._sync_basis(key, views)
        if key in self._unverified:
            self._unverified.discard(key)
            if sync_unchanged((*basis, self.allocator.ports_of(key)), observed):
                self.metrics.resync_unchanged.inc()
                return False  # exactly what a full pass converged on and recorded (resync.py)
        inputs = self._inputs(basis, observed)
        settled = self._settled.get(key)
        if (settled is not None and settled == inputs
                and not any(ref in self.foreign for ref in observed)):
            return False  # nothing it reads changed since it last had nothing to do
        self._settled.pop(key, None)
        needed = required_ports(views, [key])
        ports = self.allocator.ensure(needed)
        if self._namespaces_frozen is None:
            self._namespaces_frozen = frozenset(self.namespaces)
        want = desired(views, gateway_addresses=self.gateway_addresses, ports=ports,
                       namespaces=self._namespaces_frozen, keys=[key])
        ds = want.services.get(key)
        wanted = ds.objects if ds is not None else {}
        observed.update({ref: unpack(self.foreign[ref]) for ref in wanted if ref in self.foreign})
        observed.update(self._foreign_slices(wanted, observed))
        # a name held by the mirror's own object of another service (e.g. written under an
        # older naming scheme) is a conflict until that service's pass deletes it
        observed.update({ref: held for ref in wanted if ref not in observed
                         and (held := self.observed.get(ref)) is not None})
        actions = plan(observed, wanted)
        if urgent_only:
            urgent = [a for a in actions if is_urgent(a)]
            if urgent and (len(urgent) < len(actions) or ds is not None):
                # The status waits for the full pass: DNS answers <svc>.<ns>.global from
                # the merged Service's ClusterIP as soon as it exists (isthmus.dns.mirror_vips),
                # so a burst's API writes go to making every service exist first.
                await self._execute(urgent, ds, wanted)
                return True
        outcome = await self._execute(actions, ds, wanted)
        current = {**observed, **outcome.written}
        for ref in outcome.deleted:
            current.pop(ref, None)
        self._record_missing(key, want.missing_namespaces)
        self._record_conflicts(key, ds.clusters if ds else (), outcome.conflicts)
        for ref in outcome.conflicts:
            self._conflict_refs[ref] = key
        if ds is None:
            self.allocator.release(key)
            return False
        self.allocator.release(key, keep=needed)
        wrote_status = await self._write_status(ds, wanted, current, outcome.conflicts,
                                                (*basis, self.allocator.ports_of(key)))
        if wrote_status is None:
            return False
        if not wrote_status and not actions and not want.missing_namespaces:
            self._settled[key] = inputs
        if outcome.written:
            newest = max((p.entries[key].changed_at_ms for p in self.peers.values()
                          if key in p.entries), default=0)
            if newest:
                self.metrics.export_to_mirror.observe(max(0.0, time.time() - newest / 1000))
        return False

    async def _write_status(self, ds: DesiredService, wanted: Mapping[ObjRef, JsonObj],
                            current: Mapping[ObjRef, JsonObj],
                            conflicts: Mapping[ObjRef, str],
                            sync_inputs: tuple[Any, ...]) -> bool | None:
        """Write the GlobalService status if it changed: True if written, False if it was
        already right, None if the GlobalService itself is in conflict (not ours). A status
        written after a pass without conflicts records the digest of what it was written from
        (``resync.py``); the digest alone never makes a status write."""
        gs_ref = next(r for r in wanted if r[0] == "GlobalService")
        if gs_ref in conflicts:
            return None
        # only our own Services lend their addresses (never one holding a name we wanted)
        ours = {ref: obj for ref, obj in current.items() if ref not in conflicts}
        status = global_service_status(ds, vips_of(ours), list(conflicts.values()))
        st = plan_status(wanted[gs_ref], status, current.get(gs_ref), _now())
        if st is None:
            return False
        if not conflicts:
            full = st.obj["status"]
            full[SYNCED_FROM] = sync_digest(sync_inputs, current, full)
        await self.applier.execute([st])
        return True

    async def _execute(self, actions: list[Action], ds: DesiredService | None,
                       wanted: Mapping[ObjRef, JsonObj]) -> Outcome:
        try:
            return await self.applier.execute(actions)
        except (WriteRejected, RetryableError) as exc:
            if ds is not None:
                await self._status_after_failure(ds, wanted, str(exc))
            raise

    async def _status_after_failure(self, ds: DesiredService, wanted: Mapping[ObjRef, JsonObj],
                                    failure: str) -> None:
        """After a pass that could not write everything: the GlobalService (if it exists and
        is ours) says why, and carries only the addresses of the Services that exist, so a
        name never points at a VIP whose Service or routing is missing."""
        current = self.observed.for_key(ds.key)
        gs_ref = next(r for r in wanted if r[0] == "GlobalService")
        if gs_ref not in current:
            return
        status = global_service_status(ds, vips_of(current), [], failure)
        st = plan_status(wanted[gs_ref], status, current[gs_ref], _now())
        if st is None:
            return
        try:
            await self.applier.execute([st])
        except MirrorError as exc:
            log.warning("cannot write the status of a failed import", key=ds.key,
                        error=str(exc))

    def _foreign_slices(self, wanted: Mapping[ObjRef, JsonObj],
                        observed: Mapping[ObjRef, JsonObj]) -> dict[ObjRef, JsonObj]:
        """EndpointSlices not written by the mirror that hold a name it wants (looked up in
        the slice watch's cache, so ``plan`` sees the name taken)."""
        found: dict[ObjRef, JsonObj] = {}
        store = self.reflectors["slices"].store if "slices" in self.reflectors else None
        if store is None:
            return found
        for ref in wanted:
            if ref[0] == "EndpointSlice" and ref not in observed:
                obj = store.get((ref[1], ref[2]))
                if obj is not None and not is_ours(obj):
                    found[ref] = obj
        return found

    def _sync_basis(self, key: ServiceKey, views: list[PeerView]) -> tuple[Any, ...]:
        """What ``desired`` and the status read for ``key`` besides its objects and its
        outbound ports (added by the caller), for the sync digest and the settled check
        (``_inputs``): every peer's link, staleness and entry content, the gateway
        addresses and the namespace (all with a deterministic ``repr``)."""
        peers = tuple((v.link, v.stale_reason, _content(v.entries.get(key))) for v in views)
        return (peers, self.gateway_addresses, key[0] in self.namespaces)

    @staticmethod
    def _inputs(basis: tuple[Any, ...], observed: Mapping[ObjRef, JsonObj]) -> tuple[Any, ...]:
        """What a reconcile of a key reads, as a comparable value (besides foreign objects
        holding a wanted name, checked apart): ``basis`` (``_sync_basis``: every peer's
        link, staleness and entry content for the key, not its version; the gateway
        addresses; the namespace) and the resourceVersions of the mirror's own objects of
        the key (no names: a resourceVersion is never shared by two objects, and this is
        kept for every settled key)."""
        return (*basis, tuple(sorted(_rv(obj) for obj in observed.values())))

    def _record_missing(self, key: ServiceKey, missing: dict[str, frozenset[str]]) -> None:
        for cluster, problems in self.problems.items():
            if cluster not in missing and problems.missing_namespaces.pop(key, ""):
                self._status_dirty.add(cluster)
        for cluster in missing:
            problems = self.problems.setdefault(cluster, LinkProblems())
            if key not in problems.missing_namespaces:
                problems.missing_namespaces[key] = key[0]
                self._status_dirty.add(cluster)

    def _record_conflicts(self, key: ServiceKey, clusters: Iterable[str],
                          conflicts: dict[ObjRef, str]) -> None:
        message = "; ".join(conflicts.values())
        involved = set(clusters)
        for cluster, problems in list(self.problems.items()):
            if (cluster not in involved or not conflicts) and problems.conflicts.pop(key, ""):
                self._status_dirty.add(cluster)
        if not conflicts:
            return
        for cluster in involved:
            problems = self.problems.setdefault(cluster, LinkProblems())
            if problems.conflicts.get(key) != message:
                if key not in problems.conflicts:
                    peer = self.peers.get(cluster)
                    if peer is not None:
                        self._event_later(self._link_obj(peer.link), "MirrorConflict",
                                          message, warning=True)
                problems.conflicts[key] = message
                self._status_dirty.add(cluster)
        self.metrics.conflicts.set(sum(len(p.conflicts) for p in self.problems.values()))

    # --- link status and Events -----------------------------------------------------------
    def _link_obj(self, link: LinkInfo) -> JsonObj:
        return {"apiVersion": "isthmus.io/v1alpha1", "kind": "Link",
                "metadata": {"name": link.name, "uid": link.uid}}

    def _event_later(self, regarding: JsonObj, reason: str, note: str,
                     warning: bool = False, action: str = "Mirror") -> None:
        if self._tg is None:
            return
        self._tg.create_task(self.recorder.emit(
            regarding, reason=reason, note=note, action=action, warning=warning))

    def link_status(self, cluster: str) -> dict[str, Any]:
        """Pure given the state: the status the Link of ``cluster`` should carry."""
        peer = self.peers[cluster]
        problems = self.problems.get(cluster, LinkProblems())
        conditions = []
        if peer.up is None:
            conditions.append({"type": "Ready", "status": "Unknown", "reason": "Connecting",
                               "message": "connecting to the peer's catalog"})
        elif peer.up:
            conditions.append({"type": "Ready", "status": "True", "reason": "Connected",
                               "message": "catalog stream open"})
        else:
            conditions.append({"type": "Ready", "status": "False", "reason": "PeerUnreachable",
                               "message": peer.reason[:1000]})
        if peer.synced and peer.up:
            conditions.append({"type": "Synced", "status": "True", "reason": "CatalogSynced",
                               "message": f"catalog version {peer.version}"})
        else:
            reason = "PeerUnreachable" if peer.up is False else "NotSynced"
            stale = " (mirrors kept, marked Stale)" if peer.up is False and peer.entries else ""
            conditions.append({"type": "Synced", "status": "False", "reason": reason,
                               "message": (peer.reason if peer.up is False
                                           else "waiting for the catalog snapshot") + stale})
        failures = {**problems.conflicts, **problems.write_failures}
        if failures:
            detail = "; ".join(f"{k[0]}/{k[1]}: {v}" for k, v in sorted(failures.items())[:5])
            conditions.append({"type": "Conflict", "status": "True",
                               "reason": "WriteFailed" if problems.write_failures
                               else "NameTaken", "message": detail[:2000]})
        else:
            conditions.append({"type": "Conflict", "status": "False", "reason": "NoConflict",
                               "message": ""})
        conditions.extend(import_conditions(peer.admission.refused, problems.invalid))
        if problems.missing_namespaces:
            names = sorted(set(problems.missing_namespaces.values()))
            conditions.append({"type": "NamespacesMissing", "status": "True",
                               "reason": "NamespaceNotFound",
                               "message": "not imported, namespace absent here: "
                               + ", ".join(names[:20])})
        else:
            conditions.append({"type": "NamespacesMissing", "status": "False",
                               "reason": "AllPresent", "message": ""})
        imported = sum(1 for k in peer.entries
                       if k[0] in self.namespaces and k not in problems.conflicts)
        status: dict[str, Any] = {
            "conditions": conditions,
            "importedServices": imported,
            "catalogVersion": peer.version,
        }
        if peer.last_message is not None:
            status["lastSyncTime"] = peer.last_message.strftime("%Y-%m-%dT%H:%M:%SZ")
        return status

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(0.3)
            now_m = time.monotonic()
            for cluster, peer in self.peers.items():
                if peer.last_monotonic:
                    self.metrics.sync_lag.labels(peer=cluster).set(now_m - peer.last_monotonic)
                self.metrics.imported.labels(peer=cluster).set(len(peer.entries))
            dirty, self._status_dirty = self._status_dirty, set()
            for cluster in sorted(dirty):
                if cluster not in self.peers:
                    continue
                try:
                    await self._write_link_status(cluster)
                except kube_errors.KubeError as exc:
                    self.metrics.errors.labels(kind="link_status").inc()
                    log.warning("cannot write Link status", cluster=cluster, error=str(exc))
                    self._status_dirty.add(cluster)

    async def _write_link_status(self, cluster: str) -> None:
        peer = self.peers[cluster]
        status = self.link_status(cluster)
        before = self._link_status_written.get(cluster)
        compare = {k: v for k, v in status.items() if k != "lastSyncTime"}
        if (before is not None and not status_changed(compare, before)
                and status.get("lastSyncTime") == before.get("lastSyncTime")):
            return
        status["conditions"] = with_transition_times(
            status["conditions"], (before or {}).get("conditions") or [], _now())
        body = {"apiVersion": "isthmus.io/v1alpha1", "kind": "Link",
                "metadata": {"name": peer.link.name}, "status": status}
        with contextlib.suppress(kube_errors.NotFoundError):
            await self.api.apply(LINKS, body, field_manager=FIELD_MANAGER, force=True,
                                 subresource="status")
        self._link_status_written[cluster] = status

    async def _ticker(self) -> None:
        grace_check = min(10.0, self.settings.stale_grace_seconds / 4)
        last_resync = time.monotonic()
        while True:
            await asyncio.sleep(grace_check)
            now = time.monotonic()
            if any(p.stale_since is not None and p.entries
                   and now - p.stale_since >= self.settings.stale_grace_seconds
                   for p in self.peers.values()):
                self.queue.put_nowait(ev.OrphanGcTriggered())
            # lastSyncTime advances with heartbeats
            self._status_dirty.update(c for c, p in self.peers.items() if p.up)
            if now - last_resync >= self.settings.resync_seconds:
                last_resync = now
                self.queue.put_nowait(ev.OrphanGcTriggered())

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """For tests and benchmarks: wait until no event or key is pending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue.empty() and self.workers is not None and self.workers.idle.is_set():
                await asyncio.sleep(0.05)
                if self.queue.empty() and self.workers.idle.is_set():
                    return
            await asyncio.sleep(0.02)
        raise TimeoutError("mirror did not become idle")
