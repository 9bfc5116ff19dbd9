"""The feed against a real API server: GlobalServices written with the real client reach
answers through the real reflector (issue 4: "tests write them directly into a real API
server"). One private control plane, so the DNS suite does not start the shared three."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from dns_fixtures import global_service, query
from dnslib import RCODE, DNSRecord

from isthmus.api.crds import install_crds
from isthmus.devcluster import ControlPlane
from isthmus.dns.feed import Feed
from isthmus.dns.responder import Responder
from isthmus.dns.snapshot import SnapshotConfig, SnapshotHolder
from isthmus.kube.client import KubeApi
from isthmus.kube.reflector import Reflector
from isthmus.kube.resources import GLOBALSERVICES, NAMESPACES

pytestmark = [pytest.mark.controlplane, pytest.mark.timeout(120)]


def answer(responder: Responder, name: str) -> tuple[int, list[str]]:
    reply = responder.handle(query(name), udp=True)
    assert reply is not None
    parsed = DNSRecord.parse(reply)
    return parsed.header.rcode, [str(r.rdata) for r in parsed.rr]


async def test_globalservice_writes_reach_answers(
    fresh_cluster: Callable[..., ControlPlane], unique: str
) -> None:
    cp = fresh_cluster()
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        await install_crds(api)
        await api.create(NAMESPACES, {"metadata": {"name": unique}})
        holder = SnapshotHolder(SnapshotConfig())
        responder = Responder(holder.current)
        holder.subscribe(responder.set_snapshot)
        feed = Feed(holder)
        arrivals: list[float] = []
        apply = feed.apply

        def timed(kind: str, obj: Any, store: Any) -> None:
            arrivals.append(time.monotonic())  # when the watch event reaches us
            apply(kind, obj, store)

        feed.apply = timed  # type: ignore[method-assign]
        task = asyncio.create_task(feed.run(Reflector(api, GLOBALSERVICES, unique)))
        try:
            await asyncio.wait_for(feed.synced.wait(), 30)
            name = f"users.{unique}.global"
            body = global_service("users", unique).to_wire()
            body.pop("status")
            created = await api.create(GLOBALSERVICES, body, namespace=unique)

            async def until(expected: tuple[int, list[str]]) -> float:
                deadline = time.monotonic() + 10
                while answer(responder, name) != expected:
                    assert time.monotonic() < deadline, answer(responder, name)
                    await asyncio.sleep(0.001)
                return time.monotonic() - arrivals[-1]

            assert await until((RCODE.NOERROR, [])) < 0.1  # exists, no VIP yet: NODATA
            created["status"] = {"vips": ["10.96.5.5"]}
            await api.request("PUT", GLOBALSERVICES.path(unique, "users") + "/status",
                              body=created)
            assert await until((RCODE.NOERROR, ["10.96.5.5"])) < 0.1
            await api.delete(GLOBALSERVICES, "users", unique)
            assert await until((RCODE.NXDOMAIN, [])) < 0.1
        finally:
            task.cancel()
    finally:
        await api.close()
