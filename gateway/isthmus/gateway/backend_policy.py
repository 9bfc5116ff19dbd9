"""Which backend addresses the gateway may dial: a pure decision, a table test.

Routing data comes from EndpointSlices, which anyone allowed to write one can fill with
any address. A peer that may open a stream must not thereby reach the gateway's own
ports, the node's metadata service, the API server or anything the operator fenced off.
So, whatever a slice says, the gateway dials only an IP literal (a name is never
resolved) and refuses, in this order:

``not_an_ip``        not an IPv4/IPv6 literal
``unspecified``      0.0.0.0, ::
``loopback``         127.0.0.0/8, ::1 (unless ``allow_loopback``: single-host tests only)
``link_local``       169.254.0.0/16 (169.254.169.254, the metadata service), fe80::/10
``multicast``        224.0.0.0/4, ff00::/8, and the 255.255.255.255 broadcast
``gateway_itself``   one of the gateway's pod addresses; or one of its listening ports on
                     loopback or on an address it is bound to
``api_server``       an endpoint (address and port) of the ``kubernetes`` Service, from
                     its EndpointSlices in ``default``; or its ClusterIP, any port. Other
                     ports of a control-plane node are the operator's to fence off, with
                     the node network in ``--backend-deny-cidrs``
``operator_denied``  inside one of the operator's ``--backend-deny-cidrs``

IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) are judged as the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass

from isthmus.gateway.errors import GatewayConfigError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def parse_ip(text: str) -> IpAddress | None:
    """The address ``text`` names literally (IPv4-mapped IPv6 unwrapped), else None."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_cidrs(text: str) -> tuple[IpNetwork, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128); a clear error otherwise."""
    networks: list[IpNetwork] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise GatewayConfigError(f"not a CIDR: {part!r} ({exc})") from exc
    return tuple(networks)


def parse_addresses(text: str) -> frozenset[IpAddress]:
    """Comma-separated IP addresses; a clear error for anything else."""
    found: set[IpAddress] = set()
    for part in text.split(","):
        if not part.strip():
            continue
        ip = parse_ip(part)
        if ip is None:
            raise GatewayConfigError(f"not an IP address: {part.strip()!r}")
        found.add(ip)
    return frozenset(found)


@dataclass(frozen=True)
class BackendPolicy:
    """What is fixed for the life of a gateway process (see the module docstring)."""

    own_addresses: frozenset[IpAddress] = frozenset()  # pod IPs: never dialled
    bound_addresses: frozenset[IpAddress] = frozenset()  # listen hosts: own ports refused
    own_ports: frozenset[int] = frozenset()  # inbound and admin ports
    api_server: frozenset[IpAddress] = frozenset()  # the kubernetes ClusterIP: any port
    denied: tuple[IpNetwork, ...] = ()
    allow_loopback: bool = False


def backend_refusal(
    policy: BackendPolicy,
    address: str,
    port: int,
    *,
    api_server: Collection[tuple[IpAddress, int]] = frozenset(),
    listening: Collection[int] = frozenset(),
) -> str | None:
    """Why ``address:port`` must not be dialled, or None. ``api_server`` and ``listening``
    (the outbound listener ports) change with the routing snapshot."""
    ip = parse_ip(address)
    if ip is None:
        return "not_an_ip"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback and not policy.allow_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link_local"
    if ip.is_multicast or ip == _BROADCAST:
        return "multicast"
    if ip in policy.own_addresses:
        return "gateway_itself"
    if (ip.is_loopback or ip in policy.bound_addresses) and (
        port in policy.own_ports or port in listening
    ):
        return "gateway_itself"
    if ip in policy.api_server or (ip, port) in api_server:
        return "api_server"
    if any(ip.version == net.version and ip in net for net in policy.denied):
        return "operator_denied"
    return None
