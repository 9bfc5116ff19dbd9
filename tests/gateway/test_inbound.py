"""Inbound refusals over real sockets and real TLS (docs/reliability.md, Gateway)."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
from gw_helpers import (
    Pki,
    east_snapshot,
    echo_backend,
    open_fds,
    running,
)

from isthmus.gateway import Status, TunnelRefused
from isthmus.gateway.pool import PeerPool
from isthmus.gateway.wire import open_frame_raw


def bare_client_ctx(pki: Pki, *, tls12: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=pki.bundle.to_pem().decode())
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def blocking_handshake(port: int, ctx: ssl.SSLContext) -> str:
    """Handshake and read; the error reason the client saw ('' if none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw) as s:
                s.sendall(open_frame_raw(b"echo.shop:80"))
                s.recv(1)
        except ssl.SSLError as exc:
            return str(exc.reason)
        except OSError as exc:
            return type(exc).__name__
    return ""


async def test_no_client_certificate_gets_certificate_required(pki: Pki) -> None:
    backend = await echo_backend()
    async with running(pki.tls("east"), east_snapshot(backend.port)) as east:
        reason = await asyncio.to_thread(blocking_handshake, east.inbound_port,
                                         bare_client_ctx(pki))
        assert "CERTIFICATE_REQUIRED" in reason
        reason = await asyncio.to_thread(blocking_handshake, east.inbound_port,
                                         bare_client_ctx(pki, tls12=True))
        assert "PROTOCOL_VERSION" in reason
        failures = east.metrics.handshake_failures
        labels = {s.labels["reason"] for m in failures.collect() for s in m.samples
                  if s.name.endswith("_total")}
        assert any("certificate" in r for r in labels), labels
        assert any("protocol" in r or "version" in r for r in labels), labels
    assert backend.accepts == 0
    backend.close()


async def test_other_root_gets_unknown_ca(pki: Pki, other_pki: Pki) -> None:
    backend = await echo_backend()
    async with running(pki.tls("east"), east_snapshot(backend.port)) as east:
        stranger = other_pki.tls("west")
        ctx = stranger.client_context()
        # the stranger trusts our root so that only *our* verdict on it is tested
        ctx2 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx2.check_hostname = False
        ctx2.load_verify_locations(cadata=pki.bundle.to_pem().decode())
        leaf = other_pki.leaf("west")
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            Path(d, "c").write_bytes(leaf.chain_pem())  # noqa: ASYNC240
            Path(d, "k").write_bytes(leaf.key_pem())  # noqa: ASYNC240
            ctx2.load_cert_chain(Path(d, "c"), Path(d, "k"))
        reason = await asyncio.to_thread(blocking_handshake, east.inbound_port, ctx2)
        assert "UNKNOWN_CA" in reason
        del ctx
    assert backend.accepts == 0
    backend.close()


async def _raw_open(port: int, tls: object, raw: bytes) -> None:
    pool = PeerPool("127.0.0.1", port, tls)  # type: ignore[arg-type]
    try:
        await pool.open_stream(raw)
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        pytest.param(b"nope.shop:80", Status.UNKNOWN_TARGET, "unknown_service", id="unknown"),
        pytest.param(b"hidden.shop:80", Status.UNKNOWN_TARGET, "not_exported",
                     id="not-exported"),
        pytest.param(b"echo.shop:81", Status.UNKNOWN_TARGET, "unknown_port", id="wrong-port"),
        pytest.param(b"echo shop", Status.MALFORMED, "target_malformed", id="malformed"),
        pytest.param(b"e" * 255 + b":80"[:0], Status.MALFORMED, "target_malformed",
                     id="long-but-allowed-length"),
        pytest.param("\u00e9cho.shop:80".encode(), Status.MALFORMED, "target_non_ascii",
                     id="non-ascii"),
        pytest.param(b"catalog", Status.FORBIDDEN, "catalog_not_mirror", id="catalog"),
    ],
)
async def test_target_refused_before_any_dial(pki: Pki, raw: bytes, status: Status,
                                              reason: str) -> None:
    from gw_helpers import endpoint_slice, link, service, snapshot

    backend = await echo_backend()
    snap = snapshot(
        services=[service("shop", "echo", 80), service("shop", "hidden", 80, export=False)],
        slices=[endpoint_slice("shop", "echo", [("127.0.0.1", backend.port)]),
                endpoint_slice("shop", "hidden", [("127.0.0.1", backend.port)])],
        links=[link("west")],
        catalog=("127.0.0.1", backend.port),
    )
    async with running(pki.tls("east"), snap) as east:
        with pytest.raises(TunnelRefused) as info:
            await _raw_open(east.inbound_port, pki.tls("west"), raw)
        assert info.value.status == status
        samples = [s for m in east.metrics.refusals.collect() for s in m.samples
                   if s.name.endswith("_total")]
        assert [s.labels["reason"] for s in samples] == [reason]
        assert east.inbound.dial_attempts == 0
    assert backend.accepts == 0
    backend.close()


