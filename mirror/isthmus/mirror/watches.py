"""The watches: what the mirror sees of its own cluster, and the bookkeeping of its writes.

``Watches`` owns one reflector per watched resource (Links, Services, EndpointSlices,
GlobalServices, Namespaces) and the caches their events fill: the Links, the export
catalog (exported Services and their slices), the mirror's own objects (``ObservedIndex``),
others' objects holding a name a mirror wants, the namespaces and the gateway's ready
addresses. It also keeps the mirror's own writes apart from others' changes (writes in
flight, the versions it wrote, what it deleted), so a write echoing back asks for nothing.

It reports back only through typed events (``report``: Links upserted or removed, mirror
objects to repair, namespaces appeared, gateway addresses changed), a callback when the set
of namespaces changes (``namespaces_changed``) and one for an Event about an export
(``export_warning``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from isthmus.exports import (
    ExportedService,
    build_exports,
    is_exported,
    service_exports_by_key,
)
from isthmus.kube.backoff import Backoff
from isthmus.kube.client import JsonObj, KubeApi
from isthmus.kube.reflector import Reflector, WatchSettings, drop_managed_fields
from isthmus.kube.resources import (
    ENDPOINTSLICES,
    GLOBALSERVICES,
    LINKS,
    NAMESPACES,
    SERVICEEXPORTS,
    SERVICEIMPORTS,
    SERVICES,
    Resource,
)
from isthmus.kube.store import ObjectStore, key_of, pack, unpack
from isthmus.labels import MIRROR_LABEL, SLICE_SERVICE_LABEL
from isthmus.logging import get_logger
from isthmus.mirror import events as ev
from isthmus.mirror.errors import MirrorError
from isthmus.mirror.export_catalog import ExportCatalog
from isthmus.mirror.metrics import MirrorMetrics
from isthmus.mirror.model import LinkInfo, ObjRef, ServiceKey
from isthmus.mirror.names import GATEWAY_SERVICE, is_ours
from isthmus.mirror.observed_index import ObservedIndex, resource_version
from isthmus.mirror.plan import ref_of
from isthmus.mirror.projection import SHAPES, project
from isthmus.mirror.settings import MirrorSettings

# the controller's logger: its log lines read as they did before it was split
log = get_logger("isthmus.mirror.controller")


# The kinds whose caches are kept packed (isthmus.kube.store), and their reflectors.
_PACKED = {"Service": "services", "EndpointSlice": "slices", "GlobalService": "globalservices"}

Handler = Callable[[str, JsonObj], None]


class Watches:
    """The reflectors of one cluster, the caches they fill and the mirror's own writes."""

    def __init__(
        self,
        api: KubeApi,
        settings: MirrorSettings,
        metrics: MirrorMetrics,
        *,
        report: Callable[[ev.MirrorEvent], None],
        namespaces_changed: Callable[[], None],
        export_warning: Callable[[JsonObj, str, str], None],
        export_status_dirty: Callable[[ServiceKey], None] = lambda key: None,
    ) -> None:
        self.api = api
        self.settings = settings
        self.metrics = metrics
        self._report = report
        self._namespaces_changed = namespaces_changed
        self._export_warning = export_warning
        self._export_status_dirty = export_status_dirty
        self.catalog = ExportCatalog(history=settings.catalog_history)
        self.links: dict[str, LinkInfo] = {}
        self.observed = ObservedIndex()
        self.foreign: dict[ObjRef, bytes] = {}  # packed, as in the ObservedIndex
        # refs of others' objects a mirror wanted the name of (the reconciler records them)
        self.conflict_refs: dict[ObjRef, ServiceKey] = {}
        self.namespaces: set[str] = set()
        self.gateway_addresses: tuple[str, ...] = ()
        self.watch_settings = WatchSettings(
            timeout_seconds=(max(1, settings.watch_timeout_seconds // 2),
                             settings.watch_timeout_seconds),
            backoff=Backoff(initial=0.2, maximum=5.0),
        )
        self.reflectors: dict[str, Reflector] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._inflight: set[ObjRef] = set()
        self._own_rv: dict[ObjRef, int] = {}
        self._export_slices: dict[ServiceKey, dict[str, bytes]] = {}  # packed, shared
        self._weight_problems: dict[ServiceKey, str] = {}  # reported once per distinct value
        self._pod_problems: dict[ServiceKey, tuple[str, ...]] = {}  # likewise
        # per watched resource: what it is, whether its cache is slimmed, its callback
        self._specs: dict[str, tuple[Resource, bool, Handler]] = {
            "links": (LINKS, False, self._on_link),
            "services": (SERVICES, True, self._on_service),
            "slices": (ENDPOINTSLICES, True, self._on_slice),
            "globalservices": (GLOBALSERVICES, True, self._on_mirror_object),
            "namespaces": (NAMESPACES, True, self._on_namespace),
            # optional: the MCS CRDs may not be installed (then there are none)
            "serviceexports": (SERVICEEXPORTS, True, self._on_service_export),
            "serviceimports": (SERVICEIMPORTS, True, self._on_mirror_object),
        }

    # --- running ------------------------------------------------------------------------
    def start(self, tg: asyncio.TaskGroup) -> None:
        """Start one reflector per watched resource, consumed in ``tg``."""
        self._tg = tg
        for name, (res, slim, handler) in self._specs.items():
            # The caches hold the whole cluster: keep only what the mirror reads.
            reflector = Reflector(self.api, res, settings=self.watch_settings,
                                  transform=project if slim else drop_managed_fields,
                                  shape=SHAPES[res.kind] if slim else None,
                                  packed=res.kind in _PACKED,
                                  optional=res in (SERVICEEXPORTS, SERVICEIMPORTS),
                                  absent_retry=self.settings.resync_seconds / 10)
            self.reflectors[name] = reflector
            self._watchers[name] = tg.create_task(self._consume(reflector, handler))

    async def synced(self) -> None:
        """Wait until every reflector has listed its resource once."""
        await asyncio.gather(*(r.synced.wait() for r in self.reflectors.values()))

    def service_imports(self) -> bool:
        """Whether ServiceImports are served (the MCS CRD is installed)."""
        reflector = self.reflectors.get("serviceimports")
        return reflector is not None and reflector.served is True

    async def _consume(self, reflector: Reflector, handler: Handler) -> None:
        async for kind, obj in reflector.events():
            if obj is None:
                if kind == "SYNCED" and reflector.resource is SERVICEIMPORTS:
                    # served now, or no longer: every import gains or loses its ServiceImport
                    self._report(ev.OrphanGcTriggered())
                continue
            try:
                handler(kind, obj)
            except (MirrorError, ValueError, KeyError) as exc:
                self.metrics.errors.labels(kind="watch_handler").inc()
                log.warning("watch event not handled", error=str(exc), kind=kind)

    def pause(self) -> None:
        """Stop consuming watches, keeping each reflector's cache and resourceVersion (the
        next ``resume`` continues from there: a test hook for 410 Gone)."""
        for task in self._watchers.values():
            task.cancel()

    def resume(self) -> None:
        assert self._tg is not None
        for name, reflector in self.reflectors.items():
            self._watchers[name] = self._tg.create_task(
                self._consume(reflector, self._specs[name][2]))

    def slice_store(self) -> ObjectStore | None:
        return self.reflectors["slices"].store if "slices" in self.reflectors else None

    # --- watch callbacks ----------------------------------------------------------------
    def _on_link(self, kind: str, obj: JsonObj) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            old = self.links.pop(name, None)
            if old is not None:
                self._report(ev.LinkRemoved(old.name, old.uid, old.cluster))
            return
        try:
            link = LinkInfo.from_object(obj)
        except ValueError as exc:
            log.warning("ignoring invalid Link", name=name, error=str(exc))
            return
        if self.links.get(name) != link:
            self.links[name] = link
            self._report(ev.LinkUpserted(link))

    def service(self, key: ServiceKey) -> JsonObj | None:
        reflector = self.reflectors.get("services")
        return reflector.store.get(key) if reflector is not None else None

    def service_export(self, key: ServiceKey) -> JsonObj | None:
        reflector = self.reflectors.get("serviceexports")
        return reflector.store.get(key) if reflector is not None else None

    def service_export_keys(self) -> list[ServiceKey]:
        reflector = self.reflectors.get("serviceexports")
        return [key_of(o) for o in reflector.store.values()] if reflector else []

    def _export_changed(self, key: ServiceKey) -> None:
        svc = self.reflectors["services"].store.get(key)
        slices = [unpack(raw) for raw in self._export_slices.get(key, {}).values()]
        se = self.service_export(key)
        by_export = service_exports_by_key([se] if se is not None else [])
        exported = (build_exports([svc], slices, by_export,
                                  self.settings.max_pods_per_service).get(key)
                    if svc is not None else None)
        self.catalog.set(key, exported)
        self._report_refused_pods(key, svc, exported)
        if se is not None:
            self._export_status_dirty(key)
        problem = exported.weight_problem if exported is not None else None
        if problem is None:
            self._weight_problems.pop(key, None)
        elif svc is not None and self._weight_problems.get(key) != problem:
            self._weight_problems[key] = problem
            log.warning("invalid export weight", namespace=key[0], name=key[1], problem=problem)
            meta = svc["metadata"]
            self._export_warning({"apiVersion": "v1", "kind": "Service", "metadata": {
                "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")}},
                "InvalidWeight", problem)
        self.metrics.exported.set(len(self.catalog.entries))
        self.metrics.local_catalog_version.set(self.catalog.version)

    def _report_refused_pods(self, key: ServiceKey, svc: JsonObj | None,
                             exported: ExportedService | None) -> None:
        """A Warning Event on the Service when the pods refused a name change (once per
        distinct list), and the metric."""
        refused = exported.pods.refused if exported is not None else ()
        if not refused:
            self._pod_problems.pop(key, None)
        elif svc is not None and self._pod_problems.get(key) != refused:
            self._pod_problems[key] = refused
            message = f"{len(refused)} pod(s) get no per-pod name: " + "; ".join(refused)
            log.warning("headless pods refused", namespace=key[0], name=key[1],
                        refused=len(refused), first=refused[0])
            meta = svc["metadata"]
            self._export_warning({"apiVersion": "v1", "kind": "Service", "metadata": {
                "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")}},
                "HeadlessPodsRefused", message[:1000])
        self.metrics.refused_pods.set(sum(len(v) for v in self._pod_problems.values()))

    def _on_service(self, kind: str, obj: JsonObj) -> None:
        """Every Service: exported ones feed the catalog, mirrors the observed index, and
        any other is remembered so a mirror never takes its name."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        if (is_exported(obj) or key in self.catalog.entries
                or self.service_export(key) is not None):
            self._export_changed(key)
        self._on_mirror_object(kind, obj)

    def _on_service_export(self, kind: str, obj: JsonObj) -> None:
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        self._export_changed(key)
        self._export_status_dirty(key)  # also when deleted: the writer forgets it

    def _on_slice(self, kind: str, obj: JsonObj) -> None:
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        if labels.get(MIRROR_LABEL) == "true" or (kind == "DELETED" and is_ours(obj)):
            self._on_mirror_object(kind, obj)
            return
        if kind == "DELETED":
            waiting = self.conflict_refs.pop(ref_of(obj), None)
            if waiting is not None:  # a mirror wanted this slice's name: take it now
                self._report(ev.MirrorObjectChanged(waiting))
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
            self.gateway_changed()
        if key in self.catalog.entries or self.service_export(key) is not None or is_exported(
            self.reflectors["services"].store.get(key) or {}
        ):
            self._export_changed(key)

    def gateway_changed(self) -> None:
        """Recompute the gateway's ready addresses from its slices; report a change."""
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
            self._report(ev.GatewayEndpointsChanged())

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
                waiting = self.conflict_refs.pop(ref, None)
                if waiting is not None:  # a mirror wanted this name: take it now
                    self._report(ev.MirrorObjectChanged(waiting))
            else:
                self.foreign[ref] = self._kept(obj)
            if was_ours is not None:
                self._report(ev.MirrorObjectChanged(was_ours))
            return
        self.foreign.pop(ref, None)
        if kind == "DELETED":
            key = self.observed.remove(ref)
            own = self._own_rv.pop(ref, None)
            if key is not None and own != -1:
                self._report(ev.MirrorObjectChanged(key))
            waiting = self.conflict_refs.pop(ref, None)
            if waiting is not None and waiting != key:
                # another mirror's object held the name (e.g. a name from an older naming
                # scheme being removed): the key that wanted it takes it now
                self._report(ev.MirrorObjectChanged(waiting))
            return
        key = self.observed.put(obj, self._kept(obj))
        # Our own write echoing back (in flight, or the version we wrote) needs no repair;
        # once it is back, its version need not be remembered (one entry per object less).
        if self._own_rv.get(ref) == resource_version(obj):
            del self._own_rv[ref]
        elif key is not None and ref not in self._inflight:
            self._report(ev.MirrorObjectChanged(key))

    def _on_namespace(self, kind: str, obj: JsonObj) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self.namespaces.discard(name)
            self._namespaces_changed()
        elif name not in self.namespaces:
            self.namespaces.add(name)
            self._namespaces_changed()
            self._report(ev.NamespaceAppeared(name))

    # --- the mirror's own writes (the Applier's callbacks) -------------------------------
    def writing(self, ref: ObjRef, busy: bool) -> None:
        if busy:
            self._inflight.add(ref)
        else:
            self._inflight.discard(ref)

    def written(self, obj: JsonObj) -> None:
        ref = ref_of(obj)
        seen = self.observed.get(ref)
        seen_rv = resource_version(seen) if seen is not None else -1
        if seen_rv > resource_version(obj):
            # changed by someone else while we wrote it: look again
            key = self.observed.refs.get(ref)
            if key is not None:
                self._report(ev.MirrorObjectChanged(key))
        if seen_rv < resource_version(obj):
            # remembered until its watch event echoes it; an echo that came first (the
            # write was in flight, so it asked for nothing) leaves nothing to remember
            self._own_rv[ref] = resource_version(obj)
        self.observed.put(obj)

    def deleted(self, ref: ObjRef) -> None:
        if self.observed.remove(ref) is not None:  # else its DELETED event came first
            self._own_rv[ref] = -1
