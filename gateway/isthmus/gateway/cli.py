"""``isthmus gateway``: run the east-west gateway (see ``isthmus gateway --help``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

import click

from isthmus.errors import ConfigError
from isthmus.gateway.settings import GatewaySettings, parse_address
from isthmus.logging import configure, get_logger
from isthmus.settings import click_options, load


async def _run(settings: GatewaySettings) -> None:
    from isthmus.gateway.feed import (
        ApiFeed,
        load_tls_secret,
        run_file_feed,
        watch_tls_secret,
    )
    from isthmus.gateway.server import Gateway
    from isthmus.kube.client import KubeApi
    from isthmus.trust import ReloadableTls

    catalog = parse_address(settings.catalog_address, "127.0.0.1") if settings.catalog_address \
        else None
    api: KubeApi | None = None
    if settings.routes_file is None or settings.tls_secret:
        api = await KubeApi.connect(settings.kubeconfig, settings.context)
    if settings.tls_secret:
        assert api is not None
        bundle = settings.trust_bundle.read_bytes() if settings.trust_bundle else None
        material = await load_tls_secret(api, settings.tls_secret,
                                         settings.tls_secret_namespace, bundle)
        tls = ReloadableTls(material)
    else:
        if not (settings.tls_cert and settings.tls_key and settings.trust_bundle):
            raise ConfigError("give --tls-secret, or --tls-cert, --tls-key and --trust-bundle")
        tls = ReloadableTls.from_files(settings.tls_cert, settings.tls_key, settings.trust_bundle)
    gateway = Gateway(settings, tls)
    await gateway.start()
    if settings.routes_file is not None:
        gateway.spawn(run_file_feed(settings.routes_file, gateway.state, catalog_address=catalog))
    else:
        assert api is not None
        gateway.spawn(ApiFeed(api, gateway.state, catalog_address=catalog).run())
    if settings.tls_secret:
        assert api is not None
        gateway.spawn(watch_tls_secret(api, tls, settings.tls_secret,
                                       settings.tls_secret_namespace, settings.trust_bundle,
                                       interval=settings.tls_reload_interval))
    else:
        gateway.spawn(tls.watch(settings.tls_reload_interval))
    try:
        await gateway.serve_forever()
    finally:
        if api is not None:
            await api.close()


def _run_one(settings: GatewaySettings) -> None:
    if settings.uvloop:
        import uvloop

        uvloop.run(_run(settings))
    else:
        asyncio.run(_run(settings))


@click.command(name="gateway")
@click_options(GatewaySettings)
def command(**flags: Any) -> None:
    """Run the mTLS east-west gateway: inbound :15443 and one outbound listener per
    mirrored service port."""
    settings = load(GatewaySettings, flags)
    configure(settings.log_level)
    if settings.workers == 1:
        _run_one(settings)
        return
    children: list[int] = []
    for index in range(settings.workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                admin = settings.admin_address if index == 0 else ""
                _run_one(settings.model_copy(update={"admin_address": admin}))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:  # the worker's last word: say why, then exit non-zero
                code = 1
                if not isinstance(exc, KeyboardInterrupt):
                    get_logger("isthmus.gateway").exception(
                        "worker failed", worker=index, error=f"{type(exc).__name__}: {exc}")
            finally:
                os._exit(code)
        children.append(pid)
    log = get_logger("isthmus.gateway")
    log.info("workers started", pids=children)

    forwarded: set[int] = set()

    def forward(signum: int, _frame: Any) -> None:
        forwarded.add(signum)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    running = set(children)
    while running:
        pid, code = os.wait()
        if pid not in running:
            continue
        running.discard(pid)
        exit_code = os.waitstatus_to_exitcode(code)
        if -exit_code in forwarded:
            exit_code = 0  # stopped by the signal we passed on before it could drain: fine
        if exit_code and not forwarded:
            # One worker down would leave the pod half-serving and Ready: stop them all, so
            # the pod restarts whole.
            log.error("worker exited; stopping the others", pid=pid, exit_code=exit_code)
            forward(signal.SIGTERM, None)
        status = status or exit_code
    sys.exit(status)
