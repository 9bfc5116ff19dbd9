"""Passive ejection and active probing of peer gateways.

A peer (cluster, host, port) is ejected after ``eject_after`` consecutive failures to reach
its gateway (TCP connect, TLS handshake, identity, or the tunnel dying before STATUS). A
refusal STATUS is *not* a failure of the gateway (it answered) and does not count; the
stream simply moves on to the next exporting cluster. An ejected peer is probed every
``probe_interval`` seconds, with ±``jitter`` so a fleet does not probe in step, by opening
a real tunnel (TCP + mTLS + identity check); the first success readmits it and the probe's
tunnel joins the pool. Flips are logged once, not every tick.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from isthmus.gateway.metrics import Metrics
from isthmus.logging import get_logger

PeerKey = tuple[str, str, int]


# Lazy: structlog builds it on first use, after the process configured logging.
log = get_logger("isthmus.gateway.health")


class PeerHealth:
    def __init__(
        self,
        metrics: Metrics,
        *,
        eject_after: int = 3,
        probe_interval: float = 2.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        self.metrics = metrics
        self.eject_after = eject_after
        self.probe_interval = probe_interval
        self.jitter = jitter
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self.failures: dict[PeerKey, int] = {}
        self.ejected: dict[PeerKey, float] = {}
        self._probes: dict[PeerKey, asyncio.Task[None]] = {}

    def success(self, key: PeerKey) -> None:
        if self.failures:
            self.failures.pop(key, None)

    def failure(self, key: PeerKey, probe: Callable[[], Awaitable[None]]) -> bool:
        """Count a failure; True if this one ejected the peer."""
        if key in self.ejected:
            return False
        count = self.failures.get(key, 0) + 1
        self.failures[key] = count
        if count < self.eject_after:
            return False
        self.failures.pop(key, None)
        self.ejected[key] = asyncio.get_running_loop().time()
        self.metrics.ejections.labels(key[0]).inc()
        log.warning("peer gateway ejected", peer_cluster=key[0], address=f"{key[1]}:{key[2]}",
                       consecutive_failures=count)
        self._probes[key] = asyncio.get_running_loop().create_task(self._probe(key, probe))
        return True

    async def _probe(self, key: PeerKey, probe: Callable[[], Awaitable[None]]) -> None:
        attempts = 0
        while key in self.ejected:
            spread = self.probe_interval * self.jitter
            await asyncio.sleep(self.probe_interval + self.rng.uniform(-spread, spread))
            attempts += 1
            try:
                await probe()
            except (OSError, TimeoutError):
                continue
            except Exception as exc:
                log.debug("probe error", error=str(exc))
                continue
            self.ejected.pop(key, None)
            self.metrics.readmissions.labels(key[0]).inc()
            log.info("peer gateway readmitted", peer_cluster=key[0],
                        address=f"{key[1]}:{key[2]}", probes=attempts)
        self._probes.pop(key, None)

    def forget(self, keep: set[PeerKey]) -> None:
        """Drop state of peers no longer in any route."""
        for key in list(self.ejected):
            if key not in keep:
                self.ejected.pop(key, None)
                task = self._probes.pop(key, None)
                if task is not None:
                    task.cancel()
        for key in list(self.failures):
            if key not in keep:
                self.failures.pop(key, None)

    def close(self) -> None:
        for task in self._probes.values():
            task.cancel()
        self._probes.clear()
