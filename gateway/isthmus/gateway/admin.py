"""Admin HTTP (aiohttp): ``/healthz``, ``/readyz``, ``/metrics``, and ``/config`` when enabled.

``/config`` lists every backend address and peer gateway the gateway knows: anyone who can
reach the admin port (the pod network, for probes and scraping) could map the cluster with
it, so it is off unless the operator turns it on (``--config-endpoint``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from isthmus.gateway.metrics import Metrics
from isthmus.gateway.state import GatewayState


def build_app(
    state: GatewayState,
    metrics: Metrics,
    *,
    ready: Callable[[], tuple[bool, str]],
    extra_config: Callable[[], dict[str, Any]],
    config_endpoint: bool = False,
) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        ok, why = ready()
        return web.Response(status=200 if ok else 503, text=f"{why}\n")

    async def metrics_view(_request: web.Request) -> web.Response:
        metrics.snapshot_version.set(state.snapshot.version)
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def config(_request: web.Request) -> web.Response:
        dump = state.snapshot.to_json()
        dump.update(extra_config())
        return web.json_response(dump)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    if config_endpoint:
        app.router.add_get("/config", config)
    return app
