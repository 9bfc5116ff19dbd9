"""Which backend addresses the gateway dials: the pure rules as tables, then a running
gateway over real TLS refusing what a slice should never make it dial."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest
from gw_helpers import Pki, echo_backend, endpoint_slice, link, running, service, snapshot
from structlog.testing import capture_logs

from isthmus.gateway import Status, TunnelRefused
from isthmus.gateway.backend_policy import (
    BackendPolicy,
    backend_refusal,
    parse_addresses,
    parse_cidrs,
    parse_ip,
)
from isthmus.gateway.errors import GatewayConfigError
from isthmus.gateway.pool import PeerPool
from isthmus.gateway.server import Gateway
from isthmus.gateway.settings import GatewaySettings

ip = ipaddress.ip_address
POLICY = BackendPolicy(
    own_addresses=frozenset({ip("10.1.0.7"), ip("fd00::7")}),
    bound_addresses=frozenset({ip("10.1.0.8")}),
    own_ports=frozenset({15443, 15021}),
    api_server=frozenset({ip("10.96.0.1")}),
    denied=(ipaddress.ip_network("192.168.0.0/16"), ipaddress.ip_network("fd99::/16")),
)
API = frozenset({(ip("10.0.0.10"), 6443)})
LISTENING = frozenset({20080})


@pytest.mark.parametrize(
    ("address", "port", "policy", "expected"),
    [
        pytest.param("10.0.0.1", 8080, POLICY, None, id="pod-ip"),
        pytest.param("2001:db8::1", 8080, POLICY, None, id="pod-ipv6"),
        pytest.param("metadata.google.internal", 80, POLICY, "not_an_ip", id="name"),
        pytest.param("10.0.0.1.nip.io", 80, POLICY, "not_an_ip", id="name-like-ip"),
        pytest.param("", 80, POLICY, "not_an_ip", id="empty"),
        pytest.param("0x7f.1", 80, POLICY, "not_an_ip", id="hex-ipv4"),
        pytest.param("0.0.0.0", 80, POLICY, "unspecified", id="unspecified-v4"),
        pytest.param("::", 80, POLICY, "unspecified", id="unspecified-v6"),
        pytest.param("127.0.0.1", 80, POLICY, "loopback", id="loopback"),
        pytest.param("127.9.9.9", 80, POLICY, "loopback", id="loopback-range"),
        pytest.param("::1", 80, POLICY, "loopback", id="loopback-v6"),
        pytest.param("::ffff:127.0.0.1", 80, POLICY, "loopback", id="v4-mapped-loopback"),
        pytest.param("169.254.169.254", 80, POLICY, "link_local", id="metadata"),
        pytest.param("fe80::1", 80, POLICY, "link_local", id="link-local-v6"),
        pytest.param("::ffff:169.254.169.254", 80, POLICY, "link_local",
                     id="v4-mapped-metadata"),
        pytest.param("224.0.0.1", 80, POLICY, "multicast", id="multicast"),
        pytest.param("ff02::1", 80, POLICY, "multicast", id="multicast-v6"),
        pytest.param("255.255.255.255", 80, POLICY, "multicast", id="broadcast"),
        pytest.param("10.1.0.7", 8080, POLICY, "gateway_itself", id="own-pod-ip"),
        pytest.param("fd00::7", 1, POLICY, "gateway_itself", id="own-pod-ipv6"),
        pytest.param("10.1.0.8", 15443, POLICY, "gateway_itself", id="bound-inbound-port"),
        pytest.param("10.1.0.8", 20080, POLICY, "gateway_itself", id="bound-outbound-port"),
        pytest.param("10.1.0.8", 8080, POLICY, None, id="bound-other-port"),
        pytest.param("10.0.0.10", 6443, POLICY, "api_server", id="api-endpoint"),
        pytest.param("10.0.0.10", 8080, POLICY, None, id="api-host-other-port"),
        pytest.param("10.96.0.1", 443, POLICY, "api_server", id="api-cluster-ip"),
        pytest.param("192.168.4.4", 80, POLICY, "operator_denied", id="operator-cidr"),
        pytest.param("fd99::4", 80, POLICY, "operator_denied", id="operator-cidr-v6"),
        pytest.param("::ffff:192.168.4.4", 80, POLICY, "operator_denied",
                     id="v4-mapped-operator-cidr"),
        pytest.param("127.0.0.1", 8080, BackendPolicy(allow_loopback=True), None,
                     id="loopback-allowed"),
        pytest.param("127.0.0.1", 15443,
                     BackendPolicy(allow_loopback=True, own_ports=frozenset({15443})),
                     "gateway_itself", id="loopback-allowed-own-port"),
        pytest.param("127.0.0.1", 20080, BackendPolicy(allow_loopback=True),
                     "gateway_itself", id="loopback-allowed-outbound-listener"),
        pytest.param("169.254.169.254", 80, BackendPolicy(allow_loopback=True), "link_local",
                     id="loopback-allowed-metadata-still-refused"),
    ],
)
def test_backend_refusal(address: str, port: int, policy: BackendPolicy,
                         expected: str | None) -> None:
    assert backend_refusal(policy, address, port, api_server=API,
                           listening=LISTENING) == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("10.0.0.0/8, fd00::/8", None, id="two"),
        pytest.param("10.1.2.3", None, id="bare-address"),
        pytest.param("", None, id="none"),
        pytest.param("10.0.0.0/33", "not a CIDR", id="bad-prefix"),
        pytest.param("cluster.local", "not a CIDR", id="name"),
    ],
)
def test_parse_cidrs(text: str, error: str | None) -> None:
    if error is None:
        parse_cidrs(text)
    else:
        with pytest.raises(GatewayConfigError, match=error):
            parse_cidrs(text)


def test_parse_addresses_and_ip() -> None:
    assert parse_addresses("10.0.0.1, fd00::1") == {ip("10.0.0.1"), ip("fd00::1")}
    with pytest.raises(GatewayConfigError, match="not an IP address"):
        parse_addresses("10.0.0.1,pod.local")
    assert parse_ip("::ffff:10.0.0.1") == ip("10.0.0.1")
    assert parse_ip("10.0.0.1\n") == ip("10.0.0.1")
    assert parse_ip("10.0.0.1:80") is None


def test_bad_settings_fail_before_anything_listens(pki: Pki) -> None:
    with pytest.raises(GatewayConfigError):
        Gateway(GatewaySettings(backend_deny_cidrs="10.0.0.0/40"), pki.tls("east"))
    with pytest.raises(GatewayConfigError):
        Gateway(GatewaySettings(pod_ips="gateway-0"), pki.tls("east"))


def _slice(name: str, address_type: str, addresses: list[str], port: int = 8080,
           ns: str = "shop", service_name: str | None = None) -> dict[str, Any]:
    sl = endpoint_slice(ns, service_name or name, [(a, port) for a in addresses])
    sl["metadata"]["name"] = name
    sl["addressType"] = address_type
    return sl


def test_snapshot_takes_backends_from_ip_slices_only() -> None:
    snap = snapshot(
        services=[service("shop", "users", 80)],
        slices=[_slice("users-v4", "IPv4", ["10.0.0.1"], service_name="users"),
                _slice("users-v6", "IPv6", ["fd00::1"], service_name="users"),
                _slice("users-fqdn", "FQDN", ["evil.example.com"], service_name="users"),
                _slice("users-odd", "Unknown", ["10.0.0.9"], service_name="users")],
        links=[link("west")],
    )
    backends = {b.address for b in snap.exports[("shop", "users")].backends}
    assert backends == {"10.0.0.1", "fd00::1"}
    assert snap.skipped_slices == 2
    assert any("users-fqdn" in s and "FQDN" in s for s in snap.skipped)


def test_snapshot_knows_the_api_servers_endpoints() -> None:
    api = _slice("kubernetes", "IPv4", ["10.0.0.10", "10.0.0.11"], port=6443, ns="default",
                 service_name="kubernetes")
    not_api = _slice("kubernetes", "IPv4", ["10.0.0.12"], port=6443, ns="shop",
                     service_name="kubernetes")
    snap = snapshot(slices=[api, not_api])
    assert snap.api_server == {(ip("10.0.0.10"), 6443), (ip("10.0.0.11"), 6443)}


# --- a running gateway -------------------------------------------------------------------------
def host_address() -> str | None:
    """A non-loopback address of this machine (none in a bare sandbox)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing address
        except OSError:
            return None
        addr = str(s.getsockname()[0])
    return None if ipaddress.ip_address(addr).is_loopback else addr


