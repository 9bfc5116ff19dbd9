"""isthmus.gateway: the mTLS east-west gateway.

Inbound (one port, 15443): TLS 1.3 with a required client certificate, SPIFFE identity of
a *linked* cluster, then per stream a target named inside the tunnel (``wire``), authorized
and routed by the pure ``route_inbound`` before anything is dialled. Outbound: one
listener per ``outboundPort`` of the GlobalServices, relaying over warm pools of tunnels to
the exporting clusters' gateways, with failover, passive ejection and active probing.

Modules (flat): ``wire`` (tunnel protocol, target names), ``snapshot`` (immutable routes,
pure ``build_snapshot``), ``route`` (pure decisions), ``state`` (the swapped snapshot),
``feed`` (API/file → snapshots; TLS Secret), ``tunnel`` (the data path), ``pool``,
``health``, ``inbound``, ``outbound``, ``metrics``, ``admin``, ``server`` (``Gateway``),
``settings``, ``cli``, ``client`` (for other components), ``errors``.

For other components (the mirror reaches a peer's catalog with these)::

    async def open_tunnel(peer: GatewayAddress | tuple[str, int], target: str,
                          tls: ReloadableTls, *, cluster: str | None = None,
                          timeout: float = 10.0,
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]
    async def serve_forwarder(listen: tuple[str, int], peer: GatewayAddress | tuple[str, int],
                              target: str, tls: ReloadableTls, *,
                              cluster: str | None = None) -> Forwarder
        # Forwarder.port, .close(), await .wait_closed(); async with works too.

``target`` is ``"catalog"`` or ``"<service>.<namespace>:<port>"``.
"""

from isthmus.gateway.client import Forwarder, open_tunnel, serve_forwarder
from isthmus.gateway.errors import (
    GatewayError,
    NoHealthyUpstream,
    PeerIdentityError,
    TunnelError,
    TunnelRefused,
)
from isthmus.gateway.wire import CATALOG, Status

__all__ = [
    "CATALOG",
    "Forwarder",
    "GatewayError",
    "NoHealthyUpstream",
    "PeerIdentityError",
    "Status",
    "TunnelError",
    "TunnelRefused",
    "open_tunnel",
    "serve_forwarder",
]
