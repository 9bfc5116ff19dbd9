"""Helpers for the mirror tests: a PKI, cluster preparation, and a mesh of controllers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from isthmus.api.crds import install_crds
from isthmus.cli.install import create_placeholders
from isthmus.devcluster import ControlPlane
from isthmus.devcluster.controlplane import free_port
from isthmus.kube import errors as kube_errors
from isthmus.kube.client import JsonObj, KubeApi
from isthmus.kube.resources import (
    CONFIGMAPS,
    ENDPOINTSLICES,
    GLOBALSERVICES,
    LINKS,
    NAMESPACES,
    SECRETS,
    SERVICES,
    Resource,
)
from isthmus.mirror.controller import MirrorController
from isthmus.mirror.settings import MirrorSettings
from isthmus.trust import (
    CertifiedKey,
    TrustBundle,
    bundle_configmap,
    cluster_ca_secret,
    create_cluster_ca,
    create_root,
)

ROOT = Path(__file__).resolve().parents[2]
TD = "example.org"
T = TypeVar("T")

RBAC_RESOURCES = {
    "ServiceAccount": Resource("", "v1", "serviceaccounts", "ServiceAccount", True),
    "ClusterRole": Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    "ClusterRoleBinding": Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                                   "ClusterRoleBinding", False),
    "Role": Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    "RoleBinding": Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
}


class Pki:
    def __init__(self) -> None:
        self.root = create_root(TD)
        self.bundle = TrustBundle.of([self.root.cert])
        self._cas: dict[str, CertifiedKey] = {}

    def ca(self, cluster: str) -> CertifiedKey:
        if cluster not in self._cas:
            self._cas[cluster] = create_cluster_ca(self.root, cluster)
        return self._cas[cluster]


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 20.0,
                     interval: float = 0.1, what: str = "condition") -> T:
    """Retry ``check`` until it returns a truthy value without raising AssertionError."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = await check()
            if result:
                return result
        except (AssertionError, kube_errors.NotFoundError) as exc:
            last = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


async def get_or_none(api: KubeApi, res: Resource, name: str, ns: str | None = None) -> JsonObj | None:
    try:
        return await api.get(res, name, ns)
    except kube_errors.NotFoundError:
        return None


async def apply(api: KubeApi, res: Resource, obj: JsonObj) -> JsonObj:
    return await api.apply(res, obj, field_manager="test", force=True)


async def ensure_namespace(api: KubeApi, name: str) -> None:
    await apply(api, NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": name}})


async def prepare_cluster(cp: ControlPlane, api: KubeApi, pki: Pki, workdir: Path,
                          token_seconds: int = 3600) -> Path:
    """CRDs, isthmus-system, the CA Secret + bundle, the mirror's RBAC, the leaf Secrets and
    the Lease (install's placeholders); a SA kubeconfig whose token lasts ``token_seconds``."""
    await install_crds(api)
    await ensure_namespace(api, "isthmus-system")
    await apply(api, SECRETS, cluster_ca_secret(pki.ca(cp.name), pki.root.cert_pem()))
    await apply(api, CONFIGMAPS, bundle_configmap(pki.bundle))
    for doc in yaml.safe_load_all((ROOT / "manifests/mirror/rbac.yaml").read_text()):
        await apply(api, RBAC_RESOURCES[doc["kind"]], doc)
    await create_placeholders(api)  # as `isthmus install` does: the mirror cannot create them
    path = workdir / f"{cp.name}-mirror.kubeconfig"
    await asyncio.to_thread(cp.service_account_kubeconfig, "isthmus-system", "isthmus-mirror", path,
                            expiration_seconds=token_seconds)
    return path


async def set_gateway(api: KubeApi, addresses: list[str]) -> None:
    await apply(api, SERVICES, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "isthmus-gateway", "namespace": "isthmus-system"},
        "spec": {"ports": [{"name": "inbound", "port": 15443}]},
    })
    await apply(api, ENDPOINTSLICES, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "isthmus-gateway-1", "namespace": "isthmus-system",
                     "labels": {"kubernetes.io/service-name": "isthmus-gateway"}},
        "addressType": "IPv4",
        "ports": [{"name": "inbound", "port": 15443, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
    })


async def export_service(
    api: KubeApi, ns: str, name: str, *, ports: list[tuple[str, int]] | None = None,
    label: str | None = "true", annotations: dict[str, str] | None = None, ready: int = 1,
) -> None:
    """A Service (selectorless) plus an EndpointSlice with ``ready`` ready endpoints."""
    ports = ports or [("http", 8080)]
    labels = {} if label is None else {"isthmus.io/export": label}
    await apply(api, SERVICES, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
                     "annotations": annotations or {}},
        "spec": {"ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]},
    })
    if ready:
        await apply(api, ENDPOINTSLICES, {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-1", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
            "endpoints": [{"addresses": [f"10.1.0.{i + 1}"], "conditions": {"ready": True}}
                          for i in range(ready)],
        })


