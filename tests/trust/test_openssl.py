"""The certificates work outside Python: ``openssl verify``, ``s_client``, ``s_server``."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from trust_helpers import Pki, blocking_request, echo_server, ident, tls_for

from isthmus.trust import CertifiedKey, Issuer, PeerIdentity, ReloadableTls, verify_tls_peer
from isthmus.trust.pem import certs_to_pem

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def files_for(tmp: Path, name: str, leaf: CertifiedKey, *roots: CertifiedKey) -> dict[str, Path]:
    paths = {
        "cert": tmp / f"{name}.crt",
        "chain": tmp / f"{name}-chain.crt",
        "key": tmp / f"{name}.key",
        "roots": tmp / f"{name}-roots.pem",
    }
    paths["cert"].write_bytes(leaf.cert_pem())
    paths["chain"].write_bytes(certs_to_pem(leaf.chain))
    paths["key"].write_bytes(leaf.key_pem())
    paths["key"].chmod(0o600)
    paths["roots"].write_bytes(certs_to_pem(r.cert for r in roots))
    return paths


def test_openssl_verify_accepts_leaf_for_client_and_server(
    pki: Pki, other_pki: Pki, tmp_path: Path
) -> None:
    leaf = Issuer(pki.ca("west")).issue("shop", "users")
    f = files_for(tmp_path, "w", leaf, pki.root)
    for purpose in ("sslclient", "sslserver"):
        done = subprocess.run(
            [
                "openssl",
                "verify",
                "-x509_strict",
                "-purpose",
                purpose,
                "-CAfile",
                f["roots"],
                "-untrusted",
                f["chain"],
                f["cert"],
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert ": OK" in done.stdout
    stranger = files_for(
        tmp_path, "o", Issuer(other_pki.ca("west")).issue("s", "u"), other_pki.root
    )
    done = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            f["roots"],
            "-untrusted",
            stranger["chain"],
            stranger["cert"],
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode != 0


async def s_client(
    port: int, f: dict[str, Path] | None, *extra: str, send: bytes = b"ping\n"
) -> tuple[int | None, str, str]:
    """Run ``openssl s_client`` against the port; return (exit code, stdout, stderr)."""
    args = [
        "openssl",
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-quiet",
        "-verify_return_error",
    ]
    if f is not None:
        args += [
            "-cert",
            str(f["cert"]),
            "-cert_chain",
            str(f["chain"]),
            "-key",
            str(f["key"]),
            "-CAfile",
            str(f["roots"]),
        ]
    args += list(extra) or ["-tls1_3"]
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(send)
    await proc.stdin.drain()
    line = b""
    with contextlib.suppress(TimeoutError):
        line = await asyncio.wait_for(proc.stdout.readline(), 5)
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    _out, err = await asyncio.wait_for(proc.communicate(), 5)
    return proc.returncode, line.decode(), err.decode()


async def test_s_client_to_python_server(pki: Pki, tmp_path: Path) -> None:
    gateway = tls_for(Issuer(pki.ca("east")).issue("isthmus-system", "gateway"), pki.root)
    f = files_for(tmp_path, "c", Issuer(pki.ca("west")).issue("shop", "users"), pki.root)
    async with echo_server(gateway) as server:
        _code, line, err = await s_client(server.port, f)
        assert line.strip() == f"{ident()} ping", err
        assert server.accepted == 1


async def test_s_client_from_other_root_gets_unknown_ca(
    pki: Pki, other_pki: Pki, tmp_path: Path
) -> None:
    gateway = tls_for(Issuer(pki.ca("east")).issue("isthmus-system", "gateway"), pki.root)
    f = files_for(
        tmp_path, "x", Issuer(other_pki.ca("west")).issue("shop", "users"), pki.root, other_pki.root
    )
    async with echo_server(gateway) as server:
        _code, line, err = await s_client(server.port, f)
        assert line == ""
        assert "alert unknown ca" in err
        assert server.accepted == 0


async def test_s_client_without_certificate_gets_certificate_required(
    pki: Pki, tmp_path: Path
) -> None:
    gateway = tls_for(Issuer(pki.ca("east")).issue("isthmus-system", "gateway"), pki.root)
    roots = tmp_path / "roots.pem"
    roots.write_bytes(pki.root.cert_pem())
    async with echo_server(gateway) as server:
        _code, line, err = await s_client(server.port, None, "-tls1_3", "-CAfile", str(roots))
        assert line == ""
        assert "certificate required" in err


async def test_s_client_tls12_gets_protocol_version(pki: Pki, tmp_path: Path) -> None:
    gateway = tls_for(Issuer(pki.ca("east")).issue("isthmus-system", "gateway"), pki.root)
    f = files_for(tmp_path, "c", Issuer(pki.ca("west")).issue("shop", "users"), pki.root)
    async with echo_server(gateway) as server:
        _code, line, err = await s_client(server.port, f, "-tls1_2")
        assert line == ""
        assert "alert protocol version" in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def s_server(f: dict[str, Path]) -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        "openssl",
        "s_server",
        "-accept",
        f"127.0.0.1:{port}",
        "-tls1_3",
        "-rev",
        "-cert",
        str(f["cert"]),
        "-cert_chain",
        str(f["chain"]),
        "-key",
        str(f["key"]),
        "-CAfile",
        str(f["roots"]),
        "-Verify",
        "3",
        "-verify_return_error",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 5)
            assert line, "s_server exited"
            if line.startswith(b"ACCEPT"):
                break
        yield port, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def python_client(port: int, tls: ReloadableTls) -> tuple[PeerIdentity | object, bytes]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        tls.client_context().wrap_socket(raw) as conn,
    ):
        verdict = verify_tls_peer(conn, tls.bundle)
        conn.sendall(b"ping\n")
        reply = b""
        while b"\n" not in reply:
            chunk = conn.recv(100)
            if not chunk:
                break
            reply += chunk
        return verdict, reply


async def test_python_client_to_s_server(pki: Pki, tmp_path: Path) -> None:
    f = files_for(
        tmp_path, "s", Issuer(pki.ca("east")).issue("isthmus-system", "gateway"), pki.root
    )
    client = tls_for(Issuer(pki.ca("west")).issue("shop", "users"), pki.root)
    async with s_server(f) as (port, _proc):
        verdict, reply = await asyncio.to_thread(python_client, port, client)
    assert isinstance(verdict, PeerIdentity)
    assert verdict.identity.uri == ident(cluster="east", ns="isthmus-system", sa="gateway")
    assert reply == b"gnip\n"


async def test_s_server_refuses_python_client_from_other_root(
    pki: Pki, other_pki: Pki, tmp_path: Path
) -> None:
    f = files_for(
        tmp_path, "s", Issuer(pki.ca("east")).issue("isthmus-system", "gateway"), pki.root
    )
    stranger = tls_for(
        Issuer(other_pki.ca("west")).issue("shop", "users"), other_pki.root, pki.root
    )
    async with s_server(f) as (port, _proc):
        with pytest.raises(ssl.SSLError) as caught:
            await asyncio.to_thread(blocking_request, port, stranger.client_context())
    assert "UNKNOWN_CA" in str(caught.value.reason)
