"""Lease leader election (coordination.k8s.io/v1), so two replicas never both write.

The usual shape: take the Lease when it is free or expired (``renewTime`` +
``leaseDurationSeconds`` in the past), renew it every ``renew_interval``; every write is an
optimistic update (resourceVersion), so of two candidates exactly one wins. A leader that
cannot renew before its lease would expire stops leading at once; on a clean stop it
releases the Lease so a standby takes over without waiting for expiry.

The Lease is never created here: ``isthmus install`` creates it holderless, because RBAC
cannot limit ``create`` by name and the mirror should not create Leases at will. A missing
Lease is waited for (one warning, then retries at the usual cadence); a leader whose Lease
was deleted stops at once, since a standby may take the recreated one at any moment.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Any

from isthmus.kube import errors as kube_errors
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import LEASES
from isthmus.lease import lease_free
from isthmus.logging import get_logger
from isthmus.mirror.errors import LeadershipLost

log = get_logger("isthmus.mirror.leader")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_seconds: float = 15.0,
        renew_interval: float = 5.0,
        retry_interval: float = 2.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_interval = renew_interval
        self.retry_interval = retry_interval
        self.leading = False
        self.lease_missing = False  # the last attempt found no Lease (warned once)

    def _spec(self, now: dt.datetime, old: dict[str, Any] | None) -> dict[str, Any]:
        old = old or {}
        transitions = int(old.get("leaseTransitions") or 0)
        taking = old.get("holderIdentity") != self.identity
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_seconds)),
            "acquireTime": _micro(now) if taking else old.get("acquireTime", _micro(now)),
            "renewTime": _micro(now),
            "leaseTransitions": transitions + (1 if taking and old else 0),
        }

    async def try_acquire(self) -> bool:
        """One attempt to take or renew the Lease; True if we hold it now (False also
        while it does not exist: see ``lease_missing``)."""
        now = _now()
        try:
            lease = await self.api.get(LEASES, self.name, self.namespace)
        except kube_errors.NotFoundError:
            if not self.lease_missing:  # once per absence, not once per retry
                log.warning("leader Lease missing; `isthmus install` creates it",
                            lease=f"{self.namespace}/{self.name}")
            self.lease_missing = True
            return False
        if self.lease_missing:
            log.info("leader Lease found", lease=f"{self.namespace}/{self.name}")
            self.lease_missing = False
        spec = lease.get("spec") or {}
        if not lease_free(spec, self.identity, now):
            return False
        lease["spec"] = self._spec(now, spec)
        try:
            await self.api.replace(LEASES, lease, self.namespace)
        except kube_errors.ConflictError:
            return False
        return True

    async def release(self) -> None:
        """Give the Lease up (best effort), so a standby need not wait for expiry."""
        try:
            lease = await self.api.get(LEASES, self.name, self.namespace)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["leaseDurationSeconds"] = 1
            await self.api.replace(LEASES, lease, self.namespace)
        except kube_errors.KubeError as exc:
            log.info("lease not released", error=str(exc))

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Wait to become leader, then run ``lead`` while renewing; raise LeadershipLost if
        the Lease cannot be renewed in time (``lead`` is cancelled first)."""
        while True:
            try:
                if await self.try_acquire():
                    break
            except kube_errors.KubeError as exc:
                log.warning("lease acquire failed", error=str(exc))
            await asyncio.sleep(self.retry_interval)
        self.leading = True
        log.info("leading", lease=f"{self.namespace}/{self.name}", identity=self.identity)
        try:
            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(lead())
                tg.create_task(self._renew(task))
        except* LeadershipLost as group:
            raise group.exceptions[0] from None
        finally:
            self.leading = False
            await asyncio.shield(self.release())

    async def _renew(self, task: asyncio.Task[None]) -> None:
        last = asyncio.get_running_loop().time()
        while not task.done():
            await asyncio.sleep(self.renew_interval)
            try:
                if await self.try_acquire():
                    last = asyncio.get_running_loop().time()
                    continue
                if self.lease_missing:
                    raise LeadershipLost("the Lease was deleted")
                raise LeadershipLost("another replica holds the lease")
            except kube_errors.KubeError as exc:
                log.warning("lease renewal failed", error=str(exc))
            if asyncio.get_running_loop().time() - last > self.lease_seconds * 0.8:
                raise LeadershipLost("lease not renewed in time")