def fast_settings(**overrides: Any) -> MirrorSettings:
    values: dict[str, Any] = {
        "catalog_host": "127.0.0.1", "catalog_port": 0, "metrics_host": "127.0.0.1",
        "catalog_via": "direct",  # the Links here name catalog servers, not gateways
        "metrics_port": 0, "leader_election": False, "heartbeat_seconds": 1.0,
        "idle_timeout_seconds": 4.0, "reconnect_max_seconds": 0.5, "watch_timeout_seconds": 60,
        "lease_seconds": 3.0, "lease_renew_seconds": 0.5, "write_attempts": 3,
        "requeue_limit": 1,
    }
    values.update(overrides)
    return MirrorSettings(**values)


class Member:
    def __init__(self, cp: ControlPlane, admin: KubeApi, sa_kubeconfig: Path) -> None:
        self.cp = cp
        self.name = cp.name
        self.admin = admin
        self.sa_kubeconfig = sa_kubeconfig
        self.catalog_port = free_port()
        self.controller: MirrorController | None = None
        self.task: asyncio.Task[None] | None = None
        self.api: KubeApi | None = None

    @property
    def c(self) -> MirrorController:
        assert self.controller is not None
        return self.controller


class Mesh:
    def __init__(self, pki: Pki, workdir: Path, *, token_seconds: int = 3600) -> None:
        self.pki = pki
        self.workdir = workdir
        self.token_seconds = token_seconds  # the mirrors' ServiceAccount tokens
        self.members: dict[str, Member] = {}

    def __getitem__(self, name: str) -> Member:
        return self.members[name]

    async def add(self, cp: ControlPlane, gateway: list[str] | None = None) -> Member:
        admin = await KubeApi.connect(cp.kubeconfig, cp.context)
        path = await prepare_cluster(cp, admin, self.pki, self.workdir, self.token_seconds)
        await set_gateway(admin, gateway or ["10.244.0.10", "10.244.0.11"])
        member = Member(cp, admin, path)
        self.members[cp.name] = member
        return member

    async def link(self, local: str, peer: str, *, port: int | None = None,
                   name: str | None = None) -> JsonObj:
        body = {
            "apiVersion": "isthmus.io/v1alpha1", "kind": "Link",
            "metadata": {"name": name or peer},
            "spec": {"cluster": peer, "trustDomain": TD,
                     "gatewayAddresses": [{"host": "127.0.0.1",
                                           "port": port or self.members[peer].catalog_port}],
                     "locality": {"region": f"region-{peer}"}},
        }
        return await apply(self.members[local].admin, LINKS, body)

    async def unlink(self, local: str, peer: str) -> None:
        with contextlib.suppress(kube_errors.NotFoundError):
            await self.members[local].admin.delete(LINKS, peer)

    async def start(self, name: str, *, api: KubeApi | None = None, wait: bool = True,
                    **overrides: Any) -> MirrorController:
        member = self.members[name]
        if member.api is None:
            member.api = await KubeApi.connect(member.sa_kubeconfig, None)
        overrides.setdefault("catalog_port", member.catalog_port)
        controller = MirrorController(api or member.api, fast_settings(**overrides))
        member.controller = controller
        member.task = asyncio.create_task(controller.run())
        if wait:
            await self.wait_ready(name)
        return controller

    async def wait_ready(self, name: str, timeout: float = 30.0) -> None:
        member = self.members[name]

        async def ready() -> bool:
            if member.task is not None and member.task.done():
                member.task.result()
            return member.c.ready.is_set()

        await eventually(ready, timeout, what=f"{name} mirror ready")

    async def stop(self, name: str) -> None:
        member = self.members[name]
        if member.task is not None:
            member.task.cancel()
            done, _ = await asyncio.wait([member.task], timeout=30)
            if not done:
                stuck = []
                for t in asyncio.all_tasks():
                    frames = [f"{f.f_code.co_filename.rsplit('/', 1)[-1]}:{f.f_lineno}"
                              f":{f.f_code.co_name}" for f in t.get_stack()]
                    stuck.append(f"{t.get_name()} {frames}")
                raise AssertionError(f"mirror of {name} did not stop: " + "\n".join(stuck))
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await member.task
        member.task = None

    async def close(self) -> None:
        for name in list(self.members):
            await self.stop(name)
        for member in self.members.values():
            for api in (member.api, member.admin):
                if api is not None:
                    await api.close()

    async def gs(self, cluster: str, ns: str, name: str) -> JsonObj | None:
        return await get_or_none(self.members[cluster].admin, GLOBALSERVICES, name, ns)

    async def svc(self, cluster: str, ns: str, name: str) -> JsonObj | None:
        return await get_or_none(self.members[cluster].admin, SERVICES, name, ns)

    async def link_status(self, cluster: str, link: str) -> dict[str, Any]:
        obj = await self.members[cluster].admin.get(LINKS, link)
        return dict(obj.get("status") or {})


def condition(obj: JsonObj | dict[str, Any] | None, type_: str) -> dict[str, Any]:
    status = (obj or {}).get("status", obj) or {}
    for c in status.get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    # not (yet) written: a status no check expects, so `eventually` simply tries again
    return {"type": type_, "status": "Absent", "reason": "", "message": ""}
