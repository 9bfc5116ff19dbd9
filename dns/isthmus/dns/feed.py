"""Watch glue: GlobalService events (and the mirror Services' ClusterIPs, see
``isthmus.dns.mirror_vips``) from reflectors -> a new snapshot in the holder.

Kept small on purpose: everything Kubernetes-specific is in ``isthmus.kube.reflector``;
this only validates objects (one by one: a bad object is logged and skipped, keeping its
last good version, and never takes the others down) and rebuilds the snapshot.

Bursts coalesce: events go into a dict and set a flag; the rebuild runs when the event
stream has nothing more ready, so a re-list of 1 000 objects is one rebuild, while a lone
event is rebuilt at once (well inside the 100 ms budget from event to answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pydantic

from isthmus.api.models import GlobalService
from isthmus.dns.mirror_vips import SELECTOR, VipKey, mirror_vips, slim
from isthmus.dns.snapshot import SnapshotHolder
from isthmus.logging import get_logger

if TYPE_CHECKING:
    from isthmus.kube.client import KubeApi

log = get_logger("isthmus.dns.feed")

Key = tuple[str, str]


class EventSource(Protocol):
    """What we need of ``isthmus.kube.reflector.Reflector``."""

    @property
    def store(self) -> Mapping[Key, dict[str, Any]]: ...

    def events(self) -> AsyncIterator[tuple[str, dict[str, Any] | None]]: ...


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


class Feed:
    """Applies reflector events to a set of validated GlobalServices, the mirror Services'
    VIPs, and the holder."""

    def __init__(self, holder: SnapshotHolder) -> None:
        self.holder = holder
        self.services: dict[Key, GlobalService] = {}
        # Service (namespace, name) -> the name it lends its VIPs to, and the VIPs
        self.mirrors: dict[Key, tuple[VipKey, tuple[str, ...]]] = {}
        self.dirty = asyncio.Event()
        self.synced = asyncio.Event()  # every source has listed once
        self._unsynced = 1
        self._reported: set[str] = set()

    def _accept(self, obj: Mapping[str, Any]) -> None:
        key = _key(obj)
        try:
            self.services[key] = GlobalService.model_validate(obj)
        except pydantic.ValidationError as exc:
            log.warning("globalservice_rejected", namespace=key[0], name=key[1],
                        errors=exc.error_count(), first=exc.errors()[0]["msg"])

    def apply(self, kind: str, obj: Mapping[str, Any] | None,
              store: Mapping[Key, Mapping[str, Any]]) -> None:
        """One event. SYNCED replaces everything with the reflector's store."""
        if kind == "SYNCED":
            old = self.services
            self.services = {}
            for key, item in store.items():
                self._accept(item)
                if key not in self.services and key in old:
                    self.services[key] = old[key]  # keep the last good version
            self._source_synced()
        elif obj is None:
            return
        elif kind == "DELETED":
            self.services.pop(_key(obj), None)
        else:
            self._accept(obj)
        self.dirty.set()

    def apply_mirror(self, kind: str, obj: Mapping[str, Any] | None,
                     store: Mapping[Key, Mapping[str, Any]]) -> None:
        """One event of the mirror Services' reflector."""
        if kind == "SYNCED":
            self.mirrors = {}
            for key, item in store.items():
                found = mirror_vips(item)
                if found is not None:
                    self.mirrors[key] = found
            self._source_synced()
        elif obj is None:
            return
        else:
            found = None if kind == "DELETED" else mirror_vips(obj)
            if found is None:
                if self.mirrors.pop(_key(obj), None) is None:
                    return  # not one that lends a VIP: nothing changes
            elif self.mirrors.get(_key(obj)) == found:
                return  # a change that leaves its VIPs alone (a label, an endpoint)
            else:
                self.mirrors[_key(obj)] = found
        self.dirty.set()

    def _source_synced(self) -> None:
        if not self.synced.is_set():
            self._unsynced -= 1
            if self._unsynced <= 0:
                self.synced.set()

    def vips(self) -> dict[VipKey, tuple[str, ...]]:
        # Two Services claiming one name (only possible by hand): the first by name wins.
        out: dict[VipKey, tuple[str, ...]] = {}
        for _, (key, ips) in sorted(self.mirrors.items()):
            out.setdefault(key, ips)
        return out

    def rebuild(self) -> None:
        self.dirty.clear()
        snapshot = self.holder.update(self.services.values(), self.vips())
        # Each problem is logged when it appears, not again on every rebuild after it.
        for problem in snapshot.rejected:
            if problem not in self._reported:
                log.warning("globalservice_not_served", problem=problem)
        self._reported = set(snapshot.rejected)
        log.debug("dns_snapshot", generation=snapshot.generation, names=len(snapshot.names),
                  services=snapshot.services)

    async def run(self, source: EventSource, mirrors: EventSource | None = None) -> None:
        """Consume ``source`` (GlobalServices) and ``mirrors`` (mirror Services, optional)
        forever; cancel to stop. ``synced`` is set once both have listed."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._rebuilder())
            if mirrors is not None:
                self._unsynced += 1
                tasks.create_task(self._follow(mirrors, self.apply_mirror))
            await self._follow(source, self.apply)

    @staticmethod
    async def _follow(source: EventSource, apply: Any) -> None:
        async for kind, obj in source.events():
            apply(kind, obj, source.store)

    async def _rebuilder(self) -> None:
        while True:
            await self.dirty.wait()
            # Let every event that is already queued land first (coalescing), then build.
            await asyncio.sleep(0)
            self.rebuild()


async def connect_kubernetes(kubeconfig: str | None, context: str | None) -> KubeApi:
    """The API connection for ``watch_kubernetes``; a bad kubeconfig raises ``KubeError``
    here, before anything is started, so the CLI can print it and exit."""
    from isthmus.kube.client import KubeApi  # only when a cluster is used

    return await KubeApi.connect(kubeconfig, context)


async def watch_kubernetes(feed: Feed, api: KubeApi, namespace: str | None = None) -> None:
    """Feed from the GlobalServices and mirror Services of a real cluster, until cancelled.
    ``feed.synced`` is set after the first full list of both (the CLI opens its port only
    then). The reflectors retry lost watches and re-list on their own; ``api`` stays the
    caller's to close."""
    from isthmus.kube.reflector import Reflector
    from isthmus.kube.resources import GLOBALSERVICES, SERVICES

    await feed.run(Reflector(api, GLOBALSERVICES, namespace),
                   Reflector(api, SERVICES, namespace, label_selector=SELECTOR, transform=slim))
