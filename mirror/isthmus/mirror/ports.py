"""Outbound gateway port allocation, stable across restarts.

Each service port of each mirrored service (merged, and pinned per exporting cluster) gets
one port of the local gateway, from a configured range. The allocation is *recovered* from
what is already written (``outboundPort`` and ``pinnedPorts`` of every GlobalService the
mirror owns) before anything new is allocated, so a restart keeps every port. A new port is the next
free number after the last one handed out (wrapping at the end of the range), so a port
freed a moment ago is not reused at once while a gateway may still hold its listener.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from isthmus.mirror.desired import MERGED, PortKey
from isthmus.mirror.errors import MirrorError
from isthmus.mirror.model import ServiceKey


class PortsExhausted(MirrorError):
    """No free outbound port is left in the configured range."""


def recovered_ports(global_services: Iterable[Mapping[str, Any]]) -> dict[PortKey, int]:
    """Pure: the allocations recorded in existing GlobalServices."""
    found: dict[PortKey, int] = {}
    for gs in global_services:
        meta = gs.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        spec = gs.get("spec") or {}
        for p in spec.get("ports") or []:
            if p.get("outboundPort"):
                found[PortKey(ns, name, MERGED, int(p["port"]))] = int(p["outboundPort"])
        for ep in spec.get("endpoints") or []:
            for pp in ep.get("pinnedPorts") or []:
                found[PortKey(ns, name, str(ep["cluster"]), int(pp["port"]))] = int(
                    pp["outboundPort"]
                )
            for pod in ep.get("pods") or []:
                for pp in pod.get("ports") or []:
                    found[PortKey(ns, name, str(ep["cluster"]), int(pp["port"]),
                                  str(pod["hostname"]))] = int(pp["outboundPort"])
    return found


class PortAllocator:
    def __init__(self, low: int, high: int, existing: Mapping[PortKey, int] | None = None):
        self.low, self.high = low, high
        self.by_key: dict[PortKey, int] = {}
        self.used: dict[int, PortKey] = {}
        # the keys of each service: release() is per service and must not scan every key
        self._of_service: dict[ServiceKey, set[PortKey]] = {}
        self._next = low
        # sorted: the first key wins a port recorded twice
        for key, port in sorted((existing or {}).items()):
            if low <= port <= high and port not in self.used:
                self._take(key, port)

    def _take(self, key: PortKey, port: int) -> None:
        self.by_key[key] = port
        self.used[port] = key
        self._of_service.setdefault((key.namespace, key.name), set()).add(key)

    def ensure(self, keys: Iterable[PortKey]) -> dict[PortKey, int]:
        for key in sorted(set(keys)):
            if key not in self.by_key:
                self._take(key, self._free())
        return self.by_key

    def _free(self) -> int:
        size = self.high - self.low + 1
        for i in range(size):
            port = self.low + (self._next - self.low + i) % size
            if port not in self.used:
                self._next = port + 1 if port < self.high else self.low
                return port
        raise PortsExhausted(f"no free outbound port in {self.low}-{self.high}")

    def ports_of(self, service: ServiceKey) -> tuple[tuple[PortKey, int], ...]:
        """The ports ``service`` holds, sorted."""
        return tuple(sorted((k, self.by_key[k]) for k in self._of_service.get(service, ())))

    def release(self, service: ServiceKey, keep: Iterable[PortKey] = ()) -> None:
        """Free the ports of ``service`` that are not in ``keep``."""
        kept = set(keep)
        mine = self._of_service.get(service, set())
        for key in [k for k in mine if k not in kept]:
            del self.used[self.by_key.pop(key)]
            mine.discard(key)
        if not mine:
            self._of_service.pop(service, None)
