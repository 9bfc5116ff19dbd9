"""The mirror controller: wires the mirror's parts together and runs them while it leads.

Shape (as Linkerd's service mirror; docs/mirror.md): watch consumers and catalog clients only
update caches and enqueue typed events (``isthmus.mirror.events``); one dispatcher hands each
event to the one handler of its type, which changes state and marks *dirty service keys*;
``KeyedWorkers`` reconcile keys in parallel (bounded), one task per key at a time, so each
object sees its changes in order.

This module owns leadership (the Lease), the dispatcher, the start-up recovery (ports and
the catalogs the mirrors show), and two loops: the Link status writer and the ticker (stale
expiry, periodic resync). The rest has a module of its own:

- ``watches.Watches``: the reflectors and the caches they fill (the Links, the export
  catalog, the mirror's own objects, others' objects holding a name, the namespaces, the
  gateway's addresses) and the bookkeeping of the mirror's own writes;
- ``peers.PeerCatalogs``: each linked peer's catalog stream and state machine;
- ``reconciler.Reconciler``: one pass over a key, ``desired`` → ``plan`` →
  ``Applier.execute`` (pure, pure, one writer), and what passes remember;
- ``workers.KeyedWorkers``: the per-key worker pool;
- ``link_status.link_status``: pure, the status a Link carries;
- ``observed_index.ObservedIndex``: the mirror's own objects by service key.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from isthmus.kube import errors as kube_errors
from isthmus.kube.backoff import Backoff
from isthmus.kube.client import JsonObj, KubeApi
from isthmus.kube.reflector import Reflector
from isthmus.kube.resources import LINKS
from isthmus.labels import DEFAULT_WEIGHT
from isthmus.logging import get_logger
from isthmus.mirror import catalog_endpoint, cluster_property
from isthmus.mirror import events as ev
from isthmus.mirror.applier import Applier
from isthmus.mirror.catalog_client import CatalogUpdate, Dialer, DirectDialer
from isthmus.mirror.catalog_server import CatalogServer
from isthmus.mirror.certs import MirrorCertificates
from isthmus.mirror.desired import PortKey
from isthmus.mirror.errors import ClusterPropertyConflict, MirrorError
from isthmus.mirror.gateway_dialer import GatewayDialer
from isthmus.mirror.import_policy import ImportPolicy
from isthmus.mirror.leader import LeaderElector
from isthmus.mirror.link_status import LinkProblems, link_status
from isthmus.mirror.metrics import MirrorMetrics, serve_metrics
from isthmus.mirror.model import CatalogEntry, LinkInfo, PortSpec, ServiceKey
from isthmus.mirror.names import FIELD_MANAGER
from isthmus.mirror.peers import PeerCatalogs
from isthmus.mirror.plan import status_changed, with_transition_times
from isthmus.mirror.ports import PortAllocator, recovered_ports
from isthmus.mirror.projection import SHAPES, project
from isthmus.mirror.reconciler import Reconciler
from isthmus.mirror.recorder import EventRecorder
from isthmus.mirror.service_export_writer import ServiceExportWriter
from isthmus.mirror.settings import MirrorSettings
from isthmus.mirror.watches import Watches
from isthmus.mirror.workers import KeyedWorkers

log = get_logger("isthmus.mirror.controller")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
        self.queue: asyncio.Queue[ev.MirrorEvent] = asyncio.Queue()
        self.watches = Watches(
            api, settings, self.metrics, report=self.queue.put_nowait,
            namespaces_changed=self._namespaces_changed,
            export_warning=lambda regarding, reason, note: self._event_later(
                regarding, reason, note, warning=True, action="Export"),
            export_status_dirty=self._mark_export_status,
        )
        self.catalog = self.watches.catalog  # the same catalog: the watches fill it
        self.policy = ImportPolicy.from_settings(settings)
        self.problems: dict[str, LinkProblems] = {}
        self._status_dirty: set[str] = set()
        self.catalogs = PeerCatalogs(
            settings, self.policy, self.metrics, self.problems,
            submit=self._submit, status_dirty=self._mark_status, notify=self._notify,
        )
        self.peers = self.catalogs.peers  # the same dict: the catalogs own it
        watches_ = self.watches
        self.export_status = ServiceExportWriter(
            api, self.metrics,
            cluster=lambda: self.certs.cluster,
            service_export=watches_.service_export,
            service=watches_.service,
            exported=lambda key: (e.entry if (e := watches_.catalog.entries.get(key)) else None),
            peers=lambda key: {c: p.entries[key] for c, p in self.peers.items()
                               if key in p.entries},
            event=lambda regarding, reason, note: self._event_later(
                regarding, reason, note, warning=True, action="Export"),
        )
        self.ready = asyncio.Event()
        self.catalog_port = 0
        self.metrics_port = 0
        self.recorder = EventRecorder(api, self.identity)
        api.limit_in_flight(settings.api_in_flight)
        self.applier = Applier(
            api, self.metrics, attempts=settings.write_attempts,
            on_written=self.watches.written, on_deleted=self.watches.deleted,
            verify_absent=False, on_writing=self.watches.writing, project=project, shapes=SHAPES,
        )
        self.elector: LeaderElector | None = None
        watches = self.watches
        self.reconciler = Reconciler(
            settings, self.metrics, self.applier, watches.observed, self.catalogs,
            foreign=watches.foreign, namespaces=watches.namespaces,
            gateway_addresses=lambda: watches.gateway_addresses,
            slice_store=watches.slice_store, conflict_refs=watches.conflict_refs,
            problems=self.problems, submit=self._submit, status_dirty=self._mark_status,
            notify=self._notify, spawn=self._spawn, service_imports=watches.service_imports,
        )
        self._link_status_written: dict[str, dict[str, Any]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self.workers: KeyedWorkers | None = None
        self._started = False
        # one handler per event type (as Linkerd's cluster watcher)
        self._handlers: dict[type[ev.MirrorEvent], Callable[[Any], None]] = {
            ev.LinkUpserted: self._link_upserted,
            ev.LinkRemoved: self._link_removed,
            ev.PeerCatalogUpdated: self._peer_catalog_updated,
            ev.MirrorObjectChanged: self._mirror_object_changed,
            ev.NamespaceAppeared: self._namespace_appeared,
            ev.GatewayEndpointsChanged: self._gateway_endpoints_changed,
            ev.OrphanGcTriggered: self._orphan_gc_triggered,
        }

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
    def allocator(self) -> PortAllocator:
        return self.reconciler.allocator

    @property
    def reflectors(self) -> dict[str, Reflector]:
        return self.watches.reflectors

    def pause_watches(self) -> None:
        """Stop consuming watches, keeping each reflector's cache and resourceVersion (the
        next ``resume_watches`` continues from there: a test hook for 410 Gone)."""
        self.watches.pause()

    def resume_watches(self) -> None:
        self.watches.resume()

    @property
    def leading(self) -> bool:
        return self._started

    async def lead(self) -> None:
        self.metrics.leader.set(1)
        self.reconciler.settled.clear()  # a new term starts from what it sees, not from memory
        await self.certs.start()
        server: CatalogServer | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self.workers = KeyedWorkers(tg, self.reconciler.reconcile_guarded,
                                            self.settings.concurrency)
                workers = self.workers
                # read when scraped: a value set on submit would stay stale once work drains
                self.metrics.queue_depth.set_function(lambda: workers.pending)
                self.watches.start(tg)
                await self.watches.synced()
                self._seed()
                # keys not yet checked in this term: the first check may find them unchanged
                self.reconciler.unverified = set(self.watches.observed.by_key)
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
                for link in list(self.watches.links.values()):
                    self._subscribe(link)
                self.queue.put_nowait(ev.OrphanGcTriggered())
                tg.create_task(self._dispatch())
                tg.create_task(self._status_loop())
                self.export_status.forget()
                self.export_status.dirty.update(self.watches.service_export_keys())
                tg.create_task(self.export_status.run())
                tg.create_task(self._ticker())
                tg.create_task(self._publish_cluster_property())
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
        return any(link.cluster == cluster for link in self.watches.links.values())

    def dialer(self) -> Dialer:
        if self._dialer is None:
            if self.settings.catalog_via == "gateway":
                self._dialer = self._own_dialer = GatewayDialer(
                    self.certs.channel_credentials, self.certs.tls_material)
            else:
                self._dialer = DirectDialer(self.certs.channel_credentials)
        return self._dialer

    # --- start-up -----------------------------------------------------------------------
    def _seed(self) -> None:
        """Recover port allocations and, per existing link, the catalog its mirrors show,
        so a restart changes nothing until each peer answers (then its snapshot rules)."""
        by_cluster = {link.cluster: link for link in self.watches.links.values()}
        for link in by_cluster.values():
            self.catalogs.add(link)
        shown: dict[str, dict[ServiceKey, CatalogEntry]] = {c: {} for c in self.peers}
        recovered: dict[PortKey, int] = {}
        # one GlobalService decoded at a time: a list of 10 000 would only feed the GC
        for gs in self.watches.observed.objects("GlobalService"):
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
                    pods = tuple(sorted(str(p["hostname"]) for p in endpoint.get("pods") or []))
                    shown[peer.link.cluster][key] = CatalogEntry(
                        key[0], key[1], tuple(sorted(specs)),
                        int(endpoint.get("readyEndpoints") or 0),
                        weight=int(endpoint.get("weight", DEFAULT_WEIGHT)),
                        exported_at_ms=int(endpoint.get("exportedAtMs") or 0),
                        headless=bool(pods), pods=pods)
        # what was imported before is admitted again by today's policy: an import it now
        # refuses is removed by the start-up pass
        for cluster, entries in shown.items():
            self.catalogs.recovered(cluster, entries)
        self.reconciler.allocator = PortAllocator(*self.settings.ports, recovered)
        self.watches.gateway_changed()

    # --- subscriptions ------------------------------------------------------------------
    def _subscribe(self, link: LinkInfo) -> None:
        assert self._tg is not None

        def report(update: CatalogUpdate) -> None:
            self.queue.put_nowait(ev.PeerCatalogUpdated(update))

        self.catalogs.subscribe(self._tg, link, self.dialer(), report)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._tg is not None
        self._tg.create_task(coro)

    def _namespaces_changed(self) -> None:
        # not bound at once: the reconciler is made after the watches
        self.reconciler.namespaces_changed()

    def _mark_export_status(self, key: ServiceKey) -> None:
        # not bound at once: the writer is made after the watches
        self.export_status.mark(key)

    def _mark_status(self, cluster: str) -> None:
        # not a bound ``set.add``: the status loop swaps the set for a new one
        self._status_dirty.add(cluster)

    def _notify(self, link: LinkInfo, reason: str, note: str, warning: bool) -> None:
        self._event_later(self._link_obj(link), reason, note, warning=warning)

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
        """Handle one event: each event type has one handler (``_handlers``)."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _link_upserted(self, event: ev.LinkUpserted) -> None:
        link = event.link
        if self.catalogs.link_upserted(link, self._subscribe):
            self._submit(set(self.peers[link.cluster].entries)
                         | self.watches.observed.keys_of_cluster(link.cluster))
        # else: a Link the start-up recovery already knew as it is (``_seed``); the
        # start-up pass submits every key, so scanning every cached object for its
        # keys again would only repeat it

    def _link_removed(self, event: ev.LinkRemoved) -> None:
        others = sorted((lk for lk in self.watches.links.values() if lk.cluster == event.cluster),
                        key=lambda lk: lk.name)
        if others:
            # Another Link names the same cluster: the peer follows it, not the removed
            # one's address (it may be the one the peer was watching).
            peer = self.peers.get(event.cluster)
            if peer is not None and peer.link.uid == event.uid:
                self.handle(ev.LinkUpserted(others[0]))
            return
        keys = self.catalogs.link_removed(event.cluster)
        self._link_status_written.pop(event.cluster, None)
        self._submit(keys | self.watches.observed.keys_of_cluster(event.cluster))
        log.info("link removed", cluster=event.cluster, uid=event.uid)

    def _peer_catalog_updated(self, event: ev.PeerCatalogUpdated) -> None:
        self.catalogs.update(event.update)
        # another cluster's export of the same name may conflict with ours now
        self.export_status.dirty.update(self.watches.service_export_keys())

    def _mirror_object_changed(self, event: ev.MirrorObjectChanged) -> None:
        self._submit([event.key])

    def _namespace_appeared(self, event: ev.NamespaceAppeared) -> None:
        self._submit({k for p in self.peers.values() for k in p.entries
                      if k[0] == event.namespace})

    def _gateway_endpoints_changed(self, event: ev.GatewayEndpointsChanged) -> None:
        self._submit(self._all_keys())

    def _orphan_gc_triggered(self, event: ev.OrphanGcTriggered) -> None:
        self.catalogs.expire_stale()
        self._submit(self._all_keys())

    def _all_keys(self) -> set[ServiceKey]:
        keys = set(self.watches.observed.by_key)
        keys.update(self.catalogs.keys())
        return keys

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
        """The status the Link of ``cluster`` should carry now (``link_status.link_status``)."""
        peer = self.peers[cluster]
        return link_status(
            up=peer.up, synced=peer.synced, reason=peer.reason, version=peer.version,
            last_message=peer.last_message, entries=peer.entries.keys(),
            refused=peer.admission.refused,
            problems=self.problems.get(cluster, LinkProblems()),
            namespaces=self.watches.namespaces,
        )

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

    async def _publish_cluster_property(self) -> None:
        """The ClusterProperty cluster.clusterset.k8s.io, at start and every resync."""
        reported = ""
        while True:
            try:
                outcome = await cluster_property.publish(self.api, self.certs.cluster)
            except ClusterPropertyConflict as exc:
                if str(exc) != reported:
                    reported = str(exc)
                    log.error("cluster property conflict", error=reported)
                    self._event_later(
                        {"apiVersion": "about.k8s.io/v1alpha1", "kind": "ClusterProperty",
                         "metadata": {"name": cluster_property.NAME}},
                        "ClusterPropertyConflict", reported, warning=True, action="Publish")
            except kube_errors.KubeError as exc:
                self.metrics.errors.labels(kind="cluster_property").inc()
                log.warning("cannot publish the cluster property", error=str(exc))
            else:
                if outcome == "no-crd" and reported != outcome:
                    log.info("no ClusterProperty CRD: the cluster name is not published")
                reported = outcome
            await asyncio.sleep(self.settings.resync_seconds)

    async def _ticker(self) -> None:
        grace_check = min(10.0, self.settings.stale_grace_seconds / 4)
        last_resync = time.monotonic()
        while True:
            await asyncio.sleep(grace_check)
            now = time.monotonic()
            if self.catalogs.stale_expired(now):
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
