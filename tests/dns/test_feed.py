"""The watch glue: reflector events -> snapshot -> answers (the holder level;
test_feed_apiserver.py drives the same Feed through a real API server and Reflector)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from dns_fixtures import global_service, query
from dnslib import RCODE, DNSRecord
from structlog.testing import capture_logs

from isthmus.dns.feed import Feed
from isthmus.dns.responder import Responder
from isthmus.dns.snapshot import SnapshotConfig, SnapshotHolder


def wire(name: str, ns: str, vip: str) -> dict[str, Any]:
    return global_service(name, ns, [vip]).to_wire()


class ScriptedReflector:
    """Stands in for isthmus.kube.reflector.Reflector: same ``store`` and ``events()``
    shape, events pushed by the test."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.queue: asyncio.Queue[tuple[str, dict[str, Any] | None]] = asyncio.Queue()

    def push(self, kind: str, obj: dict[str, Any] | None = None) -> None:
        if obj is not None:
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            if kind == "DELETED":
                self.store.pop(key, None)
            else:
                self.store[key] = obj
        self.queue.put_nowait((kind, obj))

    async def events(self) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
        while True:
            yield await self.queue.get()


def answer(responder: Responder, name: str) -> tuple[int, list[str]]:
    reply = responder.handle(query(name), udp=True)
    assert reply is not None
    parsed = DNSRecord.parse(reply)
    return parsed.header.rcode, [str(r.rdata) for r in parsed.rr]


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds; the timeout only keeps a broken feed from hanging."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.001)


async def start() -> tuple[ScriptedReflector, Feed, Responder, asyncio.Task[None]]:
    holder = SnapshotHolder(SnapshotConfig())
    responder = Responder(holder.current)
    holder.subscribe(responder.set_snapshot)
    source = ScriptedReflector()
    feed = Feed(holder)
    task = asyncio.create_task(feed.run(source))
    return source, feed, responder, task


async def test_events_reach_answers() -> None:
    source, _feed, responder, task = await start()
    try:
        source.store[("shop", "users")] = wire("users", "shop", "10.96.0.1")
        source.push("SYNCED")
        await wait_for(lambda: answer(responder, "users.shop.global")[1] == ["10.96.0.1"])
        for kind, vip in (("MODIFIED", "10.96.0.2"), ("ADDED", "10.96.0.3")):
            name = "users" if kind == "MODIFIED" else "orders"
            source.push(kind, wire(name, "shop", vip))
            await wait_for(lambda n=name, v=vip: answer(responder, f"{n}.shop.global")[1] == [v])
        source.push("DELETED", wire("users", "shop", "10.96.0.2"))
        await wait_for(lambda: answer(responder, "users.shop.global")[0] == RCODE.NXDOMAIN)
        assert answer(responder, "orders.shop.global")[1] == ["10.96.0.3"]
    finally:
        task.cancel()


async def test_invalid_object_is_skipped_and_last_good_kept() -> None:
    source, _feed, responder, task = await start()
    try:
        source.push("ADDED", wire("users", "shop", "10.96.0.1"))
        await wait_for(lambda: answer(responder, "users.shop.global")[1] == ["10.96.0.1"])
        bad = wire("users", "shop", "10.96.0.9")
        bad["status"]["vips"] = ["not-an-ip"]
        with capture_logs() as logs:
            source.push("MODIFIED", bad)
            source.push("ADDED", wire("orders", "shop", "10.96.0.5"))
            await wait_for(lambda: answer(responder, "orders.shop.global")[1] == ["10.96.0.5"])
        assert answer(responder, "users.shop.global")[1] == ["10.96.0.1"]  # last good
        assert any(e["event"] == "globalservice_rejected" and e["name"] == "users"
                   for e in logs)
    finally:
        task.cancel()


async def test_resync_replaces_everything_and_bursts_coalesce() -> None:
    source, feed, responder, task = await start()
    builds: list[int] = []
    feed.holder.subscribe(lambda s: builds.append(s.generation))
    try:
        for i in range(300):
            source.push("ADDED", wire(f"s{i}", "ns", f"10.1.{i // 250}.{i % 250 + 1}"))
        await wait_for(lambda: answer(responder, "s299.ns.global")[1] == ["10.1.1.50"])
        assert len(builds) < 30  # 300 events, a handful of rebuilds
        source.store.clear()
        source.store[("ns", "only")] = wire("only", "ns", "10.2.0.1")
        source.push("SYNCED")
        await wait_for(lambda: answer(responder, "only.ns.global")[1] == ["10.2.0.1"])
        assert answer(responder, "s1.ns.global")[0] == RCODE.NXDOMAIN
        assert feed.synced.is_set()
    finally:
        task.cancel()


def mirror_service(name: str, gs: str, ip: str, cluster: str = "") -> dict[str, Any]:
    labels = {"isthmus.io/mirror": "true", "app.kubernetes.io/managed-by": "isthmus",
              "isthmus.io/global-service": gs}
    if cluster:
        labels["isthmus.io/pinned-cluster"] = cluster
    return {"metadata": {"name": name, "namespace": "shop", "labels": labels},
            "spec": {"clusterIP": ip}}


async def test_mirror_services_answer_before_the_status_and_sync_gates_both() -> None:
    holder = SnapshotHolder(SnapshotConfig())
    responder = Responder(holder.current)
    holder.subscribe(responder.set_snapshot)
    source, mirrors = ScriptedReflector(), ScriptedReflector()
    feed = Feed(holder)
    task = asyncio.create_task(feed.run(source, mirrors))
    try:
        body = global_service("users", "shop", endpoints=["east"]).to_wire()
        source.store[("shop", "users")] = body
        source.push("SYNCED")
        await asyncio.sleep(0.01)
        assert not feed.synced.is_set()  # the Services have not listed yet
        mirrors.store[("shop", "users-global")] = mirror_service("users-global", "users",
                                                                 "10.96.0.10")
        mirrors.push("SYNCED")
        await wait_for(feed.synced.is_set)
        await wait_for(lambda: answer(responder, "users.shop.global")[1] == ["10.96.0.10"])
        mirrors.push("ADDED", mirror_service("users-east-global", "users", "10.96.0.11", "east"))
        await wait_for(lambda: answer(responder, "users.shop.east.global")[1] == ["10.96.0.11"])
        # a Service that is not ours lends nothing, even under the mirror's name
        mirrors.push("MODIFIED", {"metadata": {"name": "users-global", "namespace": "shop"},
                                  "spec": {"clusterIP": "10.96.6.6"}})
        await wait_for(lambda: answer(responder, "users.shop.global")[1] == [])
        # the status takes over once the Service is gone
        body["status"]["vips"] = ["10.96.0.20"]
        source.push("MODIFIED", body)
        mirrors.push("DELETED", mirror_service("users-east-global", "users", "10.96.0.11",
                                               "east"))
        await wait_for(lambda: answer(responder, "users.shop.global")[1] == ["10.96.0.20"])
        assert answer(responder, "users.shop.east.global") == (RCODE.NOERROR, [])
    finally:
        task.cancel()
