"""The reflector: keep a local copy of a set of API objects, and say what changed.

The usual client-go shape: LIST, then WATCH from the list's resourceVersion with bookmarks;
on ``410 Gone`` (our resourceVersion was compacted away) LIST again; on any other failure
(connection lost, API server restarted, 5xx) wait a jittered backoff and WATCH again from the
last resourceVersion seen, which falls back to a LIST if that, too, is gone.

Consumers iterate ``events()``. Every LIST is diffed against the store, so a re-list yields
exactly the ADDED/MODIFIED/DELETED events that were missed (no spurious deletes, no
duplicate adds), followed by one ``SYNCED`` marker; watch events pass through as they come.

Memory: every object passes through a ``transform`` before it is stored or yielded (as
client-go's ``SetTransform``). The default drops ``metadata.managedFields``, which nobody
here reads and which is often the largest part of an object; a consumer that reads only a
few fields passes its own projection. LISTs are paged (``limit``/``continue``) so a large
collection never arrives as one huge body. A consumer that knows which fields it reads also
passes a ``shape`` (``isthmus.kube.shapes``): LIST pages and watch events are then decoded
straight into those fields, and the rest of each object is never built. A ``packed`` store
keeps each object as bytes and decodes it on read (``isthmus.kube.store``).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from isthmus.kube import errors
from isthmus.kube.backoff import Backoff
from isthmus.kube.client import JsonObj, KubeApi
from isthmus.kube.resources import Resource
from isthmus.kube.shapes import Decode, decoders
from isthmus.kube.store import EventKind, Key, ObjectStore, key_of
from isthmus.logging import get_logger

log = get_logger("isthmus.kube.reflector")

__all__ = ["EventKind", "Key", "Reflector", "WatchSettings", "key_of"]

Transform = Callable[[JsonObj], JsonObj]

LIST_PAGE = 500  # client-go's pager default


def drop_managed_fields(obj: JsonObj) -> JsonObj:
    """The default transform: the object without ``metadata.managedFields`` (in place)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


@dataclass(frozen=True)
class WatchSettings:
    """How long one WATCH request lasts before we re-issue it, and how we back off."""

    timeout_seconds: tuple[int, int] = (240, 300)  # randomised per request, like client-go
    backoff: Backoff = field(default_factory=Backoff)
    list_page: int = LIST_PAGE  # items per LIST page (0: one unpaged LIST)


