"""``isthmus dns``: run the responder (``isthmus.cli`` routes the subcommand here)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from typing import Any

import click
import uvloop

from isthmus.api.models import GlobalService
from isthmus.dns.errors import SourceError
from isthmus.dns.feed import Feed, connect_kubernetes, watch_kubernetes
from isthmus.dns.metrics import serve_metrics
from isthmus.dns.responder import Responder
from isthmus.dns.server import DnsServer
from isthmus.dns.settings import DnsSettings
from isthmus.dns.snapshot import SnapshotHolder
from isthmus.dns.static_file import load_services
from isthmus.errors import IsthmusError
from isthmus.logging import configure, get_logger
from isthmus.settings import click_options, load

log = get_logger("isthmus.dns.cli")
STATS_EVERY = 60.0


async def serve(settings: DnsSettings) -> None:
    """Run until SIGTERM or SIGINT."""
    holder = SnapshotHolder(settings.snapshot_config())
    responder = Responder(holder.current, edns_size=settings.edns_udp_size,
                          use_cache=settings.cache)
    holder.subscribe(responder.set_snapshot)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    static = settings.static_file
    if static is not None:
        def use(services: list[GlobalService]) -> None:
            snapshot = holder.update(services)
            log.info("dns_snapshot", source=str(static), services=snapshot.services,
                     names=len(snapshot.names), rejected=list(snapshot.rejected))

        def reload() -> None:
            try:
                use(load_services(static))
            except SourceError as exc:  # keep serving the last good file
                log.error("dns_static_reload_failed", error=str(exc))

        use(load_services(static))  # a bad file at start is a clean error and exit 1
        loop.add_signal_handler(signal.SIGHUP, reload)

    server = DnsServer(responder, settings.listen_address, settings.port,
                       tcp_idle=settings.tcp_idle_timeout, max_tcp=settings.max_tcp_connections,
                       udp_batch=None if settings.udp_batch else False)
    api = None if static is not None else await connect_kubernetes(settings.kubeconfig,
                                                                   settings.context)
    async with asyncio.TaskGroup() as tasks:
        feed_task = None
        if api is not None:
            feed = Feed(holder)
            feed_task = tasks.create_task(watch_kubernetes(feed, api, settings.namespace))
            # Open the port only with the full list: before it, every name would be NXDOMAIN
            # (and cached as such by clients for the negative TTL).
            log.info("dns_waiting_for_globalservices")
            synced = tasks.create_task(feed.synced.wait())
            stopped = tasks.create_task(stop.wait())
            await asyncio.wait({synced, stopped}, return_when=asyncio.FIRST_COMPLETED)
            synced.cancel()
            stopped.cancel()
        if not stop.is_set():
            # Everything allocated so far (imports, the first snapshot) lives as long as the
            # process: keep it out of the collector's full passes, which would otherwise
            # walk it on the answering thread (a latency spike of milliseconds).
            gc.freeze()
            await server.start()
            if settings.metrics_port:
                serve_metrics(responder, settings.listen_address, settings.metrics_port)
            stats = tasks.create_task(_log_stats(responder))
            await stop.wait()
            stats.cancel()
        log.info("dns_stopping", **responder.stats.snapshot())
        if feed_task is not None:
            feed_task.cancel()
    await server.close()
    if api is not None:
        await api.close()


async def _log_stats(responder: Responder) -> None:
    while True:
        await asyncio.sleep(STATS_EVERY)
        log.info("dns_stats", cache_entries=responder.cache_size(), **responder.stats.snapshot())


@click.command(name="dns", context_settings={"help_option_names": ["-h", "--help"],
                                             "max_content_width": 100})
@click_options(DnsSettings)
def command(**flags: Any) -> None:
    """Run the authoritative DNS responder for <svc>.<ns>.global names.

    Answers A/AAAA for <svc>.<ns>.global (the local mirror VIP) and <svc>.<ns>.<cluster>.global
    (pinned to one exporting cluster), SRV for _<port>._tcp.<svc>.<ns>.global, SOA and NS at
    the apex; NXDOMAIN/NODATA with the SOA; REFUSED outside its zones. UDP and TCP, EDNS0.

    Data comes from the GlobalServices of this cluster (watched with --kubeconfig/--context,
    or in-cluster), or from a local file with --static-file.

    \b
    Examples:
      isthmus dns --port 53 --context west
      isthmus dns --listen-address 127.0.0.1 --port 5300 --static-file services.yaml
      dig @127.0.0.1 -p 5300 users.shop.global
    """
    settings = load(DnsSettings, flags)
    parent = click.get_current_context().parent  # `isthmus --log-format` chooses the format
    log_format = parent.params.get("log_format", "json") if parent is not None else "json"
    configure(settings.log_level, json=log_format == "json")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(serve(settings))
    except ExceptionGroup as group:
        # A task of ours failed on purpose (an IsthmusError): show it like any other.
        ours = group.subgroup(IsthmusError)
        if ours is None:
            raise
        first: BaseException = ours
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from group
