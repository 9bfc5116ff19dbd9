"""The export catalog: what this cluster exports, versioned, with a bounded change log.

Every change to one exported service bumps ``version`` by one and appends the service key
to the log. A peer that resumes from version ``v`` of the same ``epoch`` gets the keys
changed since ``v`` (re-evaluated against the current entries and its own permission);
if ``v`` is older than what the log still holds, it gets a fresh snapshot instead. The
epoch is random per process, because versions restart with it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from isthmus.exports import ExportedService
from isthmus.mirror.model import CatalogEntry, PortSpec, ServiceKey


@dataclass(frozen=True)
class ExportEntry:
    entry: CatalogEntry
    allowed: frozenset[str] | None  # None: every linked cluster

    def allows(self, cluster: str) -> bool:
        return self.allowed is None or cluster in self.allowed


@dataclass(frozen=True)
class Changes:
    version: int
    upserts: tuple[CatalogEntry, ...]
    removed: tuple[ServiceKey, ...]


def entry_from_export(exported: ExportedService, version: int, changed_at_ms: int) -> ExportEntry:
    ports = tuple(
        PortSpec(port=p.port, name=p.name, app_protocol=p.app_protocol or "")
        for p in exported.ports
    )
    return ExportEntry(
        CatalogEntry(
            namespace=exported.namespace,
            name=exported.name,
            ports=ports,
            ready_endpoints=exported.ready_endpoints,
            version=version,
            changed_at_ms=changed_at_ms,
            weight=exported.weight,
            headless=exported.headless,
            pods=tuple(p.hostname for p in exported.pods.pods),
            exported_at_ms=exported.exported_at_ms,
        ),
        exported.allowed_clusters,
    )


def _same(a: ExportEntry, b: ExportEntry) -> bool:
    return (
        a.allowed == b.allowed
        and a.entry.ports == b.entry.ports
        and a.entry.weight == b.entry.weight
        and a.entry.exported_at_ms == b.entry.exported_at_ms
        and a.entry.ready_endpoints == b.entry.ready_endpoints
        and a.entry.headless == b.entry.headless
        and a.entry.pods == b.entry.pods
    )


class ExportCatalog:
    def __init__(self, history: int = 100_000) -> None:
        self.epoch = uuid.uuid4().hex[:16]
        self.version = 0
        self.entries: dict[ServiceKey, ExportEntry] = {}
        self._log: deque[tuple[int, ServiceKey]] = deque()
        self._history = history
        self._floor = 0  # every change after this version is still in the log
        self._changed = asyncio.Event()

    def set(self, key: ServiceKey, exported: ExportedService | None) -> bool:
        """Record the current export of ``key`` (None: not exported). True if it changed."""
        now_ms = int(time.time() * 1000)
        old = self.entries.get(key)
        if exported is None:
            if old is None:
                return False
            del self.entries[key]
        else:
            new = entry_from_export(exported, self.version + 1, now_ms)
            if old is not None and _same(old, new):
                return False
            self.entries[key] = new
        self.version += 1
        self._log.append((self.version, key))
        while len(self._log) > self._history:
            self._floor = self._log.popleft()[0]
        self._changed.set()
        self._changed = asyncio.Event()
        return True

    def replace_all(self, exports: Mapping[ServiceKey, ExportedService]) -> int:
        """Make the catalog equal ``exports``; the number of changed keys."""
        changed = 0
        for key in list(self.entries):
            if key not in exports:
                changed += self.set(key, None)
        for key, exported in exports.items():
            changed += self.set(key, exported)
        return changed

    def snapshot(self, cluster: str) -> tuple[int, list[CatalogEntry]]:
        items = [e.entry for e in self.entries.values() if e.allows(cluster)]
        return self.version, sorted(items, key=lambda e: e.key)

    def changes_since(self, version: int, cluster: str) -> Changes | None:
        """What changed after ``version`` for ``cluster``; None if the log no longer has it."""
        if version < self._floor or version > self.version:
            return None
        keys: dict[ServiceKey, None] = {}
        for v, key in reversed(self._log):
            if v <= version:
                break
            keys[key] = None
        upserts: list[CatalogEntry] = []
        removed: list[ServiceKey] = []
        for key in sorted(keys):
            current = self.entries.get(key)
            if current is not None and current.allows(cluster):
                upserts.append(current.entry)
            else:
                removed.append(key)
        return Changes(self.version, tuple(upserts), tuple(removed))

    async def wait_change(self, after: int, timeout: float) -> bool:
        """Wait until ``version > after`` (True) or ``timeout`` passes (False)."""
        if self.version > after:
            return True
        event = self._changed
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return self.version > after
        return True
