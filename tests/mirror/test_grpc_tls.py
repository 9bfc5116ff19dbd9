"""The catalog's gRPC speaks TLS 1.3 only, on both ends, checked with the openssl tools.

Server: ``openssl s_client -tls1_2`` against a running ``CatalogServer`` must fail the
handshake, ``-tls1_3`` must complete it. Client: the mirror's catalog channel against
``openssl s_server -tls1_2`` (with our ECDSA leaf, and with an RSA certificate) must not
complete a handshake; against ``-tls1_3`` it must.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from mirror_helpers import ROOT, Pki

from isthmus.devcluster.controlplane import free_port
from isthmus.mirror.catalog_client import DirectDialer
from isthmus.mirror.catalog_server import CatalogServer
from isthmus.mirror.export_catalog import ExportCatalog
from isthmus.mirror.grpc_tls import CIPHER_SUITES_ENV, TLS12_CIPHER_SUITES
from isthmus.mirror.metrics import MirrorMetrics
from isthmus.mirror.model import LinkInfo
from isthmus.mirror.names import mirror_server_name
from isthmus.trust import CertifiedKey, Issuer

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None and not os.environ.get("CI"),
                                reason="needs the openssl command")


def mirror_leaf(pki: Pki, cluster: str) -> CertifiedKey:
    return Issuer(pki.ca(cluster)).issue("isthmus-system", "isthmus-mirror",
                                         dns_names=[mirror_server_name(cluster)])


class Files:
    """PEM files for the openssl tools: the bundle, and a leaf (chain) + key per cluster."""

    def __init__(self, pki: Pki, tmp: Path) -> None:
        self.dir = tmp
        self.ca = tmp / "ca.pem"
        self.ca.write_bytes(pki.bundle.to_pem())
        self.keys: dict[str, CertifiedKey] = {}
        for cluster in ("west", "east"):
            key = self.keys[cluster] = mirror_leaf(pki, cluster)
            (tmp / f"{cluster}.crt").write_bytes(key.chain_pem())
            (tmp / f"{cluster}.key").write_bytes(key.key_pem())

    def cert_args(self, cluster: str) -> list[str]:
        crt, key = self.dir / f"{cluster}.crt", self.dir / f"{cluster}.key"
        return ["-cert", str(crt), "-key", str(key), "-cert_chain", str(crt)]


@pytest.fixture
def files(pki: Pki, tmp_path: Path) -> Files:
    return Files(pki, tmp_path)


async def run(*args: str, timeout: float = 15.0) -> str:
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return out.decode(errors="replace")


@pytest.fixture
async def catalog_port(pki: Pki, files: Files) -> AsyncIterator[int]:
    own = files.keys["west"]
    server = CatalogServer(
        ExportCatalog(), cluster="west", bundle=lambda: pki.bundle,
        credentials=lambda: grpc.ssl_server_credentials(
            [(own.key_pem(), own.chain_pem())], root_certificates=pki.bundle.to_pem(),
            require_client_auth=True),
        is_linked=lambda c: c == "east", metrics=MirrorMetrics(),
    )
    yield await server.start("127.0.0.1", 0)
    await server.stop(0)


async def s_client(files: Files, port: int, version: str) -> str:
    return await run(
        str(OPENSSL), "s_client", "-connect", f"127.0.0.1:{port}", version, "-alpn", "h2",
        "-CAfile", str(files.ca), "-verify_return_error", *files.cert_args("east"))


async def test_server_refuses_tls12(catalog_port: int, files: Files) -> None:
    out = await s_client(files, catalog_port, "-tls1_2")
    # grpc closes the connection (BoringSSL: NO_SHARED_CIPHER) without an alert: no session
    assert "New, (NONE), Cipher is (NONE)" in out, out
    assert "Cipher    : 0000" in out, out
    assert "TLSv1.2, Cipher is" not in out, out


async def test_server_accepts_tls13(catalog_port: int, files: Files) -> None:
    out = await s_client(files, catalog_port, "-tls1_3")
    assert "New, TLSv1.3, Cipher is TLS_" in out, out
    assert "Verify return code: 0 (ok)" in out, out


@contextlib.asynccontextmanager
async def s_server(files: Files, version: str, cert: list[str]) -> AsyncIterator[
        tuple[int, asyncio.subprocess.Process]]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        str(OPENSSL), "s_server", "-accept", f"127.0.0.1:{port}", version, "-alpn", "h2",
        "-naccept", "1", "-CAfile", str(files.ca), "-Verify", "3", *cert,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        while b"ACCEPT" not in await asyncio.wait_for(proc.stdout.readline(), 10):
            pass
        yield port, proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def dial(port: int, files: Files) -> None:
    """Let the catalog channel try to connect to ``openssl s_server`` on ``port``."""
    east = files.keys["east"]
    creds = grpc.ssl_channel_credentials(files.ca.read_bytes(), east.key_pem(),
                                         east.chain_pem())
    link = LinkInfo(name="west", uid="u", cluster="west", trust_domain="example.org",
                    gateway_host="127.0.0.1", gateway_port=port)
    channel = DirectDialer(lambda: creds).channel(link)
    try:
        # s_server does not speak HTTP/2, so the channel never becomes ready; the handshake
        # is what we look at, in the server's output.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(channel.channel_ready(), 2.0)
    finally:
        await channel.close(grace=None)


async def server_output(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), 5)
    if proc.returncode is None:
        proc.kill()
    return (await proc.stdout.read()).decode(errors="replace")


def rsa_cert(tmp: Path) -> list[str]:
    """A self-signed RSA certificate: TLS 1.2 must fail whatever the server's key type."""
    key, crt = tmp / "rsa.key", tmp / "rsa.crt"
    subprocess.run([str(OPENSSL), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=" + mirror_server_name("west"), "-keyout", str(key),
                    "-out", str(crt)], check=True, capture_output=True)
    return ["-cert", str(crt), "-key", str(key)]


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
async def test_client_never_completes_tls12(files: Files, key_type: str) -> None:
    cert = files.cert_args("west") if key_type == "ecdsa" else rsa_cert(files.dir)
    async with s_server(files, "-tls1_2", cert) as (port, proc):
        await dial(port, files)
        out = await server_output(proc)
    assert "no shared cipher" in out, out
    assert "CIPHER is" not in out, out


