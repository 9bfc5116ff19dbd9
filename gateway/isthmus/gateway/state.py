"""The gateway's state: the current routing snapshot, swapped whole by one updater.

Readers (the data path) take ``state.snapshot`` once per connection; the feed is the only
writer and calls ``swap``. Subscribers (the outbound listener set) run after each swap.
"""

from __future__ import annotations

from collections.abc import Callable

from isthmus.gateway.snapshot import Snapshot


class GatewayState:
    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self.snapshot = snapshot or Snapshot()
        self.synced = snapshot is not None
        self._subscribers: list[Callable[[Snapshot], None]] = []

    def subscribe(self, callback: Callable[[Snapshot], None]) -> None:
        self._subscribers.append(callback)

    def swap(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot  # one assignment: readers see old or new, never a mix
        self.synced = True
        for callback in list(self._subscribers):
            callback(snapshot)
