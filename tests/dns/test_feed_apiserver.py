"""The feed and the CLI against a real API server: GlobalServices written with the real
client reach answers through the real reflector. One private control plane for this module,
so the DNS suite does not start the shared three."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dns_fixtures import global_service, query
from dnslib import RCODE, DNSRecord

from isthmus.api.crds import install_crds
from isthmus.devcluster import ControlPlane, ControlPlaneError, find_binaries
from isthmus.dns.feed import Feed
from isthmus.dns.responder import Responder
from isthmus.dns.snapshot import SnapshotConfig, SnapshotHolder
from isthmus.kube.client import KubeApi
from isthmus.kube.reflector import Reflector
from isthmus.kube.resources import GLOBALSERVICES, NAMESPACES

pytestmark = [pytest.mark.controlplane, pytest.mark.timeout(120)]
ISTHMUS = str(Path(sys.executable).with_name("isthmus"))
RBAC_YAML = (Path(__file__).resolve().parents[2] / "manifests/dns/rbac.yaml").read_text()


@pytest.fixture(scope="module")
def dns_cluster() -> Iterator[ControlPlane]:
    try:
        find_binaries()
    except ControlPlaneError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    cp = ControlPlane(f"dns{uuid.uuid4().hex[:5]}").start()
    try:
        yield cp
    finally:
        cp.stop()


def answer(responder: Responder, name: str) -> tuple[int, list[str]]:
    reply = responder.handle(query(name), udp=True)
    assert reply is not None
    parsed = DNSRecord.parse(reply)
    return parsed.header.rcode, [str(r.rdata) for r in parsed.rr]


async def test_globalservice_writes_reach_answers(dns_cluster: ControlPlane, unique: str) -> None:
    cp = dns_cluster
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        await install_crds(api)
        await api.create(NAMESPACES, {"metadata": {"name": unique}})
        holder = SnapshotHolder(SnapshotConfig())
        responder = Responder(holder.current)
        holder.subscribe(responder.set_snapshot)
        feed = Feed(holder)
        task = asyncio.create_task(feed.run(Reflector(api, GLOBALSERVICES, unique)))
        try:
            await asyncio.wait_for(feed.synced.wait(), 30)
            name = f"users.{unique}.global"
            body = global_service("users", unique).to_wire()
            body.pop("status")
            created = await api.create(GLOBALSERVICES, body, namespace=unique)

            async def until(expected: tuple[int, list[str]]) -> None:
                # Each write alone moves the answer on; the deadline only bounds a broken
                # feed (time from event to answer is measured in bench/mirror/e2e.py).
                deadline = time.monotonic() + 10
                while answer(responder, name) != expected:
                    assert time.monotonic() < deadline, answer(responder, name)
                    await asyncio.sleep(0.001)

            await until((RCODE.NOERROR, []))  # exists, no VIP yet: NODATA
            created["status"] = {"vips": ["10.96.5.5"]}
            await api.request("PUT", GLOBALSERVICES.path(unique, "users") + "/status",
                              body=created)
            await until((RCODE.NOERROR, ["10.96.5.5"]))
            await api.delete(GLOBALSERVICES, "users", unique)
            await until((RCODE.NXDOMAIN, []))
        finally:
            task.cancel()
    finally:
        await api.close()


async def test_cli_serves_a_cluster_once_listed(dns_cluster: ControlPlane, unique: str) -> None:
    api = await KubeApi.connect(dns_cluster.kubeconfig, dns_cluster.context)
    try:
        await install_crds(api)
        await api.create(NAMESPACES, {"metadata": {"name": unique}})
        body = global_service("orders", unique).to_wire()
        body.pop("status")
        created = await api.create(GLOBALSERVICES, body, namespace=unique)
        created["status"] = {"vips": ["10.96.6.6"]}
        await api.request("PUT", GLOBALSERVICES.path(unique, "orders") + "/status",
                          body=created)
    finally:
        await api.close()
    proc = await asyncio.create_subprocess_exec(
        ISTHMUS, "dns", "--listen-address", "127.0.0.1", "--port", "0",
        "--kubeconfig", str(dns_cluster.kubeconfig), "--context", dns_cluster.context,
        stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        events = []
        while True:
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert line, f"responder exited: {events}"
            event = json.loads(line)
            events.append(event["event"])
            if event["event"] == "dns_listening":
                port = int(event["port"])
                break
        # The port opened only after the first full list: the name is there at once.
        assert events.index("dns_waiting_for_globalservices") < events.index("dns_listening")
        raw = await asyncio.to_thread(
            DNSRecord.question(f"orders.{unique}.global").send, "127.0.0.1", port, timeout=2)
        assert [str(r.rdata) for r in DNSRecord.parse(raw).rr] == ["10.96.6.6"]
    finally:
        proc.terminate()
        await proc.wait()


async def test_mirror_service_vips_answer_as_the_dns_service_account(
        dns_cluster: ControlPlane, unique: str, tmp_path: Path) -> None:
    """The feed as production runs it (``watch_kubernetes``, every namespace) with the
    isthmus-dns ServiceAccount and exactly manifests/dns/rbac.yaml: a GlobalService without
    status is answered from its mirror Services' ClusterIPs; a Service that is not the
    mirror's lends nothing, even under the mirror's name."""
    import yaml
    from mirror_helpers import RBAC_RESOURCES, ensure_namespace

    from isthmus.dns.feed import watch_kubernetes
    from isthmus.kube.resources import SERVICES

    cp = dns_cluster
    admin = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        await install_crds(admin)
        await ensure_namespace(admin, "isthmus-system")
        await ensure_namespace(admin, unique)
        for doc in yaml.safe_load_all(RBAC_YAML):
            await admin.apply(RBAC_RESOURCES[doc["kind"]], doc, field_manager="test",
                              force=True)
        kubeconfig = await asyncio.to_thread(cp.service_account_kubeconfig, "isthmus-system",
                                             "isthmus-dns", tmp_path / "dns.kubeconfig")
        for name in ("users", "orders"):
            body = global_service(name, unique, endpoints=["east"]).to_wire()
            body.pop("status")
            await admin.create(GLOBALSERVICES, body, namespace=unique)
        ours = {"isthmus.io/mirror": "true", "app.kubernetes.io/managed-by": "isthmus"}

        async def service(name: str, labels: dict[str, str]) -> str:
            created = await admin.create(SERVICES, {
                "metadata": {"name": name, "namespace": unique, "labels": labels},
                "spec": {"ports": [{"port": 80}]}}, namespace=unique)
            return str(created["spec"]["clusterIP"])

        merged = await service("users-global", {**ours, "isthmus.io/global-service": "users"})
        pinned = await service("users-east-global", {
            **ours, "isthmus.io/global-service": "users", "isthmus.io/pinned-cluster": "east"})
        await service("orders-global", {"app": "orders"})  # not the mirror's

        dns_api = await KubeApi.connect(str(kubeconfig))
        holder = SnapshotHolder(SnapshotConfig())
        responder = Responder(holder.current)
        holder.subscribe(responder.set_snapshot)
        feed = Feed(holder)
        task = asyncio.create_task(watch_kubernetes(feed, dns_api))
        try:
            await asyncio.wait_for(feed.synced.wait(), 30)
            assert answer(responder, f"users.{unique}.global") == (RCODE.NOERROR, [merged])
            assert answer(responder, f"users.{unique}.east.global") == (RCODE.NOERROR, [pinned])
            assert answer(responder, f"orders.{unique}.global") == (RCODE.NOERROR, [])
            # a mirror Service created later answers through the watch
            later = await service("orders-x", {**ours, "isthmus.io/global-service": "orders"})
            deadline = time.monotonic() + 10
            while answer(responder, f"orders.{unique}.global")[1] != [later]:
                assert time.monotonic() < deadline, answer(responder, f"orders.{unique}.global")
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await dns_api.close()
    finally:
        await admin.close()


async def test_per_pod_names_answer_as_the_dns_service_account(
        dns_cluster: ControlPlane, unique: str, tmp_path: Path) -> None:
    """A headless import as the mirror writes it (GlobalService with endpoints[].pods, one
    labelled Service per pod), read with the isthmus-dns ServiceAccount and exactly
    manifests/dns/rbac.yaml: each pod name answers its Service's ClusterIP, the service's
    name answers every pod, and deleting a pod's Service (scale down) removes its name."""
    import yaml
    from mirror_helpers import RBAC_RESOURCES, ensure_namespace
    from test_pod_names import headless_gs

    from isthmus.dns.feed import watch_kubernetes
    from isthmus.kube.resources import SERVICES

    cp = dns_cluster
    admin = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        await install_crds(admin)
        await ensure_namespace(admin, "isthmus-system")
        await ensure_namespace(admin, unique)
        for doc in yaml.safe_load_all(RBAC_YAML):
            await admin.apply(RBAC_RESOURCES[doc["kind"]], doc, field_manager="test",
                              force=True)
        kubeconfig = await asyncio.to_thread(cp.service_account_kubeconfig, "isthmus-system",
                                             "isthmus-dns", tmp_path / "dns-pods.kubeconfig")
        body = headless_gs({"east": ["db-0", "db-1"]}, ns=unique).to_wire()
        body.pop("status")
        await admin.create(GLOBALSERVICES, body, namespace=unique)
        ours = {"isthmus.io/mirror": "true", "app.kubernetes.io/managed-by": "isthmus",
                "isthmus.io/global-service": "db", "isthmus.io/pinned-cluster": "east"}
        ips: dict[str, str] = {}
        for pod in ("db-0", "db-1"):
            created = await admin.create(SERVICES, {
                "metadata": {"name": f"db-{pod}-east-p4x4", "namespace": unique,
                             "labels": {**ours, "isthmus.io/pod": pod}},
                "spec": {"ports": [{"port": 26257}]}}, namespace=unique)
            ips[pod] = str(created["spec"]["clusterIP"])

        dns_api = await KubeApi.connect(str(kubeconfig))
        holder = SnapshotHolder(SnapshotConfig())
        responder = Responder(holder.current)
        holder.subscribe(responder.set_snapshot)
        feed = Feed(holder)
        task = asyncio.create_task(watch_kubernetes(feed, dns_api))
        try:
            await asyncio.wait_for(feed.synced.wait(), 30)
            for pod, ip in ips.items():
                assert answer(responder, f"{pod}.db.{unique}.east.global") == (
                    RCODE.NOERROR, [ip])
            rcode, every = answer(responder, f"db.{unique}.global")
            assert (rcode, sorted(every)) == (RCODE.NOERROR, sorted(ips.values()))
            await admin.delete(SERVICES, "db-db-1-east-p4x4", unique)
            deadline = time.monotonic() + 10
            while answer(responder, f"db-1.db.{unique}.east.global")[0] != RCODE.NXDOMAIN:
                assert time.monotonic() < deadline, "db-1 still answered"
                await asyncio.sleep(0.01)
            assert answer(responder, f"db.{unique}.global") == (RCODE.NOERROR, [ips["db-0"]])
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await dns_api.close()
    finally:
        await admin.close()
