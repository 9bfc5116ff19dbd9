"""Writing to the API server: server-side apply with bounded retries, in one place.

Every isthmus write is a server-side apply under a named field manager, so two components
(or two replicas) never fight over fields they do not own, and a write never silently
overwrites fields another manager set. Conflicts, throttling, 5xx and dropped connections are
retried a bounded number of times with jittered backoff; anything else, or a fault that
outlasts the retries, is raised for the caller to turn into a condition and an Event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TypeVar

from isthmus.kube import errors
from isthmus.kube.backoff import Backoff
from isthmus.kube.client import JsonObj, KubeApi
from isthmus.kube.resources import CRDS, for_object
from isthmus.logging import get_logger

log = get_logger("isthmus.kube.apply")

T = TypeVar("T")

DEFAULT_FIELD_MANAGER = "isthmus"
RETRY_BACKOFF = Backoff(initial=0.1, maximum=5.0)


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    *,
    attempts: int = 5,
    backoff: Backoff = RETRY_BACKOFF,
    what: str = "request",
) -> T:
    """Run ``operation``; repeat it on a retryable error, at most ``attempts`` times in all."""
    for attempt in range(attempts):
        try:
            return await operation()
        except errors.RETRYABLE as exc:
            if not errors.is_retryable(exc) or attempt + 1 >= attempts:
                log.warning("giving up", what=what, attempts=attempts, error=str(exc))
                raise
            delay = backoff.delay(attempt)
            log.info("retrying", what=what, attempt=attempt + 1, delay=round(delay, 3),
                     error=str(exc))
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def apply(
    api: KubeApi,
    obj: JsonObj,
    *,
    field_manager: str = DEFAULT_FIELD_MANAGER,
    force: bool = False,
    subresource: str | None = None,
    attempts: int = 5,
) -> JsonObj:
    """Server-side apply one object (its resource is found from apiVersion/kind)."""
    resource = for_object(obj)
    meta = obj.get("metadata", {})
    what = f"apply {resource.kind} {meta.get('namespace', '')}/{meta.get('name', '')}"
    return await with_retries(
        lambda: api.apply(
            resource, obj, field_manager=field_manager, force=force, subresource=subresource
        ),
        attempts=attempts,
        what=what,
    )


async def apply_all(
    api: KubeApi, objects: Iterable[JsonObj], *, field_manager: str = DEFAULT_FIELD_MANAGER
) -> list[JsonObj]:
    """Apply in order (namespaces and CRDs first if the caller lists them first)."""
    return [await apply(api, obj, field_manager=field_manager, force=True) for obj in objects]


def apply_manifests(
    context: str | None, kubeconfig: str | Path | None, objects: list[JsonObj]
) -> None:
    """Synchronous entry point for CLI commands: apply ``objects`` to one cluster."""

    async def run() -> None:
        api = await KubeApi.connect(kubeconfig, context)
        try:
            await apply_all(api, objects, field_manager="isthmus-cli")
        finally:
            await api.close()

    asyncio.run(run())


async def wait_crds_established(api: KubeApi, names: Iterable[str], timeout: float = 30.0) -> None:
    """Wait until each CRD reports Established=True (so its resources can be written)."""
    pending = set(names)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pending:
        for name in sorted(pending):
            crd = await api.get(CRDS, name)
            conds = (crd.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                pending.discard(name)
        if pending:
            if loop.time() > deadline:
                raise errors.KubeError(
                    f"CRDs not established after {timeout:.0f}s: {sorted(pending)}"
                )
            await asyncio.sleep(0.1)
