"""The gateway process: every part wired together, its lifecycle, and SIGTERM draining.

``Gateway`` takes its dependencies in one bundle (settings, TLS, state, metrics) so tests
run it in-process with a snapshot they build, and the CLI runs it with the API feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
from typing import Any

from aiohttp import web

from isthmus.gateway.admin import build_app
from isthmus.gateway.backend_policy import (
    BackendPolicy,
    parse_addresses,
    parse_cidrs,
    parse_ip,
)
from isthmus.gateway.health import PeerHealth
from isthmus.gateway.inbound import InboundServer
from isthmus.gateway.ktls import DataPath, detect_data_path
from isthmus.gateway.metrics import AccessLog, Metrics
from isthmus.gateway.outbound import OutboundServer
from isthmus.gateway.pool import PoolSet, PoolSettings
from isthmus.gateway.settings import GatewaySettings, parse_address
from isthmus.gateway.snapshot import Snapshot
from isthmus.gateway.state import GatewayState
from isthmus.logging import get_logger
from isthmus.trust import ReloadableTls

# Lazy: structlog builds it on first use, after the process configured logging.
log = get_logger("isthmus.gateway")


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        tls: ReloadableTls,
        state: GatewayState | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.tls = tls
        self.state = state or GatewayState()
        self.metrics = metrics or Metrics()
        # Bad addresses or CIDRs fail here, before anything listens.
        self._own_addresses = parse_addresses(settings.pod_ips)
        self._denied = parse_cidrs(settings.backend_deny_cidrs)
        self.access_log = AccessLog(settings.access_log)
        self.inbound = InboundServer(
            self.state, tls, self.metrics, self.access_log,
            handshake_timeout=settings.handshake_timeout,
            idle_timeout=settings.idle_timeout,
            connect_timeout=settings.connect_timeout,
            max_connections=settings.max_connections,
        )
        self.pools = PoolSet(tls, PoolSettings(
            min_idle=settings.pool_min_idle,
            max_idle=settings.pool_max_idle,
            idle_ttl=settings.pool_idle_ttl,
            connect_timeout=settings.connect_timeout,
            handshake_timeout=settings.handshake_timeout,
        ))
        self.health = PeerHealth(self.metrics, eject_after=settings.eject_after,
                                 probe_interval=settings.probe_interval)
        self.outbound = OutboundServer(
            self.state, self.pools, self.health, self.metrics, self.access_log,
            host=settings.outbound_host,
            locality=(settings.region, settings.zone),
            max_connections=settings.max_connections,
            reuse_port=settings.workers > 1,
        )
        self.inbound_port = 0
        self.admin_port = 0
        self.draining = False
        self.data_path: DataPath | None = None  # kernel or userspace TLS (ktls.py), at start
        self.shutting_down = False  # SIGTERM seen: not Ready, still serving (shutdown_delay)
        self._listeners_open = False  # the outbound listeners of a snapshot opened, once
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self.state.subscribe(self._on_snapshot)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self.metrics.snapshot_version.set(snapshot.version)
        self.metrics.skipped_slices.set(snapshot.skipped_slices)
        self.revoke()
        self._sync_task = asyncio.get_running_loop().create_task(
            self.outbound.sync_listeners(snapshot)
        )
        self._tasks.add(self._sync_task)
        self._sync_task.add_done_callback(self._tasks.discard)
        self._sync_task.add_done_callback(self._listeners_synced)

    def _listeners_synced(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is None:
            self._listeners_open = True

    async def listeners_synced(self) -> None:
        """Wait until outbound listeners match the latest snapshot (tests use it)."""
        if self._sync_task is not None:
            await asyncio.wait([self._sync_task])

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if self.shutting_down:
            return False, "shutting down"
        if not self.state.synced:
            return False, "routes not synced"
        if not self._listeners_open:
            # Ready sends the Service's new connections here: the ports must be open first
            return False, "outbound listeners not open"
        if not self.inbound_port:
            return False, "inbound not listening"
        return True, "ready"

    async def start(self) -> None:
        host, port = parse_address(self.settings.inbound_address)
        server = await self.inbound.start(host, port, reuse_port=self.settings.workers > 1)
        self.inbound_port = server.sockets[0].getsockname()[1]
        if self.state.synced:
            await self.outbound.sync_listeners(self.state.snapshot)
            self._listeners_open = True
        if self.settings.admin_address:
            app = build_app(self.state, self.metrics, ready=self.ready,
                            extra_config=self._config_extra,
                            config_endpoint=self.settings.config_endpoint)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            ahost, aport = parse_address(self.settings.admin_address)
            site = web.TCPSite(self._runner, ahost, aport, reuse_port=self.settings.workers > 1)
            await site.start()
            sockets = getattr(site, "_server", None)
            if sockets is not None and sockets.sockets:
                self.admin_port = sockets.sockets[0].getsockname()[1]
        self.inbound.policy = self._backend_policy()
        self.data_path = detect_data_path()
        self.spawn(self._sweeper())
        log.info("gateway started", inbound_port=self.inbound_port, admin_port=self.admin_port,
                    data_path=self.data_path.kind, data_path_reasons=list(self.data_path.reasons),
                    cluster=self.settings.cluster)

    def _backend_policy(self) -> BackendPolicy:
        """The fixed part of what backends may be (backend_policy.py), once the ports are
        known: the pod's addresses, the listen hosts with their ports, the API server's
        ClusterIP (from the environment every pod gets), the operator's CIDRs."""
        s = self.settings
        bound = set()
        for address in (s.inbound_address, s.admin_address):
            if address:
                ip = parse_ip(parse_address(address)[0])
                if ip is not None:
                    bound.add(ip)
        outbound = parse_ip(s.outbound_host)
        if outbound is not None:
            bound.add(outbound)
        api = parse_ip(os.environ.get("KUBERNETES_SERVICE_HOST", ""))
        return BackendPolicy(
            own_addresses=self._own_addresses,
            bound_addresses=frozenset(bound),
            own_ports=frozenset(p for p in (self.inbound_port, self.admin_port) if p),
            api_server=frozenset({api}) if api is not None else frozenset(),
            denied=self._denied,
            allow_loopback=s.backend_allow_loopback,
        )

    def revoke(self) -> None:
        """Close what lost its right (revocation.py): inbound streams and idle tunnels
        against the current snapshot and bundle; outbound tunnels whose peer our bundle
        would now refuse."""
        now = dt.datetime.now(dt.UTC)
        self.inbound.revoke(self.state.snapshot, self.tls.bundle, now)
        for pool, _tunnel, why, busy in self.pools.revoke(now):
            cluster = pool.cluster or "-"
            if busy:
                self.metrics.revoked_streams.labels("outbound", cluster, why).inc()
            else:
                self.metrics.revoked_tunnels.labels("outbound", cluster, why).inc()
            log.warning("stream revoked" if busy else "tunnel closed: peer no longer accepted",
                        direction="outbound", peer_cluster=cluster,
                        peer=f"{pool.host}:{pool.port}", reason=why)

    def _config_extra(self) -> dict[str, Any]:
        return {
            "ejected": [f"{c}@{h}:{p}" for (c, h, p) in sorted(self.health.ejected)],
            "listeners": sorted(self.outbound.listeners),
            "bindErrors": {str(k): v for k, v in self.outbound.bind_errors.items()},
            "pools": {
                f"{k[2] or '-'}@{k[0]}:{k[1]}": {"idle": len(p.idle), "open": len(p.all)}
                for k, p in self.pools.pools.items()
            },
        }

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _sweeper(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self.settings.idle_timeout / 4))
            now = loop.time()
            self.revoke()  # bundle changes and expiry (snapshot changes revoke at once)
            self.inbound.sweep(now)
            self.pools.sweep(now)
            for pool in self.pools.pools.values():
                for tunnel in list(pool.all):
                    if tunnel.in_stream and now - tunnel.last_io > self.settings.idle_timeout:
                        tunnel.abort("idle_timeout")
                self.metrics.tunnels.labels(pool.cluster or "-").set(len(pool.all))

    async def drain(self, timeout: float | None = None) -> None:
        """Stop accepting, let open streams finish (up to ``timeout``), then close all."""
        if self.draining:
            return
        self.draining = True
        timeout = self.settings.drain_timeout if timeout is None else timeout
        log.info("draining", inbound_streams=self.inbound.active_streams,
                    outbound_streams=self.outbound.active_streams, timeout=timeout)
        self.inbound.stop_accepting()
        self.outbound.stop_accepting()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        busy = self.inbound.active_streams or self.outbound.active_streams
        while loop.time() < deadline and busy:
            await asyncio.sleep(0.05)
            busy = self.inbound.active_streams or self.outbound.active_streams
        await self.close()

    async def close(self) -> None:
        self.draining = True
        self.inbound.stop_accepting()
        self.outbound.stop_accepting()
        self.inbound.close_all()
        self.outbound.close_all()
        self.pools.close()
        self.health.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # gather collects the tasks' own cancellations and errors as results; a cancel of
        # close() itself still raises here (suppressing CancelledError around each await
        # would swallow that too).
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await asyncio.sleep(0)

    async def serve_forever(self) -> None:
        """Run until SIGTERM/SIGINT; then keep serving, not Ready, for ``shutdown_delay``
        (a second signal cuts it short), and drain."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self.shutdown_delay(stop)
        await self.drain()

    async def shutdown_delay(self, stop: asyncio.Event) -> None:
        """The pod's endpoints are removed while it terminates, but kube-proxy on every node
        learns it a moment later: until then new connections still arrive here, and a
        closed port would refuse them."""
        delay = self.settings.shutdown_delay
        if delay <= 0:
            return
        self.shutting_down = True
        log.info("shutting down: serving while endpoints update", seconds=delay)
        stop.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()
