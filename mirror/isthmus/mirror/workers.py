"""The per-key worker pool: service keys reconciled in parallel (bounded), one pass per key
at a time, urgent passes before deferred ones."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

from isthmus.mirror.model import ServiceKey


class KeyedWorkers:
    """Reconcile keys with a fixed pool of ``concurrency`` tasks, one pass per key at a time.

    Keys wait in two FIFO queues. A key's first pass is urgent; when it reports work left
    (``handler(key, True)`` returns True) the key queues again for a full pass behind every
    urgent one, so in a burst every key's urgent objects are written before any key's
    deferred ones (docs/decisions/mirror-write-order.md). A key submitted while it is queued or
    being handled is not queued twice: it is marked dirty and handled again after its turn. A
    fixed pool, not a task per key: 10 000 waiting keys cost a deque entry each."""

    def __init__(
        self,
        tg: asyncio.TaskGroup,
        handler: Callable[[ServiceKey, bool], Awaitable[bool]],
        concurrency: int,
    ) -> None:
        self._handler = handler
        self._urgent: collections.deque[ServiceKey] = collections.deque()
        self._deferred: collections.deque[ServiceKey] = collections.deque()
        self._queued = asyncio.Semaphore(0)  # one unit per queued entry
        self._owned: set[ServiceKey] = set()  # queued or being handled
        self._dirty: set[ServiceKey] = set()
        self.idle = asyncio.Event()
        self.idle.set()
        self._pool = [tg.create_task(self._worker()) for _ in range(concurrency)]

    def submit(self, key: ServiceKey) -> None:
        if key in self._owned:
            self._dirty.add(key)
            return
        self._owned.add(key)
        self.idle.clear()
        self._push(self._urgent, key)

    def _push(self, queue: collections.deque[ServiceKey], key: ServiceKey) -> None:
        queue.append(key)
        self._queued.release()

    @property
    def pending(self) -> int:
        return len(self._owned)

    async def _worker(self) -> None:
        while True:
            await self._queued.acquire()
            urgent = bool(self._urgent)
            key = (self._urgent if urgent else self._deferred).popleft()
            self._dirty.discard(key)  # this pass reads the state as it is now
            more = False
            try:
                more = await self._handler(key, urgent)
            finally:
                if urgent and more:
                    self._push(self._deferred, key)
                elif key in self._dirty:
                    self._dirty.discard(key)
                    self._push(self._urgent, key)
                else:
                    self._owned.discard(key)
                    if not self._owned:
                        self.idle.set()