async def test_client_completes_tls13(files: Files) -> None:
    async with s_server(files, "-tls1_3", files.cert_args("west")) as (port, proc):
        await dial(port, files)
        out = await server_output(proc)
    assert "CIPHER is TLS_" in out, out  # TLS_* suites exist only in TLS 1.3
    assert "PRI * HTTP/2.0" in out, out  # the handshake finished: gRPC sent its preface


def test_grpc_imported_first_is_refused() -> None:
    """If grpc was initialised before the pin, or the pin never ran, the mirror refuses."""
    env = {k: v for k, v in os.environ.items() if k != CIPHER_SUITES_ENV}
    refuse = ("try:\n    m.require_tls13()\nexcept m.GrpcTlsNotPinned as e:\n"
              "    print('refused:', e)\n")
    for first in (
        "import grpc\nfrom isthmus.grpc_tls import pin_tls13\npin_tls13()\n",  # too late
        "",  # never pinned: importing isthmus changes no process state by itself
    ):
        code = first + "import isthmus.mirror as m\n" + refuse
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        assert out.startswith("refused: grpc was imported before isthmus set"), (first, out)
    # the entry points' order pins it, overriding a weaker value from the environment
    env[CIPHER_SUITES_ENV] = "ECDHE-ECDSA-AES128-GCM-SHA256"
    code = ("import os\nfrom isthmus.grpc_tls import pin_tls13\npin_tls13()\n"
            "import isthmus.mirror as m, grpc\nm.require_tls13()\n"
            f"print(os.environ[{CIPHER_SUITES_ENV!r}])\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == TLS12_CIPHER_SUITES
