"""Writes the status of this cluster's ServiceExports (the decision is
``service_export_status.export_verdict``; this module only gathers its inputs, writes the
answer when it changed, and records a Warning Event when this cluster loses a conflict).

Keys are marked dirty by the watches (the ServiceExport, its Service or slices changed) and
by every peer catalog update (another cluster's export may now conflict); a loop writes
them in batches, so a burst of changes to one key is one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from isthmus.kube import errors as kube_errors
from isthmus.kube.client import JsonObj, KubeApi
from isthmus.kube.resources import SERVICEEXPORTS
from isthmus.logging import get_logger
from isthmus.mirror.metrics import MirrorMetrics
from isthmus.mirror.model import CatalogEntry, ServiceKey
from isthmus.mirror.names import FIELD_MANAGER
from isthmus.mirror.plan import status_changed, with_transition_times
from isthmus.mirror.service_export_status import export_verdict

log = get_logger("isthmus.mirror.service_exports")

CONFLICT_EVENT = "ExportConflict"


class ServiceExportWriter:
    def __init__(
        self,
        api: KubeApi,
        metrics: MirrorMetrics,
        *,
        cluster: Callable[[], str],
        service_export: Callable[[ServiceKey], JsonObj | None],
        service: Callable[[ServiceKey], JsonObj | None],
        exported: Callable[[ServiceKey], CatalogEntry | None],
        peers: Callable[[ServiceKey], Mapping[str, CatalogEntry]],
        event: Callable[[JsonObj, str, str], None],
        interval: float = 0.3,
    ) -> None:
        self.api = api
        self.metrics = metrics
        self._cluster = cluster
        self._service_export = service_export
        self._service = service
        self._exported = exported
        self._peers = peers
        self._event = event
        self.interval = interval
        self.dirty: set[ServiceKey] = set()
        # per key: the UID of the ServiceExport written to, and the status written
        self._written: dict[ServiceKey, tuple[str, dict[str, Any]]] = {}
        self._warned: dict[ServiceKey, str] = {}  # the conflict message last reported

    def mark(self, key: ServiceKey) -> None:
        self.dirty.add(key)

    def forget(self) -> None:
        """A new leadership term: write every status again (another leader may have)."""
        self._written.clear()
        self._warned.clear()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            dirty, self.dirty = self.dirty, set()
            for key in sorted(dirty):
                try:
                    await self.write(key)
                except kube_errors.KubeError as exc:
                    self.metrics.errors.labels(kind="serviceexport_status").inc()
                    log.warning("cannot write ServiceExport status", namespace=key[0],
                                name=key[1], error=str(exc))
                    self.dirty.add(key)

    async def write(self, key: ServiceKey) -> None:
        se = self._service_export(key)
        if se is None:
            self._written.pop(key, None)
            self._warned.pop(key, None)
            return
        verdict = export_verdict(cluster=self._cluster(), service=self._service(key),
                                 exported=self._exported(key), peers=self._peers(key))
        status: dict[str, Any] = {"conditions": list(verdict.conditions)}
        uid = str(se["metadata"].get("uid") or "")
        written = self._written.get(key)
        # a ServiceExport deleted and made again is a new object, with no status yet
        before = written[1] if written is not None and written[0] == uid else None
        if before is None or status_changed(status, before):
            status["conditions"] = with_transition_times(
                status["conditions"], (before or {}).get("conditions") or [],
                dt.datetime.now(dt.UTC))
            body = {"apiVersion": SERVICEEXPORTS.api_version, "kind": "ServiceExport",
                    "metadata": {"name": key[1], "namespace": key[0]}, "status": status}
            with contextlib.suppress(kube_errors.NotFoundError):  # deleted meanwhile
                await self.api.apply(SERVICEEXPORTS, body, field_manager=FIELD_MANAGER,
                                     force=True, subresource="status")
            self._written[key] = (uid, status)
        if verdict.losing and self._warned.get(key) != verdict.conflict_message:
            self._warned[key] = verdict.conflict_message
            log.warning("export conflict lost", namespace=key[0], name=key[1],
                        message=verdict.conflict_message)
            meta = se["metadata"]
            self._event({"apiVersion": SERVICEEXPORTS.api_version, "kind": "ServiceExport",
                         "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                      "uid": meta.get("uid")}},
                        CONFLICT_EVENT, verdict.conflict_message)
        elif not verdict.losing:
            self._warned.pop(key, None)