async def open_status(port: int, pki: Pki, target: str) -> int:
    pool = PeerPool("127.0.0.1", port, pki.tls("west"))
    try:
        tunnel = await pool.open_stream(target)
        tunnel.abort("test")
        return 0
    except TunnelRefused as exc:
        return exc.status
    finally:
        pool.close()


def routes(backends: dict[str, list[tuple[str, int]]]) -> Any:
    return snapshot(
        services=[service("shop", name, 80) for name in backends],
        slices=[endpoint_slice("shop", name, addrs) for name, addrs in backends.items()],
        links=[link("west")],
    )


async def test_default_gateway_refuses_loopback_link_local_and_names(pki: Pki) -> None:
    backend = await echo_backend()
    snap = routes({
        "loop": [("127.0.0.1", backend.port)],
        "meta": [("169.254.169.254", 80)],
        "named": [("localhost", backend.port)],
    })
    try:
        async with running(pki.tls("east"), snap, backend_allow_loopback=False) as east:
            with capture_logs() as logs:
                for name in ("loop", "meta", "named"):
                    status = await open_status(east.inbound_port, pki, f"{name}.shop:80")
                    # the same answer as for any target the caller cannot reach
                    assert status == Status.UNKNOWN_TARGET, name
            assert backend.accepts == 0
            assert east.inbound.dial_attempts == 0  # nothing dialled, nothing resolved
            refused = {(e["target"], e["reason"]) for e in logs
                       if e["event"] == "backend address refused"}
            assert refused == {("loop.shop:80", "loopback"), ("meta.shop:80", "link_local"),
                               ("named.shop:80", "not_an_ip")}
            samples = {s.labels["reason"]: s.value
                       for m in east.metrics.backend_refusals.collect() for s in m.samples
                       if s.name.endswith("_total")}
            assert samples == {"loopback": 1, "link_local": 1, "not_an_ip": 1}
    finally:
        backend.close()