async def test_over_long_target_refused_without_reading_it(pki: Pki) -> None:
    backend = await echo_backend()
    async with running(pki.tls("east"), east_snapshot(backend.port)) as east:
        tls = pki.tls("west")
        pool = PeerPool("127.0.0.1", east.inbound_port, tls)
        tunnel, _ = await pool.acquire()
        # a length field above MAX_TARGET is a protocol error: the tunnel is reset
        tunnel.in_stream = True
        tunnel._send(b"\x01\xff\xff" + b"a" * 100)
        for _ in range(100):
            if tunnel.closed:
                break
            await asyncio.sleep(0.02)
        assert tunnel.closed
        assert east.inbound.dial_attempts == 0
        pool.close()
    assert backend.accepts == 0
    backend.close()


async def test_unlinked_cluster_refused(pki: Pki) -> None:
    backend = await echo_backend()
    async with running(pki.tls("east"), east_snapshot(backend.port, links=())) as east:
        with pytest.raises(TunnelRefused) as info:
            await _raw_open(east.inbound_port, pki.tls("central"), b"echo.shop:80")
        assert info.value.status == Status.UNLINKED
    assert backend.accepts == 0
    backend.close()


async def test_bad_clients_closed_at_timeout_others_unaffected(pki: Pki) -> None:
    """Plain text, a truncated ClientHello, a stalled handshake, a silent tunnel and a slow
    reader are all closed within their timeouts; a good client works meanwhile; fds return."""
    big = b"z" * (8 << 20)
    backend = await echo_backend()
    fds_before = open_fds()
    async with running(pki.tls("east"), east_snapshot(backend.port), handshake_timeout=0.5,
                       idle_timeout=1.0) as east:
        port = east.inbound_port
        loop = asyncio.get_running_loop()

        async def closed(reader: asyncio.StreamReader) -> None:
            # EOF or a reset; the deadline only stops a socket the gateway never closes
            # (its handshake timeout here is 0.5 s, the "timeout" reason is checked below).
            async with asyncio.timeout(10):
                with _nothing():
                    while await reader.read(65536):
                        pass

        plain_r, plain_w = await asyncio.open_connection("127.0.0.1", port)
        plain_w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        trunc_r, trunc_w = await asyncio.open_connection("127.0.0.1", port)
        trunc_w.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # half a ClientHello
        stall_r, stall_w = await asyncio.open_connection("127.0.0.1", port)
        many = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]

        # meanwhile a good client is served
        pool = PeerPool("127.0.0.1", port, pki.tls("west"))
        tunnel = await pool.open_stream("echo.shop:80")
        got = bytearray()

        class Sink:
            def __init__(self) -> None:
                self.done = loop.create_future()

        from isthmus.gateway.tunnel import Plain

        a, b = socket.socketpair()
        plain = Plain()
        await loop.create_connection(lambda: plain, sock=a)
        tunnel.attach(plain, None)
        br, bw = await asyncio.open_connection(sock=b)
        bw.write(b"ping")
        await bw.drain()
        got += await asyncio.wait_for(br.readexactly(4), 3)
        assert got == b"ping"

        # slow reader: sends a lot, never reads the echo → stalls → idle timeout resets it
        slow_tunnel = await pool.open_stream("echo.shop:80")
        slow_tunnel.send_data(big)
        slow_tunnel.pause_reading("test")  # never read the echo

        for reader in (plain_r, trunc_r, stall_r, *(r for r, _ in many)):
            await closed(reader)
        for _ in range(100):
            if east.inbound.active_streams == 0:
                break
            await asyncio.sleep(0.05)
        # the gateway reset the slow reader's stream at its idle timeout
        assert east.inbound.active_streams == 0, "slow reader not closed at the idle timeout"
        slow_tunnel.close()
        bw.close()
        # after all that, a new stream on the same pool still works
        again = await pool.open_stream("echo.shop:80")
        again.abort("done")
        for w in (plain_w, trunc_w, stall_w, *(w for _, w in many)):
            w.close()
        pool.close()
        await asyncio.sleep(0.3)
        reasons = {s.labels["reason"] for m in east.metrics.handshake_failures.collect()
                   for s in m.samples if s.name.endswith("_total")}
        assert "timeout" in reasons
        assert len(east.inbound.tunnels) == 0
    backend.close()
    await asyncio.sleep(0.2)
    assert open_fds() <= fds_before + 5


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], (ConnectionError,))  # type: ignore[arg-type]
