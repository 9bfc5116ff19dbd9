"""Real TLS 1.3 handshakes between Python ``ssl`` endpoints on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
from trust_helpers import (
    LeafSpec,
    Pki,
    blocking_request,
    echo_server,
    ident,
    key_usage,
    make_leaf,
    one_request,
    tls_for,
)

from isthmus.trust import (
    Issuer,
    PeerIdentity,
    Reason,
    ReloadableTls,
    build_client_context,
    build_server_context,
    create_cluster_ca,
    verify_tls_peer,
)
from isthmus.trust.ca import utcnow
from isthmus.trust.tls_stream import connect_tls


@pytest.fixture(scope="module")
def gateway(pki: Pki) -> ReloadableTls:
    return tls_for(Issuer(pki.ca("east")).issue("isthmus-system", "gateway"), pki.root)


@pytest.fixture(scope="module")
def caller(pki: Pki) -> ReloadableTls:
    return tls_for(Issuer(pki.ca("west")).issue("shop", "users"), pki.root)


def alert_of(exc: BaseException) -> str:
    return str(getattr(exc, "reason", "") or exc)


async def test_contexts_are_tls13_only_and_require_a_client_certificate(
    gateway: ReloadableTls,
) -> None:
    server = build_server_context(gateway.material)
    client = build_client_context(gateway.material)
    for ctx in (server, client):
        assert ctx.minimum_version is ssl.TLSVersion.TLSv1_3
        assert ctx.maximum_version is ssl.TLSVersion.TLSv1_3
        assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert client.check_hostname is False


async def test_mutual_tls_names_both_sides(gateway: ReloadableTls, caller: ReloadableTls) -> None:
    async with echo_server(gateway) as server:
        assert await one_request(server.port, caller.client_context()) == f"{ident()} ping"

        def client_side_identity() -> object:
            import socket

            address = ("127.0.0.1", server.port)
            with (
                socket.create_connection(address, timeout=5) as raw,
                caller.client_context().wrap_socket(raw) as tls,
            ):
                assert tls.version() == "TLSv1.3"
                return verify_tls_peer(tls, caller.bundle)

        seen = await asyncio.to_thread(client_side_identity)
        assert isinstance(seen, PeerIdentity)
        assert seen.identity.uri == ident(cluster="east", ns="isthmus-system", sa="gateway")


async def test_client_from_other_root_gets_unknown_ca(
    pki: Pki, gateway: ReloadableTls, other_pki: Pki
) -> None:
    pki_root = pki.root
    # The stranger trusts our root too, so only the gateway's check can stop it.
    stranger = tls_for(
        Issuer(other_pki.ca("west")).issue("shop", "users"), other_pki.root, pki_root
    )
    async with echo_server(gateway) as server:
        with pytest.raises(ssl.SSLError) as caught:
            await asyncio.to_thread(blocking_request, server.port, stranger.client_context())
        assert "TLSV1_ALERT_UNKNOWN_CA" in alert_of(caught.value)
        assert server.accepted == 0


async def test_no_client_certificate_gets_certificate_required(gateway: ReloadableTls) -> None:
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.load_verify_locations(cadata=gateway.bundle.to_pem().decode())
    async with echo_server(gateway) as server:
        with pytest.raises(ssl.SSLError) as caught:
            await asyncio.to_thread(blocking_request, server.port, anonymous)
        assert "CERTIFICATE_REQUIRED" in alert_of(caught.value)
        assert server.accepted == 0


async def test_tls12_client_gets_protocol_version(
    gateway: ReloadableTls, caller: ReloadableTls
) -> None:
    old = build_client_context(caller.material)
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_2
    async with echo_server(gateway) as server:
        with pytest.raises(ssl.SSLError) as caught:
            await asyncio.to_thread(blocking_request, server.port, old)
        assert "PROTOCOL_VERSION" in alert_of(caught.value)
        assert server.accepted == 0


async def test_server_from_other_root_is_refused_by_the_client(
    pki: Pki, caller: ReloadableTls, other_pki: Pki
) -> None:
    leaf = Issuer(other_pki.ca("east")).issue("isthmus-system", "gateway")
    impostor = tls_for(leaf, other_pki.root, pki.root)  # it would accept us; we must not it
    async with echo_server(impostor) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(blocking_request, server.port, caller.client_context())
        await asyncio.sleep(0.05)
        assert any("UNKNOWN_CA" in e for e in server.handshake_errors)


@pytest.mark.parametrize(
    ("when", "alert"),
    [
        pytest.param("expired", "CERTIFICATE_EXPIRED", id="expired-leaf"),
        pytest.param("future", "BAD_CERTIFICATE", id="not-yet-valid-leaf"),
    ],
)
async def test_out_of_date_client_leaf_refused_in_handshake(
    pki: Pki,
    gateway: ReloadableTls,
    when: str,
    alert: str,
) -> None:
    now = utcnow()
    spec = (
        LeafSpec(not_before=now - dt.timedelta(hours=2), not_after=now - dt.timedelta(hours=1))
        if when == "expired"
        else LeafSpec(not_before=now + dt.timedelta(hours=1), not_after=now + dt.timedelta(hours=2))
    )
    client = tls_for(make_leaf(pki.ca("west"), spec), pki.root)
    async with echo_server(gateway) as server:
        with pytest.raises(ssl.SSLError) as caught:
            await asyncio.to_thread(
                blocking_request, server.port, build_client_context(client.material)
            )
        assert alert in alert_of(caught.value)
        assert server.accepted == 0


async def test_expired_intermediate_refused_in_handshake(pki: Pki, gateway: ReloadableTls) -> None:
    long_ago = utcnow() - dt.timedelta(days=3)
    old_ca = create_cluster_ca(pki.root, "west", lifetime=dt.timedelta(days=1), now=long_ago)
    leaf = make_leaf(
        old_ca,
        LeafSpec(not_before=long_ago, not_after=utcnow() + dt.timedelta(hours=1)),
    )
    client = tls_for(leaf, pki.root)
    async with echo_server(gateway) as server:
        with pytest.raises(ssl.SSLError) as caught:
            await asyncio.to_thread(
                blocking_request, server.port, build_client_context(client.material)
            )
        assert "CERTIFICATE_EXPIRED" in alert_of(caught.value)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        pytest.param(LeafSpec(ca=True), Reason.LEAF_IS_CA, id="ca-true"),
        pytest.param(
            LeafSpec(usage=key_usage(digital_signature=True, key_cert_sign=True)),
            Reason.LEAF_KEY_CERT_SIGN,
            id="key-cert-sign",
        ),
        pytest.param(
            LeafSpec(usage=key_usage(digital_signature=True, crl_sign=True)),
            Reason.LEAF_CRL_SIGN,
            id="crl-sign",
        ),
        pytest.param(
            LeafSpec(usage=key_usage(key_agreement=True)),
            Reason.LEAF_NO_DIGITAL_SIGNATURE,
            id="no-digital-signature",
        ),
        pytest.param(
            LeafSpec(uris=(ident(), ident(sa="admin"))), Reason.SPIFFE_TWO_URI_SANS, id="two-uris"
        ),
        pytest.param(
            LeafSpec(uris=(ident(cluster="east"),)), Reason.CLUSTER_MISMATCH, id="forged-cluster"
        ),
    ],
)
async def test_ssl_accepts_but_verifier_refuses(
    pki: Pki, gateway: ReloadableTls, spec: LeafSpec, reason: Reason, tmp_path: Path
) -> None:
    """Python's ssl lets (most of) these through the handshake; verify_peer stops them."""
    client = make_leaf(pki.ca("west"), spec)
    # build_client_context refuses such a leaf outright, so load it with plain ssl.
    raw_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    raw_ctx.check_hostname = False
    raw_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    raw_ctx.load_verify_locations(cadata=gateway.bundle.to_pem().decode())
    (tmp_path / "c.pem").write_bytes(client.chain_pem())
    (tmp_path / "k.pem").write_bytes(client.key_pem())
    raw_ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    async with echo_server(gateway) as server:
        try:
            reply = await asyncio.to_thread(blocking_request, server.port, raw_ctx)
        except (ssl.SSLError, ConnectionError) as exc:
            reply = repr(exc).encode()
        assert b"ping" not in reply
        await asyncio.sleep(0.05)
        assert server.accepted == 0
        if server.handshake_errors:
            # OpenSSL's strict mode stops this one already (the first gate) ...
            assert reason is Reason.LEAF_KEY_CERT_SIGN, server.handshake_errors
        else:
            # ... the others pass ssl and are stopped by verify_peer, with their reason.
            assert [r.reason for r in server.refusals] == [reason]


