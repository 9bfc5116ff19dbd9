"""The linked peers' catalogs: each peer's state machine and the stream that feeds it.

``PeerCatalogs`` owns every ``PeerState``: it follows each linked peer's catalog (one
``catalog_client.follow`` task per peer), applies what arrives (snapshot, delta, heartbeat,
stream down) through the peer's ``PeerAdmission`` (``import_policy``), expires peers
unreachable past the grace period, and records what the catalog boundary rejected and the
policy refused in the Link's ``LinkProblems``.

It reports back only through three callbacks: the service keys whose wanted objects may
have changed (``submit``), the Links whose status must be written again (``status_dirty``)
and the Events to emit about a Link (``notify``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from isthmus.kube.backoff import Backoff
from isthmus.logging import get_logger
from isthmus.mirror.catalog_client import (
    CatalogUpdate,
    Delta,
    Dialer,
    Down,
    Heartbeat,
    ResumePoint,
    Snapshot,
    follow,
)
from isthmus.mirror.catalog_validation import Rejected
from isthmus.mirror.import_policy import ImportPolicy, PeerAdmission
from isthmus.mirror.link_conditions import notices, summary
from isthmus.mirror.link_status import LinkProblems
from isthmus.mirror.metrics import MirrorMetrics
from isthmus.mirror.model import CatalogEntry, LinkInfo, PeerView, ServiceKey
from isthmus.mirror.settings import MirrorSettings

# the controller's logger: its log lines read as they did before it was split
log = get_logger("isthmus.mirror.controller")

Submit = Callable[[Iterable[ServiceKey]], None]
Notify = Callable[[LinkInfo, str, str, bool], None]  # link, reason, note, warning


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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


class PeerCatalogs:
    """Every linked peer's catalog, as followed and admitted (one per peer cluster)."""

    def __init__(
        self,
        settings: MirrorSettings,
        policy: ImportPolicy,
        metrics: MirrorMetrics,
        problems: dict[str, LinkProblems],
        *,
        submit: Submit,
        status_dirty: Callable[[str], None],
        notify: Notify,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.metrics = metrics
        self.problems = problems  # shared with the reconciler: each writes its own fields
        self.peers: dict[str, PeerState] = {}
        self.subscriptions: dict[str, asyncio.Task[None]] = {}
        self.resume_points: dict[str, ResumePoint] = {}
        self._submit = submit
        self._status_dirty = status_dirty
        self._notify = notify

    # --- reading ------------------------------------------------------------------------
    def views(self) -> list[PeerView]:
        return [p.make_view() for _, p in sorted(self.peers.items())]

    def keys(self) -> set[ServiceKey]:
        """Every key some peer's admitted catalog holds."""
        keys: set[ServiceKey] = set()
        for peer in self.peers.values():
            keys.update(peer.entries)
        return keys

    def stale_expired(self, now: float) -> bool:
        """Whether some peer with entries has been unreachable past the grace period."""
        return any(p.stale_since is not None and p.entries
                   and now - p.stale_since >= self.settings.stale_grace_seconds
                   for p in self.peers.values())

    # --- links --------------------------------------------------------------------------
    def _new_peer(self, link: LinkInfo) -> PeerState:
        return PeerState(link, PeerAdmission(self.policy, link.allowed_namespaces))

    def add(self, link: LinkInfo) -> None:
        """A peer known at start-up (before its catalog answers)."""
        self.peers[link.cluster] = self._new_peer(link)

    def recovered(self, cluster: str, entries: Mapping[ServiceKey, CatalogEntry]) -> None:
        """What the peer's mirrors showed at start-up: its catalog until it answers (admitted
        again by today's policy)."""
        self.peers[cluster].admission.replace(entries)
        self.refusals_changed(cluster)

    def link_upserted(self, link: LinkInfo, subscribe: Callable[[LinkInfo], None]) -> bool:
        """Apply a Link's spec to its peer; True when the peer is new or its link changed
        (every key it touches must then be reconciled)."""
        peer = self.peers.get(link.cluster)
        known = peer is not None
        if peer is None:
            peer = self.peers[link.cluster] = self._new_peer(link)
        changed = peer.link != link
        peer.link = link
        peer.view = None
        admitted = peer.admission.reconfigure(self.policy, link.allowed_namespaces)
        if admitted:
            self.refusals_changed(link.cluster)
            self._submit(admitted)
        if changed or link.cluster not in self.subscriptions:
            subscribe(link)
        self._status_dirty(link.cluster)
        return changed or not known

    def link_removed(self, cluster: str) -> set[ServiceKey]:
        """Forget the peer: stop following it and drop its problems. Returns the keys its
        catalog held."""
        task = self.subscriptions.pop(cluster, None)
        if task is not None:
            task.cancel()
        self.resume_points.pop(cluster, None)
        peer = self.peers.pop(cluster, None)
        gone = self.problems.pop(cluster, None)
        for reason, _ns in gone.refused if gone is not None else ():
            self.metrics.refused.labels(peer=cluster, reason=reason).set(0)
        return set(peer.entries) if peer else set()

    def subscribe(self, tg: asyncio.TaskGroup, link: LinkInfo, dialer: Dialer,
                  report: Callable[[CatalogUpdate], None]) -> None:
        """Follow the peer's catalog (in place of any earlier stream to it)."""
        old = self.subscriptions.pop(link.cluster, None)
        if old is not None:
            old.cancel()
        resume = self.resume_points[link.cluster] = ResumePoint()
        self.subscriptions[link.cluster] = tg.create_task(
            follow(link, dialer, report,
                   idle_timeout=self.settings.idle_timeout_seconds,
                   backoff=Backoff(initial=0.2, maximum=self.settings.reconnect_max_seconds),
                   resume=resume)
        )

    # --- what a peer may import (import_policy) -------------------------------------------
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
            self._notify(peer.link, "InvalidCatalogEntries",
                         f"{len(fresh)} entries of {peer.link.cluster}'s catalog rejected: "
                         f"{shown}", True)
        if problems.invalid != before:
            self._status_dirty(peer.link.cluster)

    def refusals_changed(self, cluster: str) -> None:
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
            self._notify(peer.link, reason, note, True)
        for (reason, _ns), _count in problems.refused.items():
            self.metrics.refused.labels(peer=cluster, reason=reason).set(0)
        totals: dict[str, int] = {}
        for (reason, _ns), count in after.items():
            totals[reason] = totals.get(reason, 0) + count
        for reason, count in totals.items():
            self.metrics.refused.labels(peer=cluster, reason=reason).set(count)
        problems.refused = after
        self._status_dirty(cluster)

    # --- the state machine --------------------------------------------------------------
    def expire_stale(self) -> None:
        now = time.monotonic()
        for peer in self.peers.values():
            if peer.stale_since is None or not peer.entries:
                continue
            if now - peer.stale_since >= self.settings.stale_grace_seconds:
                log.warning("stale grace period over, removing mirrors", peer=peer.link.cluster,
                            services=len(peer.entries))
                self._notify(peer.link, "StaleGraceExpired",
                             f"{len(peer.entries)} mirrors of unreachable {peer.link.cluster}"
                             " removed after the grace period", True)
                self._submit(set(peer.entries))
                peer.admission.clear()
                self.refusals_changed(peer.link.cluster)
                peer.view = None
                # what it had is gone here: when it answers again, ask for all of it
                resume = self.resume_points.get(peer.link.cluster)
                if resume is not None:
                    resume.forget()

    def update(self, update: CatalogUpdate) -> None:
        """Apply what the peer's catalog stream brought."""
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
                self._notify(peer.link, "PeerUnreachable",
                             f"catalog of {update.cluster}: {update.reason}", True)
                self._submit(set(peer.entries))
            elif peer.reason != update.reason:
                peer.reason = update.reason
            self._status_dirty(update.cluster)
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
            self.refusals_changed(update.cluster)
            peer.view = None
            if not peer.synced:
                self._notify(peer.link, "CatalogSynced",
                             f"catalog of {update.cluster} synced at version "
                             f"{update.version} ({len(update.entries)} services)", False)
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
            self.refusals_changed(update.cluster)
            if not peer.synced:
                self._notify(peer.link, "CatalogSynced",
                             f"catalog of {update.cluster} resumed at {update.version}", False)
            peer.synced = True
            peer.epoch, peer.version = update.epoch, update.version
        elif isinstance(update, Heartbeat):
            peer.version = max(peer.version, update.version)
        self.metrics.catalog_version.labels(peer=update.cluster).set(peer.version)
        if was_down:
            keys |= set(peer.entries)
        self._status_dirty(update.cluster)
        self._submit(keys)
