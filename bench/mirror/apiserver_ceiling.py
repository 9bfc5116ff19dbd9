"""The ceiling of one API server (not a test): how fast it takes the writes a mirror makes.

One real control plane, nothing else running on it; a parallel client server-side-applies N
Services (each allocates a ClusterIP), then N EndpointSlices, then N GlobalServices, at
each concurrency given. The mirror's burst convergence cannot beat these rates.

    .venv/bin/python bench/mirror/apiserver_ceiling.py --n 1000 --concurrency 8,64
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from isthmus.api.crds import install_crds
from isthmus.devcluster import ControlPlane
from isthmus.kube.client import JsonObj, KubeApi
from isthmus.kube.resources import ENDPOINTSLICES, GLOBALSERVICES, NAMESPACES, SERVICES, Resource


def service(ns: str, i: int) -> JsonObj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}", "namespace": ns},
            "spec": {"type": "ClusterIP",
                     "ports": [{"name": "http", "port": 80, "targetPort": 20000 + i}]}}


def endpoint_slice(ns: str, i: int) -> JsonObj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"s{i}", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": f"s{i}"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}],
            "ports": [{"name": "http", "port": 20000 + i, "protocol": "TCP"}]}


def global_service(ns: str, i: int) -> JsonObj:
    return {"apiVersion": "isthmus.io/v1alpha1", "kind": "GlobalService",
            "metadata": {"name": f"s{i}", "namespace": ns},
            "spec": {"hosts": [f"s{i}.{ns}.global"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                "outboundPort": 20000 + i}],
                     "endpoints": [{"cluster": "west", "address": "10.0.0.9", "port": 15443,
                                    "weight": 100, "health": "Healthy", "readyEndpoints": 1,
                                    "pinnedPorts": [{"port": 80, "outboundPort": 30000 + i}]}]}}


async def rate(api: KubeApi, res: Resource, make: Callable[[str, int], JsonObj], ns: str,
               n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await api.apply(res, make(ns, i), field_manager="ceiling", force=True)

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.monotonic() - start)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", default="8,64")
    args = parser.parse_args()
    cp = ControlPlane("ceiling", service_cidr="10.96.0.0/12").start()
    try:
        api = await KubeApi.connect(cp.kubeconfig, cp.context)
        await install_crds(api)
        rows: list[Any] = []
        for conc in (int(c) for c in args.concurrency.split(",")):
            ns = f"c{conc}"
            await api.create(NAMESPACES, {"metadata": {"name": ns}})
            svc = await rate(api, SERVICES, service, ns, args.n, conc)
            sl = await rate(api, ENDPOINTSLICES, endpoint_slice, ns, args.n, conc)
            gs = await rate(api, GLOBALSERVICES, global_service, ns, args.n, conc)
            rows.append((conc, svc, sl, gs))
        await api.close()
        print(f"\nserver-side applies per second, {args.n} new objects each")
        print(f"{'in flight':>9} | {'Service':>8} {'EndpointSlice':>13} {'GlobalService':>13}")
        for conc, svc, sl, gs in rows:
            print(f"{conc:>9} | {svc:8.0f} {sl:13.0f} {gs:13.0f}")
    finally:
        cp.stop()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(main())
