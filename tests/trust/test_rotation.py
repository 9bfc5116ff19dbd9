"""Rotation in running processes: leaf, intermediate and root, with open connections kept
and no failed request."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from pathlib import Path

from structlog.testing import capture_logs
from trust_helpers import (
    Pki,
    blocking_request,
    connect,
    echo_server,
    ident,
    one_request,
    roundtrip,
    tls_for,
)

from isthmus.trust import (
    CertifiedKey,
    Issuer,
    PeerIdentity,
    ReloadableTls,
    TlsMaterial,
    TrustBundle,
    create_cluster_ca,
    verify_tls_peer,
)
from isthmus.trust.pem import fingerprint


def presented_chain(port: int, tls: ReloadableTls) -> PeerIdentity:
    """Open a fresh connection and return what the server presented, verified."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        tls.client_context().wrap_socket(raw) as conn,
    ):
        verdict = verify_tls_peer(conn, tls.bundle)
    assert isinstance(verdict, PeerIdentity), verdict
    return verdict


def gateway_leaf(ca: CertifiedKey) -> CertifiedKey:
    return Issuer(ca).issue("isthmus-system", "gateway")


async def test_leaf_rotation_keeps_open_connections(pki: Pki) -> None:
    first = gateway_leaf(pki.ca("east"))
    server_tls = tls_for(first, pki.root)
    client_tls = tls_for(Issuer(pki.ca("west")).issue("shop", "users"), pki.root)
    async with echo_server(server_tls) as server:
        reader, writer = await connect(server.port, client_tls.client_context())
        assert await roundtrip(reader, writer, "before") == f"{ident()} before"

        second = gateway_leaf(pki.ca("east"))
        assert server_tls.update(TlsMaterial.from_certified(second, server_tls.bundle))
        assert not server_tls.update(TlsMaterial.from_certified(second, server_tls.bundle))

        # The open connection carries on ...
        assert await roundtrip(reader, writer, "after") == f"{ident()} after"
        # ... and a new handshake gets the new leaf.
        seen = await asyncio.to_thread(presented_chain, server.port, client_tls)
        assert fingerprint(seen.chain[0]) == second.fingerprint
        writer.close()


async def test_intermediate_rotation_keeps_open_connections(pki: Pki) -> None:
    old_ca = pki.ca("east")
    server_tls = tls_for(gateway_leaf(old_ca), pki.root)
    client_tls = tls_for(Issuer(pki.ca("west")).issue("shop", "users"), pki.root)
    async with echo_server(server_tls) as server:
        reader, writer = await connect(server.port, client_tls.client_context())
        assert await roundtrip(reader, writer, "one") == f"{ident()} one"

        new_ca = create_cluster_ca(pki.root, "east")
        server_tls.update(TlsMaterial.from_certified(gateway_leaf(new_ca), server_tls.bundle))
        # The client's intermediate rotates too.
        new_west = create_cluster_ca(pki.root, "west")
        client_tls.update(
            TlsMaterial.from_certified(Issuer(new_west).issue("shop", "users"), client_tls.bundle)
        )

        assert await roundtrip(reader, writer, "two") == f"{ident()} two"
        seen = await asyncio.to_thread(presented_chain, server.port, client_tls)
        assert fingerprint(seen.chain[1]) == new_ca.fingerprint
        assert await one_request(server.port, client_tls.client_context()) == f"{ident()} ping"
        writer.close()


def write_material(directory: Path, leaf: CertifiedKey, bundle: TrustBundle) -> None:
    # As a kubelet does for a Secret volume: build the files, then swap them in.
    staging = directory / ".staging"
    staging.mkdir(exist_ok=True)
    (staging / "tls.crt").write_bytes(leaf.chain_pem())
    (staging / "tls.key").write_bytes(leaf.key_pem())
    (staging / "roots.pem").write_bytes(bundle.to_pem())
    for name in ("tls.crt", "tls.key", "roots.pem"):
        (staging / name).replace(directory / name)


async def test_file_watch_picks_up_new_material_within_seconds(pki: Pki, tmp_path: Path) -> None:
    bundle = TrustBundle.of([pki.root.cert])
    write_material(tmp_path, gateway_leaf(pki.ca("east")), bundle)
    server_tls = ReloadableTls.from_files(
        tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "roots.pem"
    )
    client_tls = tls_for(Issuer(pki.ca("west")).issue("shop", "users"), pki.root)
    watcher = asyncio.create_task(server_tls.watch(interval=0.05))
    try:
        async with echo_server(server_tls) as server:
            reader, writer = await connect(server.port, client_tls.client_context())
            assert await roundtrip(reader, writer) == f"{ident()} ping"
            new_leaf = gateway_leaf(pki.ca("east"))
            write_material(tmp_path, new_leaf, bundle)
            started = time.monotonic()
            while True:
                seen = await asyncio.to_thread(presented_chain, server.port, client_tls)
                if fingerprint(seen.chain[0]) == new_leaf.fingerprint:
                    break
                assert time.monotonic() - started < 5, "new leaf not served within 5 s"
                await asyncio.sleep(0.05)
            assert await roundtrip(reader, writer, "still") == f"{ident()} still"
            writer.close()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def test_unusable_new_material_keeps_the_old(pki: Pki, tmp_path: Path) -> None:
    bundle = TrustBundle.of([pki.root.cert])
    first = gateway_leaf(pki.ca("east"))
    write_material(tmp_path, first, bundle)
    tls = ReloadableTls.from_files(
        tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "roots.pem"
    )
    # A key that does not match the certificate (a half-written update, say).
    (tmp_path / "tls.key").write_bytes(gateway_leaf(pki.ca("east")).key_pem())
    with capture_logs() as logs:
        assert tls.reload() is False
    assert tls.material.chain_pem == first.chain_pem()
    assert any(e["log_level"] == "error" and "does not match" in e["error"] for e in logs)
    (tmp_path / "tls.crt").write_bytes(b"not a certificate")
    assert tls.reload() is False
    assert tls.material.chain_pem == first.chain_pem()


