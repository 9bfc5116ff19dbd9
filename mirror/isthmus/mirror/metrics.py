"""Prometheus metrics of one mirror controller (own registry, so tests can run several)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class MirrorMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.catalog_version = Gauge(
            "isthmus_mirror_peer_catalog_version", "Last catalog version seen per peer",
            ["peer"], registry=r)
        self.sync_lag = Gauge(
            "isthmus_mirror_peer_sync_lag_seconds",
            "Seconds since the last message from the peer's catalog", ["peer"], registry=r)
        self.peer_up = Gauge(
            "isthmus_mirror_peer_up", "1 when the peer's catalog stream is open", ["peer"],
            registry=r)
        self.imported = Gauge(
            "isthmus_mirror_imported_services", "Services imported per peer", ["peer"],
            registry=r)
        self.objects_written = Counter(
            "isthmus_mirror_objects_written_total", "Objects applied or deleted",
            ["kind", "action"], registry=r)
        self.resync_unchanged = Counter(
            "isthmus_mirror_resync_unchanged_total",
            "Services a first check in this term found unchanged by their syncedFrom digest "
            "(not re-checked)", registry=r)
        self.errors = Counter(
            "isthmus_mirror_errors_total", "Errors by kind", ["kind"], registry=r)
        self.conflicts = Gauge(
            "isthmus_mirror_conflicts", "Objects not written because of a conflict",
            registry=r)
        self.export_to_mirror = Histogram(
            "isthmus_mirror_export_to_mirror_seconds",
            "From the exporting controller seeing a change to the mirror being written",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30), registry=r)
        self.exported = Gauge(
            "isthmus_mirror_exported_services", "Services in the local export catalog",
            registry=r)
        self.refused_pods = Gauge(
            "isthmus_mirror_refused_headless_pods",
            "Ready endpoints of exported headless Services given no per-pod name (bad or "
            "repeated hostname, over the limit)", registry=r)
        self.local_catalog_version = Gauge(
            "isthmus_mirror_catalog_version", "Version of the local export catalog", registry=r)
        self.catalog_subscribers = Gauge(
            "isthmus_mirror_catalog_subscribers", "Open catalog streams", registry=r)
        self.catalog_refusals = Counter(
            "isthmus_mirror_catalog_refusals_total", "Refused catalog callers by reason",
            ["reason"], registry=r)
        self.refused = Gauge(
            "isthmus_mirror_refused_services",
            "Services of a peer not imported, by the import policy's reason", ["peer", "reason"],
            registry=r)
        self.catalog_rejected = Counter(
            "isthmus_mirror_catalog_rejected_total",
            "Catalog entries from a peer that failed validation", ["peer"], registry=r)
        self.leader = Gauge("isthmus_mirror_leader", "1 while this replica leads", registry=r)
        self.queue_depth = Gauge(
            "isthmus_mirror_pending_keys", "Services waiting to be reconciled", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def serve_metrics(
    metrics: MirrorMetrics, host: str, port: int, ready: Callable[[], bool]
) -> web.AppRunner:
    """/metrics, /healthz and /readyz on an aiohttp server; returns its runner."""

    async def handle_metrics(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def handle_health(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def handle_ready(_request: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready (not leading, or not synced)\n")

    app = web.Application()
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/healthz", handle_health)
    app.router.add_get("/readyz", handle_ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
