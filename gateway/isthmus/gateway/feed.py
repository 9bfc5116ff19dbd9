"""Config: from the API server (or a routes file) to routing snapshots, and TLS material.

``run_api_feed`` keeps four reflectors (Services and EndpointSlices of every namespace,
Links, GlobalServices); once each has listed, every change rebuilds the snapshot with the
pure ``build_snapshot`` (coalescing bursts for ``debounce`` seconds) and swaps it in.
``run_file_feed`` does the same from a YAML file of objects (no API server: the benchmark,
the network-namespace test). ``watch_tls_secret`` polls the gateway's own Secret
(``isthmus-gateway-tls``: ``tls.crt``, ``tls.key``) and the trust bundle (ConfigMap
``isthmus-trust-bundle``, or a --trust-bundle file, or the Secret's ``ca.crt``) and swaps the
TLS material; open connections keep theirs. Adding or removing a root in the ConfigMap thus
reaches running gateways within one poll interval.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from isthmus.gateway.snapshot import build_snapshot
from isthmus.gateway.state import GatewayState
from isthmus.kube.client import KubeApi
from isthmus.kube.errors import KubeError, NotFoundError
from isthmus.kube.reflector import Reflector
from isthmus.kube.resources import (
    CONFIGMAPS,
    ENDPOINTSLICES,
    GLOBALSERVICES,
    LINKS,
    SECRETS,
    SERVICEEXPORTS,
    SERVICES,
)
from isthmus.logging import get_logger
from isthmus.trust import (
    BUNDLE_CONFIGMAP,
    BUNDLE_KEY,
    MaterialError,
    ReloadableTls,
    TlsMaterial,
)

# Lazy: structlog builds it on first use, after the process configured logging.
log = get_logger("isthmus.gateway.feed")


class ApiFeed:
    """Reflectors → snapshots (see the module docstring)."""

    def __init__(
        self,
        api: KubeApi,
        state: GatewayState,
        *,
        catalog_address: tuple[str, int] | None,
        debounce: float = 0.05,
    ) -> None:
        self.state = state
        self.catalog_address = catalog_address
        self.debounce = debounce
        self.reflectors = {
            "services": Reflector(api, SERVICES),
            "endpointslices": Reflector(api, ENDPOINTSLICES),
            "links": Reflector(api, LINKS),
            "globalservices": Reflector(api, GLOBALSERVICES),
            # optional: without the MCS CRDs there are no ServiceExports
            "serviceexports": Reflector(api, SERVICEEXPORTS, optional=True),
        }
        self.synced: set[str] = set()
        self.version = 0
        self._changed = asyncio.Event()

    async def _pump(self, name: str, reflector: Reflector) -> None:
        async for kind, _obj in reflector.events():
            if kind == "SYNCED":
                self.synced.add(name)
            self._changed.set()

    async def _build(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(self.debounce)
            self._changed.clear()
            if len(self.synced) < len(self.reflectors):
                continue
            self.rebuild()

    def rebuild(self) -> None:
        self.version += 1
        r = self.reflectors
        snapshot = build_snapshot(
            services=list(r["services"].store.values()),
            slices=list(r["endpointslices"].store.values()),
            links=list(r["links"].store.values()),
            global_services=list(r["globalservices"].store.values()),
            service_exports=list(r["serviceexports"].store.values()),
            catalog_address=self.catalog_address,
            version=self.version,
        )
        for problem in snapshot.skipped:
            log.warning("object skipped", problem=problem)
        self.state.swap(snapshot)
        log.debug("snapshot swapped", version=snapshot.version, exports=len(snapshot.exports),
                     links=len(snapshot.links), outbound=len(snapshot.outbound))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for name, reflector in self.reflectors.items():
                tg.create_task(self._pump(name, reflector))
            tg.create_task(self._build())


def snapshot_from_documents(
    docs: Mapping[str, Any], catalog_address: tuple[str, int] | None, version: int
) -> Any:
    return build_snapshot(
        services=docs.get("services") or [],
        slices=docs.get("endpointSlices") or [],
        links=docs.get("links") or [],
        global_services=docs.get("globalServices") or [],
        catalog_address=catalog_address,
        version=version,
    )


async def run_file_feed(
    path: Path,
    state: GatewayState,
    *,
    catalog_address: tuple[str, int] | None,
    interval: float = 1.0,
) -> None:
    """Routes from a YAML file ``{services, endpointSlices, links, globalServices}``,
    re-read when it changes."""
    seen: float | None = None
    version = 0

    def read() -> tuple[float, Any]:
        mtime = path.stat().st_mtime
        return mtime, (yaml.safe_load(path.read_text()) if mtime != seen else None) or {}

    while True:
        try:
            mtime, docs = await asyncio.to_thread(read)
            if mtime != seen:
                version += 1
                state.swap(snapshot_from_documents(docs, catalog_address, version))
                seen = mtime
        except (OSError, yaml.YAMLError) as exc:
            log.error("routes file not loaded", path=str(path), error=str(exc))
        await asyncio.sleep(interval)


def material_from_secret(secret: Mapping[str, Any], bundle_pem: bytes | None) -> TlsMaterial:
    """Leaf from the Secret; roots from ``bundle_pem`` (a --trust-bundle file or the bundle
    ConfigMap), else the Secret's own ``ca.crt``."""
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    bundle = bundle_pem or data.get("ca.crt")
    if not bundle:
        raise MaterialError(
            "no trust bundle: none in ConfigMap isthmus-trust-bundle, no --trust-bundle file, "
            "and no ca.crt in the TLS secret"
        )
    return TlsMaterial.from_secret_data(data, bundle)


async def _bundle_from_configmap(api: KubeApi, namespace: str) -> bytes | None:
    """The cluster's trust bundle (every root accepted, two while a root rotates)."""
    try:
        cm = await api.get(CONFIGMAPS, BUNDLE_CONFIGMAP, namespace)
    except NotFoundError:
        return None
    pem = (cm.get("data") or {}).get(BUNDLE_KEY)
    return pem.encode() if isinstance(pem, str) and pem else None


async def load_tls_secret(
    api: KubeApi, name: str, namespace: str, bundle_pem: bytes | None
) -> TlsMaterial:
    secret = await api.get(SECRETS, name, namespace)
    if bundle_pem is None:
        bundle_pem = await _bundle_from_configmap(api, namespace)
    return material_from_secret(secret, bundle_pem)


async def watch_tls_secret(
    api: KubeApi,
    tls: ReloadableTls,
    name: str,
    namespace: str,
    bundle_path: Path | None,
    *,
    interval: float = 2.0,
) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            bundle = await asyncio.to_thread(bundle_path.read_bytes) if bundle_path else None
            tls.update(await load_tls_secret(api, name, namespace, bundle))
        except (KubeError, MaterialError, OSError) as exc:
            log.error("tls secret not reloaded, keeping the current material", error=str(exc))
