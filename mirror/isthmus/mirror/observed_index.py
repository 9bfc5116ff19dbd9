"""The mirror's own objects (and nothing else), indexed by the service key they belong to.

Fed by the watches of Services, EndpointSlices and GlobalServices and by the answers of the
mirror's own writes; read by every reconcile. Packed, so a cache of 10 000 services costs
one copy of their bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

from isthmus.kube.client import JsonObj
from isthmus.kube.store import pack, unpack
from isthmus.labels import GLOBAL_SERVICE_LABEL
from isthmus.mirror.model import ObjRef, ServiceKey
from isthmus.mirror.names import is_ours, link_label, link_owners
from isthmus.mirror.plan import ref_of


def resource_version(obj: JsonObj) -> int:
    """``obj``'s resourceVersion as a number (0 when absent or not a number)."""
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class ObservedIndex:
    """The mirror's own objects, by the service key they belong to.

    Kept packed (``isthmus.kube.store``), usually the very bytes the reflector's store
    holds for the same object (``put``'s ``raw``), so the cache costs one copy; every read
    decodes a fresh dict."""

    def __init__(self) -> None:
        self.by_key: dict[ServiceKey, dict[ObjRef, bytes]] = {}
        self._key_of: dict[ObjRef, ServiceKey] = {}

    def put(self, obj: JsonObj, raw: bytes | None = None) -> ServiceKey | None:
        """Index ``obj`` (``raw``: its packed form, if the caller has it) unless a newer
        version of it is indexed already."""
        ref = ref_of(obj)
        if not is_ours(obj):
            self.remove(ref)
            return None
        labels = obj["metadata"].get("labels") or {}
        key = (ref[1], str(labels.get(GLOBAL_SERVICE_LABEL) or ""))
        old_key = self._key_of.get(ref)
        if old_key is not None and old_key != key:
            self.remove(ref)
        bucket = self.by_key.setdefault(key, {})
        old = bucket.get(ref)
        if old is None:
            bucket[ref] = raw if raw is not None else pack(obj)
        else:
            rv, old_rv = resource_version(obj), resource_version(unpack(old))
            # One version arrives twice, as a write's answer and as its watch event, in
            # either order. The event's bytes are the reflector's (shared), so they replace
            # the answer's copy, and a late answer never replaces them (the cache would
            # otherwise hold about half of the objects of a long import twice).
            if rv > old_rv or (rv == old_rv and raw is not None):
                if raw is not None:
                    # re-keyed too: the event's reference shares its strings with the
                    # reflector's key (a dict keeps the first key object it was given)
                    del bucket[ref]
                    self._key_of.pop(ref, None)
                bucket[ref] = raw if raw is not None else pack(obj)
        self._key_of[ref] = key
        return key

    def remove(self, ref: ObjRef) -> ServiceKey | None:
        key = self._key_of.pop(ref, None)
        if key is not None:
            bucket = self.by_key.get(key, {})
            bucket.pop(ref, None)
            if not bucket:
                self.by_key.pop(key, None)
        return key

    @property
    def refs(self) -> dict[ObjRef, ServiceKey]:
        return self._key_of

    def get(self, ref: ObjRef) -> JsonObj | None:
        key = self._key_of.get(ref)
        raw = self.by_key.get(key, {}).get(ref) if key is not None else None
        return unpack(raw) if raw is not None else None

    def for_key(self, key: ServiceKey) -> dict[ObjRef, JsonObj]:
        return {ref: unpack(raw) for ref, raw in self.by_key.get(key, {}).items()}

    def objects(self, kind: str | None = None) -> Iterator[JsonObj]:
        for bucket in self.by_key.values():
            for ref, raw in bucket.items():
                if kind is None or ref[0] == kind:
                    yield unpack(raw)

    def keys_of_cluster(self, cluster: str) -> set[ServiceKey]:
        # marshal keeps strings as their UTF-8 bytes: an object without the label's text in
        # its bytes cannot carry it, so most objects are ruled out without decoding them
        # (each Link event at start asks this of every cached object).
        needle = link_label(cluster).encode()
        found = set()
        for key, objs in self.by_key.items():
            for raw in objs.values():
                if needle in raw and cluster in link_owners(
                        unpack(raw)["metadata"].get("labels") or {}):
                    found.add(key)
                    break
        return found