async def test_own_ports_refused_even_where_loopback_is_allowed(pki: Pki) -> None:
    backend = await echo_backend()
    async with running(pki.tls("east"), None, backend_allow_loopback=True) as east:
        east.state.swap(routes({
            "inbound": [("127.0.0.1", east.inbound_port)],
            "admin": [("127.0.0.1", east.admin_port)],
            "mixed": [("169.254.169.254", backend.port), ("127.0.0.1", backend.port)],
        }))
        with capture_logs() as logs:
            assert await open_status(east.inbound_port, pki, "inbound.shop:80") == \
                Status.UNKNOWN_TARGET
            assert await open_status(east.inbound_port, pki, "admin.shop:80") == \
                Status.UNKNOWN_TARGET
            # a refused address next to a good one: only the good one is dialled
            assert await open_status(east.inbound_port, pki, "mixed.shop:80") == Status.OK
        reasons = [e["reason"] for e in logs if e["event"] == "backend address refused"]
        assert reasons == ["gateway_itself", "gateway_itself", "link_local"]
        assert east.inbound.dial_attempts == 1
    backend.close()


async def test_pod_address_and_operator_cidrs_refused(pki: Pki) -> None:
    host = host_address()
    if host is None:
        pytest.skip("this machine has no non-loopback address")
    server = await asyncio.start_server(lambda r, w: w.close(), host, 0)
    port = server.sockets[0].getsockname()[1]
    snap = routes({"web": [(host, port)]})
    try:
        async with running(pki.tls("east"), snap, backend_allow_loopback=False) as east:
            assert await open_status(east.inbound_port, pki, "web.shop:80") == Status.OK
        for over, reason in (({"backend_deny_cidrs": f"{host}/24"}, "operator_denied"),
                             ({"pod_ips": host}, "gateway_itself")):
            async with running(pki.tls("east"), snap, **over) as east:
                with capture_logs() as logs:
                    assert await open_status(east.inbound_port, pki, "web.shop:80") == \
                        Status.UNKNOWN_TARGET
                assert [e["reason"] for e in logs
                        if e["event"] == "backend address refused"] == [reason]
                assert east.inbound.dial_attempts == 0
    finally:
        server.close()


async def test_backend_verdicts_are_remembered_per_snapshot_and_policy(pki: Pki) -> None:
    first = snapshot(services=[service("shop", "web", 80)],
                     slices=[endpoint_slice("shop", "web", [("10.0.0.1", 8080)])],
                     links=[link("west")])
    second = snapshot(services=[service("shop", "web", 80)],
                      slices=[endpoint_slice("shop", "web", [("10.0.0.1", 8080)])],
                      links=[link("west")], version=2)
    async with running(pki.tls("east"), first) as gw:
        memo = gw.inbound.backend_verdicts(first)
        memo["10.0.0.1", 8080] = "remembered"
        assert gw.inbound.backend_verdicts(first) is memo
        assert gw.inbound.backend_verdicts(second) == {}  # a new snapshot: judged again
        again = gw.inbound.backend_verdicts(second)
        gw.inbound.policy = BackendPolicy(denied=parse_cidrs("10.0.0.0/8"))
        assert gw.inbound.backend_verdicts(second) is not again  # a new policy too
