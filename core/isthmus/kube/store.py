"""The reflector's copy of the watched objects, by ``(namespace, name)``.

A plain store keeps each object as the dict it was given. A packed store keeps it as
``marshal`` bytes and decodes it on every read, so readers always get a fresh dict: a
projected mirror object is ~0.6 KB packed against 1.3-3.4 KB as nested dicts
(docs/decisions/mirror-memory.md), and bytes are not tracked by the garbage collector, so
tens of thousands of cached objects no longer lengthen every full collection. Decoding costs
~5 µs per object, and the mirror reads a handful of objects per reconcile.

``marshal`` is safe here because it only ever reads bytes this process wrote; nothing
packed crosses a process or a file.
"""

from __future__ import annotations

import marshal
from collections.abc import Iterator, Mapping
from typing import Any, Literal

JsonObj = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)
EventKind = Literal["ADDED", "MODIFIED", "DELETED", "SYNCED"]


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata", {})
    return (str(meta.get("namespace") or ""), str(meta["name"]))


def pack(obj: JsonObj) -> bytes:
    return marshal.dumps(obj)


def unpack(raw: bytes) -> JsonObj:
    obj: JsonObj = marshal.loads(raw)  # noqa: S302 - bytes this process packed itself
    return obj


def resource_version(obj: Mapping[str, Any]) -> str | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return None if rv is None else str(rv)


class ObjectStore(Mapping[Key, JsonObj]):
    """Read as a mapping of fresh objects; written with ``put``/``pop``. ``raw`` gives
    what is kept (the dict itself, or the packed bytes) so another index can hold the same
    value instead of a second copy."""

    def __init__(self, packed: bool = False) -> None:
        self.packed = packed
        self._items: dict[Key, Any] = {}

    def put(self, obj: JsonObj) -> Key:
        key = key_of(obj)
        self._items[key] = pack(obj) if self.packed else obj
        return key

    def update(self, obj: JsonObj) -> tuple[Key, EventKind | None]:
        """Keep ``obj`` as a LIST found it: ``ADDED`` if new here, ``MODIFIED`` if another
        version was kept, None if this very version was (the kept value then stays, so an
        index sharing it keeps sharing it)."""
        key = key_of(obj)
        value = pack(obj) if self.packed else obj
        old = self._items.get(key)
        if old is not None and self.same(old, value):
            return key, None
        self._items[key] = value
        return key, "ADDED" if old is None else "MODIFIED"

    def pop(self, key: Key) -> None:
        self._items.pop(key, None)

    def raw(self, key: Key) -> Any | None:
        return self._items.get(key)

    def decode(self, raw: Any) -> JsonObj:
        return unpack(raw) if self.packed else raw

    def same(self, a: Any, b: Any) -> bool:
        """Two kept values are the same version of an object (plain: by resourceVersion;
        packed: byte-equal, which includes the resourceVersion)."""
        if self.packed:
            return bool(a == b)
        return resource_version(a) == resource_version(b)

    def __getitem__(self, key: Key) -> JsonObj:
        return self.decode(self._items[key])

    def __iter__(self) -> Iterator[Key]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
