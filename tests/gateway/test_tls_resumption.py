"""TLS session resumption is off: the gateway issues no tickets, so a client that offers
its previous session gets a full handshake, with a chain the gateway verifies, and is
accepted (docs/decisions/tls-session-resumption.md). Real TLS: Python's ssl and
``openssl s_client``."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from gw_helpers import Pki, east_snapshot, echo_backend, running

from isthmus.gateway import wire
from isthmus.trust import build_server_context


def _open_once(port: int, ctx: ssl.SSLContext,
               session: ssl.SSLSession | None) -> tuple[bool, ssl.SSLSession | None, bytes]:
    """One tunnel: offer ``session``, OPEN the echo target, read the STATUS frame."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, session=session) as s:
        s.sendall(wire.open_frame("echo.shop:80"))
        status = s.recv(2)
        return s.session_reused, s.session, status


async def test_python_client_offering_its_session_gets_a_full_verified_handshake(
        pki: Pki) -> None:
    backend = await echo_backend()
    async with running(pki.tls("east"), east_snapshot(backend.port)) as east:
        ctx = pki.tls("west").client_context()
        first = await asyncio.to_thread(_open_once, east.inbound_port, ctx, None)
        assert first[0] is False and first[2] == wire.status_frame(wire.Status.OK)
        # the client offers whatever session it holds; no ticket came, so nothing resumes
        second = await asyncio.to_thread(_open_once, east.inbound_port, ctx, first[1])
        assert second[0] is False
        assert second[2] == wire.status_frame(wire.Status.OK)
        refused = [s for m in east.metrics.handshake_failures.collect() for s in m.samples
                   if s.name.endswith("_total") and s.value]
        assert refused == []
    backend.close()


def test_server_context_sends_no_tickets(pki: Pki) -> None:
    assert build_server_context(pki.material("east")).num_tickets == 0


def _s_client(port: int, d: Path, sess: str, path: Path) -> str:
    proc = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3",
         "-cert", str(d / "c.pem"), "-cert_chain", str(d / "c.pem"), "-key", str(d / "k.pem"),
         "-CAfile", str(d / "ca.pem"), sess, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(wire.open_frame("echo.shop:80"))
    proc.stdin.flush()
    time.sleep(1.0)  # stay connected long enough to receive any ticket the server sends
    proc.stdin.close()
    out = proc.stdout.read().decode(errors="replace")
    proc.wait(timeout=20)
    return out


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_openssl_sess_out_sess_in_is_never_resumed(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.leaf("west")
    (tmp_path / "c.pem").write_bytes(leaf.chain_pem())
    (tmp_path / "k.pem").write_bytes(leaf.key_pem())
    (tmp_path / "ca.pem").write_bytes(pki.bundle.to_pem())
    sess = tmp_path / "session.pem"
    backend = await echo_backend()
    async with running(pki.tls("east"), east_snapshot(backend.port)) as east:
        out = await asyncio.to_thread(_s_client, east.inbound_port, tmp_path, "-sess_out", sess)
        assert "New, TLSv1.3" in out, out
        assert "Verify return code: 0 (ok)" in out, out
        if sess.exists():  # some openssl versions write a session without a ticket
            out = await asyncio.to_thread(_s_client, east.inbound_port, tmp_path,
                                          "-sess_in", sess)
            assert "Reused" not in out, out
            assert "New, TLSv1.3" in out, out
        # the gateway verified and accepted both peers (refusals would be counted here)
        refused = [s for m in east.metrics.handshake_failures.collect() for s in m.samples
                   if s.name.endswith("_total") and s.value]
        assert refused == []
    backend.close()
