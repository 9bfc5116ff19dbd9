"""LIST encoding benchmark (not a test): JSON against protobuf for what a mirror restart LISTs.

One real control plane. N Services and N EndpointSlices shaped like the mirror's own
(ownership labels, server-side applied, so with ``managedFields``); then, alternating, paged
LISTs (500 a page, as the reflector) of both kinds in each encoding. Per encoding: bytes on
the wire, the API server's CPU (from /proc), the wall time of the LIST, and this process's
CPU to turn the pages into the mirror's cached copies (JSON: the shape decoder; protobuf:
``isthmus.kube.protobuf``; both then ``projection.project``). JSON is the reference; the
ratios are protobuf / JSON. Medians of ``--rounds``.

    .venv/bin/python bench/mirror/list_encoding.py --n 5000     # ~2 min
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from isthmus.devcluster import ControlPlane
from isthmus.kube import protobuf
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import ENDPOINTSLICES, NAMESPACES, SERVICES, Resource
from isthmus.kube.shapes import decoders
from isthmus.mirror.projection import SHAPES, project

_LABELS = {"isthmus.io/mirror": "true", "isthmus.io/peer-cluster": "west",
           "isthmus.io/link-uid": "5f0c1c52-3a8e-4c59-9d0e-0b7d3c8e8a11",
           "app.kubernetes.io/managed-by": "isthmus"}


def service(ns: str, i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"s{i:05d}", "namespace": ns,
                         "labels": {**_LABELS, "isthmus.io/global-service": f"s{i:05d}"}},
            "spec": {"type": "ClusterIP", "ports": [
                {"name": "http", "port": 80, "targetPort": 20000 + i % 40000,
                 "protocol": "TCP"}]}}


def endpoint_slice(ns: str, i: int) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i:05d}", "namespace": ns,
                         "labels": {**_LABELS, "kubernetes.io/service-name": f"s{i:05d}",
                                    "endpointslice.kubernetes.io/managed-by": "isthmus.io"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.0.0.{k}"], "conditions": {"ready": True}}
                          for k in (1, 2)],
            "ports": [{"name": "http", "port": 20000 + i % 40000, "protocol": "TCP"}]}


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def list_all(api: KubeApi, res: Resource, use_protobuf: bool) -> tuple[int, float]:
    """One paged LIST into cached copies: (bytes, this process's CPU seconds decoding)."""
    shape = decoders(SHAPES[res.kind]).page
    pb = protobuf.page_decoder(res.kind)
    assert pb is not None
    size = 0
    spent = 0.0

    def measure(decode: Any) -> Any:
        def inner(body: bytes) -> Any:
            nonlocal size, spent
            start = time.process_time()
            page = decode(body)
            for item in page["items"]:
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
                project(item)
            spent += time.process_time() - start
            size += len(body)
            return page
        return inner

    token = None
    while True:
        page = await api.list(res, limit=500, continue_token=token, decode=measure(shape),
                              protobuf_decode=measure(pb) if use_protobuf else None)
        token = page["metadata"].get("continue")
        if not token:
            return size, spent


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cp = ControlPlane("listenc", service_cidr="10.96.0.0/12").start()
    try:
        api = await KubeApi.connect(cp.kubeconfig, cp.context)
        await api.create(NAMESPACES, {"metadata": {"name": "m"}})
        sem = asyncio.Semaphore(16)

        async def put(res: Resource, obj: dict[str, Any]) -> None:
            async with sem:
                await api.apply(res, obj, field_manager="isthmus-mirror", force=True)

        for res, make in ((SERVICES, service), (ENDPOINTSLICES, endpoint_slice)):
            await asyncio.gather(*(put(res, make("m", i)) for i in range(args.n)))
        server = cp._procs["kube-apiserver"].popen
        assert server is not None
        rows: dict[tuple[str, bool], list[tuple[int, float, float, float]]] = {}
        for _ in range(args.rounds):
            for res in (SERVICES, ENDPOINTSLICES):
                for use_protobuf in (False, True):
                    before = cpu_s(server.pid)
                    start = time.monotonic()
                    size, decode = await list_all(api, res, use_protobuf)
                    wall = time.monotonic() - start
                    rows.setdefault((res.kind, use_protobuf), []).append(
                        (size, cpu_s(server.pid) - before, wall, decode))
        await api.close()
    finally:
        cp.stop()

    def med(kind: str, pb: bool, i: int) -> float:
        return statistics.median(r[i] for r in rows[(kind, pb)])

    print(f"\npaged LIST of {args.n} each, medians of {args.rounds} (protobuf / JSON)")
    print(f"{'kind':>13} | {'MB json':>7} {'pb':>5} | {'API CPU s json':>14} {'pb':>5} | "
          f"{'wall s json':>11} {'pb':>5} | {'decode s json':>13} {'pb':>5}")
    for kind in ("Service", "EndpointSlice"):
        cells = []
        for i, scale in ((0, 1e-6), (1, 1), (2, 1), (3, 1)):
            j, p = med(kind, False, i) * scale, med(kind, True, i) * scale
            cells.append(f"{j:.2f} {p:.2f} ({p / max(j, 1e-9):.2f}x)")
        print(f"{kind:>13} | " + " | ".join(cells))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(main())
