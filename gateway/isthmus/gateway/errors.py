"""The gateway's errors, one tree under ``isthmus.errors.IsthmusError``::

    GatewayError
     ├── TunnelRefused          the peer gateway answered a stream with a refusal status
     │                          (``.status``: wire.Status); open_tunnel raises it
     ├── TunnelError            the tunnel itself failed: connect, TLS handshake, peer
     │    │                     identity, protocol violation (also an ``OSError`` so callers
     │    │                     that catch socket errors keep working)
     │    └── PeerIdentityError the peer gateway's certificate does not name the gateway
     │                          of the cluster we meant to reach
     ├── NoHealthyUpstream      every exporting cluster is ejected or failed
     └── GatewayConfigError     a setting the gateway cannot use (also a ``ConfigError``,
                                so the CLI reports it as bad configuration)

Refusals of *incoming* streams are not exceptions: ``route()`` returns a ``Refused``
value with a reason, the inbound side logs it and counts it.
"""

from __future__ import annotations

from isthmus.errors import ConfigError, IsthmusError


class GatewayError(IsthmusError):
    """Base of every gateway error."""


class TunnelRefused(GatewayError):
    """The peer gateway refused the stream; ``status`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TunnelError(GatewayError, OSError):
    """The tunnel could not be set up or broke (connect, handshake, protocol)."""


class PeerIdentityError(TunnelError):
    """The peer presented a valid certificate of the wrong identity."""


class NoHealthyUpstream(GatewayError):
    """No exporting cluster could take the connection."""


class GatewayConfigError(GatewayError, ConfigError):
    """A gateway setting is unusable (a CIDR or address that does not parse)."""
