"""Reach a peer's catalog the production way: through the peer's east-west gateway.

The gRPC channel connects to a local forwarder; each connection is carried in a tunnel
(mTLS with this mirror's own identity, target ``catalog``) to the peer gateway's inbound
port, which admits only mirror identities of linked clusters and relays to its mirror. The
gRPC inside is mTLS again, end to end between the two mirrors, so the catalog server still
sees (and authorizes) the calling mirror itself. One forwarder per peer address, reused
across reconnects; the outer TLS material follows leaf and bundle renewals (checked every
``_TLS_REFRESH_SECONDS``), and each forwarder drops pooled tunnels, and resets open ones,
whose peer gateway the current bundle would now refuse (root removed, chain expired).
``close()``
(the controller calls it when it stops leading) closes the listeners, cancels and awaits
every task, and closes sockets not yet served.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import grpc

from isthmus.gateway.client import Forwarder, serve_forwarder
from isthmus.gateway.wire import CATALOG
from isthmus.logging import get_logger
from isthmus.mirror.catalog_client import channel_options
from isthmus.mirror.grpc_tls import require_tls13
from isthmus.mirror.model import LinkInfo
from isthmus.trust import ReloadableTls, TlsMaterial

log = get_logger("isthmus.mirror.gateway_dialer")

_TLS_REFRESH_SECONDS = 5.0  # a removed root reaches the tunnels within this


class GatewayDialer:
    """A ``Dialer`` whose channels reach ``link``'s catalog through its gateway."""

    def __init__(
        self,
        credentials: Callable[[], Any],
        material: Callable[[], TlsMaterial],
    ) -> None:
        self._credentials = credentials
        self._material = material
        self._tls: ReloadableTls | None = None
        self._ports: dict[tuple[str, str, int], int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._forwarders: list[Forwarder] = []
        self._unserved: dict[int, socket.socket] = {}  # bound, listening, not yet served

    @property
    def ports(self) -> dict[tuple[str, str, int], int]:
        """The local forwarder port per (cluster, gateway host, gateway port)."""
        return dict(self._ports)

    def _tls_material(self) -> ReloadableTls:
        if self._tls is None:
            self._tls = ReloadableTls(self._material(), source=self._material)
            self._spawn(self._tls.watch(interval=_TLS_REFRESH_SECONDS))
        return self._tls

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forwarder_port(self, link: LinkInfo) -> int:
        key = (link.cluster, link.gateway_host, link.gateway_port)
        port = self._ports.get(key)
        if port is not None:
            return port
        # Bound and listening now, served once the event loop gets to it: gRPC may connect
        # at once, and the kernel queues the connection until then.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        port = int(sock.getsockname()[1])
        self._ports[key] = port
        self._unserved[port] = sock
        tls = self._tls_material()

        async def serve() -> None:
            try:
                forwarder = await serve_forwarder(
                    ("127.0.0.1", 0), (link.gateway_host, link.gateway_port), CATALOG, tls,
                    cluster=link.cluster, sock=sock,
                )
            except asyncio.CancelledError:
                raise  # close() closes the socket
            except Exception as exc:
                # Never leave gRPC pointed at a socket nobody serves: the next channel for
                # this peer makes a new forwarder.
                log.error("catalog forwarder failed", peer=link.cluster, error=str(exc))
                self._ports.pop(key, None)
                self._unserved.pop(port, None)
                sock.close()
                return
            self._unserved.pop(port, None)
            self._forwarders.append(forwarder)
            log.info("catalog forwarder", peer=link.cluster, port=port,
                     gateway=f"{link.gateway_host}:{link.gateway_port}")

        self._spawn(serve())
        return port

    def channel(self, link: LinkInfo) -> Any:
        require_tls13()
        port = self._forwarder_port(link)
        return grpc.aio.secure_channel(
            f"127.0.0.1:{port}", self._credentials(), options=channel_options(link.cluster)
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock in self._unserved.values():
            sock.close()
        self._unserved.clear()
        forwarders, self._forwarders = self._forwarders, []
        for forwarder in forwarders:
            forwarder.close()
        for forwarder in forwarders:
            await forwarder.wait_closed()
        self._ports.clear()
        self._tls = None