class Reflector:
    """Mirror one resource (optionally one namespace and label selector) into ``store``."""

    def __init__(
        self,
        api: KubeApi,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        settings: WatchSettings | None = None,
        transform: Transform = drop_managed_fields,
        shape: type | None = None,
        packed: bool = False,
        optional: bool = False,
        absent_retry: float = 30.0,
    ) -> None:
        """``transform`` gets each object (a fresh dict it may change or replace) before it
        is stored and yielded; the object it returns must keep ``metadata.name``,
        ``namespace`` and ``resourceVersion`` (the reflector reads them). ``shape`` (a
        TypedDict from ``isthmus.kube.shapes``) limits decoding to its fields. ``packed``
        keeps the store's objects as bytes (``isthmus.kube.store``). ``optional``: the
        resource may not be served (a CRD that is not installed); a 404 then counts as an
        empty list, the reflector is synced, and it asks again every ``absent_retry``
        seconds."""
        self.api = api
        self.transform = transform
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.settings = settings or WatchSettings()
        self.store = ObjectStore(packed)
        self.resource_version: str | None = None
        shaped = decoders(shape) if shape is not None else None
        self._decode_page = shaped.page if shaped else None
        self._decode_event: Decode = shaped.event if shaped else json.loads
        self.optional = optional
        self.absent_retry = absent_retry
        self.served: bool | None = None  # None: not asked yet
        self.synced = asyncio.Event()
        self.lists = 0  # how many LISTs were made (observable by tests and metrics)
        self._log = log.bind(resource=resource.plural, namespace=namespace)

    async def events(self) -> AsyncIterator[tuple[EventKind, JsonObj | None]]:
        """Forever: the changes to the watched set, in order. Cancel the task to stop.

        Iterating again after a break resumes from the last resourceVersion seen (as a
        controller does after a restart with its cache), so missed changes are diffed in.
        """
        need_list = self.resource_version is None
        attempt = 0
        while True:
            try:
                if need_list:
                    try:
                        async for event in self._list():
                            yield event
                    except errors.NotFoundError:
                        if not self.optional:
                            raise
                        async for gone in self._absent():
                            yield gone
                        await asyncio.sleep(self.absent_retry)
                        continue
                    if self.served is False:
                        self._log.info("resource served now")
                    self.served = True
                    yield ("SYNCED", None)
                    need_list = False
                async for event in self._watch():
                    attempt = 0
                    yield event
                # The server ended the watch at its timeout: simply watch again.
            except errors.GoneError:
                self._log.info("resourceVersion expired, re-listing", rv=self.resource_version)
                need_list = True
            except (errors.TransportError, errors.ApiError) as exc:
                if self.optional and isinstance(exc, errors.NotFoundError):
                    need_list = True  # no longer served (its CRD deleted): list again
                    continue
                delay = self.settings.backoff.delay(attempt)
                attempt += 1
                self._log.warning(
                    "watch failed, retrying", error=str(exc), attempt=attempt, delay=round(delay, 3)
                )
                await asyncio.sleep(delay)

    async def _absent(self) -> AsyncIterator[tuple[EventKind, JsonObj | None]]:
        """The resource is not served: whatever was stored is gone; synced (once)."""
        if self.served is not False:
            self._log.info("resource not served, treated as empty",
                           retry_seconds=self.absent_retry)
        self.served = False
        for key in list(self.store):
            gone = self.store[key]
            self.store.pop(key)
            yield "DELETED", gone
        self.resource_version = None
        if not self.synced.is_set():
            self.synced.set()
            yield "SYNCED", None

    async def _list(self) -> AsyncIterator[tuple[EventKind, JsonObj]]:
        """LIST every page into the store, yielding what changed since it was last told.

        Each item's event is yielded as its page is read, with the object as decoded (a
        packed store is never read back, and a LIST's objects are never all held at once);
        what the LIST no longer has is DELETED once the last page is in. The store is
        updated item by item, so it always holds what the consumer was told: a LIST that
        fails half-way leaves a store the next LIST diffs against correctly."""
        kind = self.resource.kind
        api_version = self.resource.api_version
        listed: set[Key] = set()
        token: str | None = None
        while True:
            answer = await self.api.list(
                self.resource, self.namespace, label_selector=self.label_selector,
                limit=self.settings.list_page or None, continue_token=token,
                decode=self._decode_page,
            )
            for raw in answer.pop("items", None) or []:
                # LIST items omit apiVersion/kind; put them back so objects look alike.
                raw.setdefault("apiVersion", api_version)
                raw.setdefault("kind", kind)
                obj = self.transform(raw)
                key, change = self.store.update(obj)
                listed.add(key)
                if change is not None:
                    yield change, obj
            meta = answer.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                break
        # An expired continue token is a 410: the caller re-lists from the start.
        self.lists += 1
        for key in [k for k in self.store if k not in listed]:
            gone = self.store[key]
            self.store.pop(key)
            yield "DELETED", gone
        self.resource_version = str(meta.get("resourceVersion") or "")
        self.synced.set()
        self._log.debug("listed", count=len(self.store), rv=self.resource_version)

    async def _watch(self) -> AsyncIterator[tuple[EventKind, JsonObj]]:
        low, high = self.settings.timeout_seconds
        timeout = random.randint(low, high)  # noqa: S311 - jitter, not security
        query: dict[str, Any] = {
            "watch": True,
            "allowWatchBookmarks": True,
            "resourceVersion": self.resource_version,
            "timeoutSeconds": timeout,
            "labelSelector": self.label_selector,
        }
        lines = self.api.stream_lines(self.resource.path(self.namespace), query, timeout + 30)
        async for line in lines:
            try:
                event = self._decode_event(line)
                kind = event["type"]
                obj = event["object"]
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.TransportError(f"malformed watch event: {line[:200]!r}") from exc
            if kind == "ERROR":
                raise errors.from_status(int(obj.get("code") or 500), obj)
            rv = obj.get("metadata", {}).get("resourceVersion")
            if rv:
                self.resource_version = str(rv)
            if kind == "BOOKMARK":
                continue
            if kind not in ("ADDED", "MODIFIED", "DELETED"):
                raise errors.TransportError(f"unknown watch event type {kind!r}")
            obj = self.transform(obj)
            if kind == "DELETED":
                self.store.pop(key_of(obj))
            else:
                self.store.put(obj)
            yield kind, obj
