"""The reconciler: makes the objects of one service key what the peers' catalogs say.

A pass is ``desired`` → ``plan`` → ``Applier.execute`` (pure, pure, one writer), then the
GlobalService status. The reconciler owns what a pass remembers between passes: the keys
settled (nothing to do since; ``_inputs``), the keys not yet checked this term (their
recorded sync digest may spare the pass, ``resync.py``), the requeue counts of retryable
failures, and the port allocator. It records conflicts, failed writes and missing
namespaces in each Link's ``LinkProblems``, and reports back through callbacks: keys to
reconcile again (``submit``), Links whose status changed (``status_dirty``), Events about a
Link (``notify``) and background tasks (``spawn``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from isthmus.kube.client import JsonObj
from isthmus.kube.store import ObjectStore, unpack
from isthmus.logging import get_logger
from isthmus.mirror.applier import Applier, Outcome, vips_of
from isthmus.mirror.desired import DesiredService, desired, global_service_status, required_ports
from isthmus.mirror.errors import MirrorError, RetryableError, WriteRejected
from isthmus.mirror.link_status import LinkProblems
from isthmus.mirror.metrics import MirrorMetrics
from isthmus.mirror.model import CatalogEntry, ObjRef, PeerView, ServiceKey
from isthmus.mirror.names import is_ours, link_owners, mirror_service_name
from isthmus.mirror.observed_index import ObservedIndex, resource_version
from isthmus.mirror.peers import Notify, PeerCatalogs, Submit
from isthmus.mirror.plan import Action, is_urgent, plan, plan_status
from isthmus.mirror.ports import PortAllocator
from isthmus.mirror.resync import FIELD as SYNCED_FROM
from isthmus.mirror.resync import digest as sync_digest
from isthmus.mirror.resync import unchanged as sync_unchanged
from isthmus.mirror.settings import MirrorSettings

# the controller's logger: its log lines read as they did before it was split
log = get_logger("isthmus.mirror.controller")


def _content(entry: CatalogEntry | None) -> tuple[Any, ...] | None:
    """What ``desired`` reads of an entry: ports, readiness, weight, export age and named
    pods (not its version or change time, which a snapshot after a restart always brings
    anew)."""
    if entry is None:
        return None
    return (entry.ports, entry.ready_endpoints, entry.weight, entry.exported_at_ms,
            entry.headless, entry.pods)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Reconciler:
    """Reconciles service keys (``KeyedWorkers`` calls ``reconcile_guarded``)."""

    def __init__(
        self,
        settings: MirrorSettings,
        metrics: MirrorMetrics,
        applier: Applier,
        observed: ObservedIndex,
        catalogs: PeerCatalogs,
        *,
        foreign: Mapping[ObjRef, bytes],
        namespaces: set[str],
        gateway_addresses: Callable[[], tuple[str, ...]],
        slice_store: Callable[[], ObjectStore | None],
        conflict_refs: dict[ObjRef, ServiceKey],
        problems: dict[str, LinkProblems],
        submit: Submit,
        status_dirty: Callable[[str], None],
        notify: Notify,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        service_imports: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.applier = applier
        self.observed = observed
        self.catalogs = catalogs
        self.foreign = foreign  # others' objects by reference, packed (the watches keep it)
        self.namespaces = namespaces  # the live set (the namespace watch keeps it)
        self._gateway_addresses = gateway_addresses
        self._slice_store = slice_store
        # names a mirror object wanted but another object held: the watches submit the key
        # when the holder goes
        self.conflict_refs = conflict_refs
        self.problems = problems
        self._submit = submit
        self._status_dirty = status_dirty
        self._notify = notify
        self._spawn = spawn
        self._service_imports = service_imports
        self.allocator = PortAllocator(*settings.ports)
        self._requeues: dict[ServiceKey, int] = {}
        # keys whose last reconcile had nothing to do: the inputs it saw (its wanted objects
        # were then exactly its observed ones)
        self.settled: dict[ServiceKey, tuple[Any, ...]] = {}
        self.unverified: set[ServiceKey] = set()
        self._namespaces_frozen: frozenset[str] | None = None

    def namespaces_changed(self) -> None:
        """The namespace watch added or removed one: the next pass reads the set anew."""
        self._namespaces_frozen = None

    async def reconcile_guarded(self, key: ServiceKey, urgent_only: bool = False) -> bool:
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
                self._spawn(self._requeue_later(key, count))
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
        clusters = {c for c, p in self.catalogs.peers.items() if key in p.entries}
        for obj in self.observed.for_key(key).values():
            clusters.update(c for c in link_owners(obj["metadata"].get("labels") or {})
                            if c in self.catalogs.peers)
        return clusters

    def _write_failed(self, key: ServiceKey, message: str) -> None:
        self.metrics.errors.labels(kind="write_failed").inc()
        log.warning("writes for a service failed", key=key, error=message)
        for cluster in self._clusters_of(key):
            problems = self.problems.setdefault(cluster, LinkProblems())
            if key not in problems.write_failures:
                peer = self.catalogs.peers.get(cluster)
                if peer is not None:
                    self._notify(peer.link, "WriteFailed", f"{key[0]}/{key[1]}: {message}",
                                 True)
            problems.write_failures[key] = message
            self._status_dirty(cluster)

    def _clear_problem(self, key: ServiceKey, kind: str) -> None:
        for cluster, problems in self.problems.items():
            bucket: dict[ServiceKey, str] = getattr(problems, kind)
            if bucket.pop(key, None) is not None:
                self._status_dirty(cluster)

    async def reconcile(self, key: ServiceKey, *, urgent_only: bool = False) -> bool:
        """Make the objects of one service key what the peers' catalogs say.

        With ``urgent_only``, when the plan has both urgent writes (the GlobalService and
        the merged mirror Service and slice) and others (pinned objects, status, conflicts),
        only the urgent ones are written and True is returned: the caller runs the full
        reconcile later. Otherwise the full reconcile runs now and False is returned."""
        views = self.catalogs.views()
        observed = self.observed.for_key(key)
        # read now, with what desired() reads below: the awaits that follow may change them
        basis = self._sync_basis(key, views)
        if key in self.unverified:
            self.unverified.discard(key)
            if sync_unchanged((*basis, self.allocator.ports_of(key)), observed):
                self.metrics.resync_unchanged.inc()
                return False  # exactly what a full pass converged on and recorded (resync.py)
        inputs = self._inputs(basis, observed)
        settled = self.settled.get(key)
        if (settled is not None and settled == inputs
                and not any(ref in self.foreign for ref in observed)):
            return False  # nothing it reads changed since it last had nothing to do
        self.settled.pop(key, None)
        needed = required_ports(views, [key])
        ports = self.allocator.ensure(needed)
        if self._namespaces_frozen is None:
            self._namespaces_frozen = frozenset(self.namespaces)
        vip = vips_of(observed).get(mirror_service_name(key[1]))
        want = desired(views, gateway_addresses=self._gateway_addresses(), ports=ports,
                       namespaces=self._namespaces_frozen, keys=[key],
                       import_vips={key: vip} if vip else None,
                       service_imports=basis[-1])
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
        if ds is not None and basis[-1]:
            new_vip = vips_of({r: o for r, o in current.items() if r not in outcome.conflicts}
                              ).get(mirror_service_name(key[1]))
            if new_vip != vip:
                # the merged Service got its ClusterIP in this pass: the ServiceImport's
                # spec.ips follows in the next one
                self._submit([key])
        self._record_missing(key, want.missing_namespaces)
        self._record_conflicts(key, ds.clusters if ds else (), outcome.conflicts)
        for ref in outcome.conflicts:
            self.conflict_refs[ref] = key
        if ds is None:
            self.allocator.release(key)
            return False
        self.allocator.release(key, keep=needed)
        wrote_status = await self._write_status(ds, wanted, current, outcome.conflicts,
                                                (*basis, self.allocator.ports_of(key)))
        if wrote_status is None:
            return False
        if not wrote_status and not actions and not want.missing_namespaces:
            self.settled[key] = inputs
        if outcome.written:
            newest = max((p.entries[key].changed_at_ms for p in self.catalogs.peers.values()
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
        store = self._slice_store()
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
        return (peers, self._gateway_addresses(), key[0] in self.namespaces,
                self._service_imports())

    @staticmethod
    def _inputs(basis: tuple[Any, ...], observed: Mapping[ObjRef, JsonObj]) -> tuple[Any, ...]:
        """What a reconcile of a key reads, as a comparable value (besides foreign objects
        holding a wanted name, checked apart): ``basis`` (``_sync_basis``: every peer's
        link, staleness and entry content for the key, not its version; the gateway
        addresses; the namespace) and the resourceVersions of the mirror's own objects of
        the key (no names: a resourceVersion is never shared by two objects, and this is
        kept for every settled key)."""
        return (*basis, tuple(sorted(resource_version(obj) for obj in observed.values())))

    def _record_missing(self, key: ServiceKey, missing: dict[str, frozenset[str]]) -> None:
        for cluster, problems in self.problems.items():
            if cluster not in missing and problems.missing_namespaces.pop(key, ""):
                self._status_dirty(cluster)
        for cluster in missing:
            problems = self.problems.setdefault(cluster, LinkProblems())
            if key not in problems.missing_namespaces:
                problems.missing_namespaces[key] = key[0]
                self._status_dirty(cluster)

    def _record_conflicts(self, key: ServiceKey, clusters: Iterable[str],
                          conflicts: dict[ObjRef, str]) -> None:
        message = "; ".join(conflicts.values())
        involved = set(clusters)
        for cluster, problems in list(self.problems.items()):
            if (cluster not in involved or not conflicts) and problems.conflicts.pop(key, ""):
                self._status_dirty(cluster)
        if not conflicts:
            return
        for cluster in involved:
            problems = self.problems.setdefault(cluster, LinkProblems())
            if problems.conflicts.get(key) != message:
                if key not in problems.conflicts:
                    peer = self.catalogs.peers.get(cluster)
                    if peer is not None:
                        self._notify(peer.link, "MirrorConflict", message, True)
                problems.conflicts[key] = message
                self._status_dirty(cluster)
        self.metrics.conflicts.set(sum(len(p.conflicts) for p in self.problems.values()))

