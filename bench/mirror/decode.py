"""Decode-and-project benchmark (not a test): the mirror's cache path for LIST pages.

Builds LIST pages of the objects the mirror writes for N imported services (GlobalService,
merged and pinned Services and EndpointSlices, from ``desired``), in the form an API server
serves them (``managedFields``, defaults, status), then times and sizes two ways of turning
them into the cached copies:

- reference: ``json.loads`` of the page, then ``projection.project`` (the path before shapes);
- isthmus: the kind's shape decoder (``isthmus.kube.shapes``), then ``project``;
- and the same, kept packed as the mirror's caches keep it (``isthmus.kube.store``).

Reports milliseconds per page set (best of ``--rounds``), the ratio, and bytes per cached
object (``tracemalloc``, everything kept alive by the cached copies).

    .venv/bin/python bench/mirror/decode.py --services 1000
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from isthmus.kube.shapes import decoders
from isthmus.kube.store import pack, unpack
from isthmus.mirror.desired import desired, required_ports
from isthmus.mirror.model import CatalogEntry, LinkInfo, PeerView, PortSpec
from isthmus.mirror.ports import PortAllocator
from isthmus.mirror.projection import SHAPES, project

LIST_KINDS = {"Service": "ServiceList", "EndpointSlice": "EndpointSliceList",
              "GlobalService": "GlobalServiceList"}


def _fields_v1(obj: Any) -> Any:
    """A managedFields ``fieldsV1`` tree of ``obj``'s shape, as server-side apply records."""
    if isinstance(obj, dict):
        return {f"f:{k}": _fields_v1(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return {f'k:{{"i":{i}}}': _fields_v1(v) for i, v in enumerate(obj)}
    return {}


def served(obj: dict[str, Any], n: int) -> dict[str, Any]:
    """``obj`` as the API server answers it: bookkeeping, managedFields, defaults, status."""
    out = json.loads(json.dumps(obj))
    meta = out["metadata"]
    stamp = "2026-11-22T07:00:00Z"
    meta.update(uid=f"{n:08d}-b8b8-477f-a4ee-2b0bcd8ee215", resourceVersion=str(4000 + n),
                creationTimestamp=stamp, generation=1)
    meta["managedFields"] = [{
        "manager": "isthmus-mirror", "operation": "Apply", "apiVersion": out["apiVersion"],
        "time": stamp, "fieldsType": "FieldsV1",
        "fieldsV1": _fields_v1({k: v for k, v in out.items() if k not in ("apiVersion", "kind")}),
    }]
    if out["kind"] == "Service":
        ip = f"10.{96 + n // 65536}.{n // 256 % 256}.{n % 256}"
        out["spec"].update(clusterIP=ip, clusterIPs=[ip], sessionAffinity="None",
                           ipFamilies=["IPv4"], ipFamilyPolicy="SingleStack",
                           internalTrafficPolicy="Cluster")
        out["status"] = {"loadBalancer": {}}
    if out["kind"] == "EndpointSlice":
        for ep in out.get("endpoints") or []:
            ep["conditions"].update(serving=True, terminating=False)
    return out


def pages(services: int) -> dict[str, list[bytes]]:
    """Per kind, the LIST pages (500 items each) of everything ``services`` imports write."""
    link = LinkInfo(name="west", uid="3661fbca-481b-4c70-806a-1cd8a70fba9a", cluster="west",
                    trust_domain="td", gateway_host="127.0.0.1", gateway_port=15443)
    entries = [CatalogEntry("prof", f"r{i:05d}", (PortSpec(80, "http"),), 1)
               for i in range(services)]
    peers = [PeerView(link, {e.key: e for e in entries}, None)]
    alloc = PortAllocator(20000, 20000 + 4 * services)
    ports = alloc.ensure(required_ports(peers, {e.key for e in entries}))
    want = desired(peers, gateway_addresses=["10.244.0.10", "10.244.0.11"], ports=ports,
                   namespaces=None)
    items: dict[str, list[dict[str, Any]]] = {kind: [] for kind in LIST_KINDS}
    for ds in want.services.values():
        for (kind, _, _), obj in ds.objects.items():
            items[kind].append(served(obj, len(items[kind])))
    out: dict[str, list[bytes]] = {}
    for kind, objs in items.items():
        out[kind] = []
        for start in range(0, len(objs), 500):
            page = [{k: v for k, v in o.items() if k not in ("apiVersion", "kind")}
                    for o in objs[start:start + 500]]
            out[kind].append(json.dumps({
                "kind": LIST_KINDS[kind], "apiVersion": objs[0]["apiVersion"],
                "metadata": {"resourceVersion": "99999"}, "items": page}).encode())
    return out


Way = Callable[[str, bytes], dict[str, Any]]


def cache(all_pages: dict[str, list[bytes]], decode: Way, packed: bool = False) -> list[Any]:
    kept: list[Any] = []
    for kind, kind_pages in all_pages.items():
        for data in kind_pages:
            for item in decode(kind, data).get("items") or []:
                item.setdefault("kind", kind)
                obj = project(item)
                kept.append(pack(obj) if packed else obj)
    return kept


def measure(all_pages: dict[str, list[bytes]], decode: Way, rounds: int,
            packed: bool = False) -> tuple[float, float]:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        cache(all_pages, decode, packed)
        best = min(best, time.perf_counter() - start)
    gc.collect()
    tracemalloc.start()
    kept = cache(all_pages, decode, packed)
    gc.collect()
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, size / len(kept)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    all_pages = pages(args.services)
    total = sum(len(p) for ps in all_pages.values() for p in ps)
    ways: dict[str, Way] = {
        "json.loads + project": lambda _kind, data: json.loads(data),
        "shape decode + project": lambda kind, data: decoders(SHAPES[kind]).page(data),
    }
    print(f"{args.services} services, {total / 1e6:.1f} MB of LIST pages")
    results = {name: measure(all_pages, way, args.rounds) for name, way in ways.items()}
    results["shape decode + project + pack"] = measure(all_pages, ways["shape decode + project"],
                                                       args.rounds, packed=True)
    for name, (seconds, per_object) in results.items():
        print(f"{name:30s} {seconds * 1000:8.1f} ms  {per_object:7.0f} B per cached object")
    (ref_s, ref_b), *ours = results.values()
    for name, (ours_s, ours_b) in zip(list(results)[1:], ours, strict=True):
        print(f"{name} / reference: time {ours_s / ref_s:.2f}x, memory {ours_b / ref_b:.2f}x")
    objects = cache(all_pages, ways["shape decode + project"])
    packed = [pack(o) for o in objects]
    start = time.perf_counter()
    for raw in packed:
        unpack(raw)
    each = (time.perf_counter() - start) / len(packed)
    print(f"unpack (each read of a packed object): {each * 1e6:.1f} us")


if __name__ == "__main__":
    main()