async def test_stalled_handshake_times_out_and_others_still_served(
    gateway: ReloadableTls, caller: ReloadableTls
) -> None:
    async with echo_server(gateway, handshake_timeout=1.0) as server:
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.0\r\n")  # plain text, then silence
        assert await one_request(server.port, caller.client_context()) == f"{ident()} ping"
        for _ in range(60):  # the stalled one is cut off after 1 s
            if server.handshake_errors:
                break
            await asyncio.sleep(0.05)
        assert server.handshake_errors
        writer.close()


async def test_connect_tls_client_side(
    pki: Pki, gateway: ReloadableTls, caller: ReloadableTls
) -> None:
    """The hand-driven client handshake: works, and its own refusal reaches the server."""
    async with echo_server(gateway) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        stream = await connect_tls(reader, writer, caller.client_context(), timeout=5)
        verdict = verify_tls_peer(stream.ssl_object, caller.bundle)
        assert isinstance(verdict, PeerIdentity) and verdict.cluster == "east"
        stream.write(b"hello\n")
        await stream.drain()
        assert await stream.readline() == f"{ident()} hello\n".encode()
        await stream.close()

    other = Pki()
    impostor = tls_for(
        Issuer(other.ca("east")).issue("isthmus-system", "gateway"), other.root, pki.root
    )
    async with echo_server(impostor) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect_tls(reader, writer, caller.client_context(), timeout=5)
        await asyncio.sleep(0.05)
        assert any("UNKNOWN_CA" in e for e in server.handshake_errors)


async def test_connect_tls_times_out_on_a_silent_server(caller: ReloadableTls) -> None:
    async def silent(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2)
        w.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    with pytest.raises(TimeoutError):
        await connect_tls(reader, writer, caller.client_context(), timeout=0.2)
    server.close()