async def test_root_rotation_under_continuous_traffic(tmp_path: Path) -> None:
    """The root rotation of docs/operations.md, scripted: add the new root to every bundle, re-issue
    the intermediates and leaves under it, then remove the old root. Traffic runs all the
    time over fresh connections plus one long-lived one; not one request may fail."""
    old, new = Pki(), Pki()
    assert old.trust_domain == new.trust_domain
    old_only = TrustBundle.of([old.root.cert])
    both = old_only.with_root(new.root.cert)
    new_only = both.without_root(old.root.cert)

    server_tls = tls_for(gateway_leaf(old.ca("east")), old.root)
    client_tls = tls_for(Issuer(old.ca("west")).issue("shop", "users"), old.root)

    def server_to(leaf: CertifiedKey | None = None, bundle: TrustBundle | None = None) -> None:
        m = server_tls.material
        server_tls.update(
            TlsMaterial(
                leaf.chain_pem() if leaf else m.chain_pem,
                leaf.key_pem() if leaf else m.key_pem,
                bundle or m.bundle,
            )
        )

    def client_to(leaf: CertifiedKey | None = None, bundle: TrustBundle | None = None) -> None:
        m = client_tls.material
        client_tls.update(
            TlsMaterial(
                leaf.chain_pem() if leaf else m.chain_pem,
                leaf.key_pem() if leaf else m.key_pem,
                bundle or m.bundle,
            )
        )

    stages = [
        ("start", lambda: None),
        ("bundles [old,new]", lambda: (server_to(bundle=both), client_to(bundle=both))),
        ("server re-issued under new", lambda: server_to(leaf=gateway_leaf(new.ca("east")))),
        (
            "client re-issued under new",
            lambda: client_to(leaf=Issuer(new.ca("west")).issue("shop", "users")),
        ),
        ("bundles [new]", lambda: (server_to(bundle=new_only), client_to(bundle=new_only))),
    ]
    per_stage = 30
    done = 0
    failures: list[str] = []

    async with echo_server(server_tls) as server:
        long_reader, long_writer = await connect(server.port, client_tls.client_context())

        async def worker(stop: asyncio.Event) -> None:
            nonlocal done
            while not stop.is_set():
                try:
                    reply = await one_request(server.port, client_tls.client_context())
                    if reply != f"{ident()} ping":
                        failures.append(f"bad reply {reply!r}")
                except (OSError, ssl.SSLError, TimeoutError) as exc:
                    failures.append(repr(exc))
                done += 1

        stop = asyncio.Event()
        workers = [asyncio.create_task(worker(stop)) for _ in range(4)]
        try:
            for index, (name, step) in enumerate(stages):
                step()
                target = (index + 1) * per_stage
                deadline = time.monotonic() + 10
                while done < target:
                    assert time.monotonic() < deadline, f"traffic stalled at stage {name}"
                    await asyncio.sleep(0.01)
                reply = await roundtrip(long_reader, long_writer, name.replace(" ", "_"))
                assert reply.endswith(name.replace(" ", "_")), (name, reply)
        finally:
            stop.set()
            await asyncio.gather(*workers)
        long_writer.close()

        assert failures == [], failures[:5]
        assert done >= per_stage * len(stages)
        assert server.refusals == []
        # Callers under both roots were served during the overlap, in order: old, then new.
        old_fp, new_fp = fingerprint(old.root.cert), fingerprint(new.root.cert)
        assert set(server.roots_seen) == {old_fp, new_fp}
        last_old = max(i for i, fp in enumerate(server.roots_seen) if fp == old_fp)
        assert all(fp == new_fp for fp in server.roots_seen[last_old + 1 :])
        # Afterwards, a leaf under the old root is refused at the handshake (unknown_ca).
        leftover = tls_for(Issuer(old.ca("west")).issue("shop", "users"), old.root, new.root)
        try:
            await asyncio.to_thread(blocking_request, server.port, leftover.client_context())
        except ssl.SSLError as exc:
            assert "UNKNOWN_CA" in str(exc.reason)
        else:
            raise AssertionError("a leaf under the removed root was accepted")
        # and new handshakes now chain to the new root only.
        seen = await asyncio.to_thread(presented_chain, server.port, client_tls)
        assert seen.root_fingerprint == fingerprint(new.root.cert)
