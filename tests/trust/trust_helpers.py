"""Test helpers for tests/trust: hand-made (and deliberately broken) certificates, and a
small mTLS echo service on loopback that uses the real trust API the gateway will use."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from isthmus.trust import (
    CertifiedKey,
    Refusal,
    ReloadableTls,
    create_cluster_ca,
    create_root,
    verify_tls_peer,
)
from isthmus.trust.ca import utcnow
from isthmus.trust.pem import generate_key
from isthmus.trust.tls_stream import accept_tls

TD = "example.org"
T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def ident(cluster: str = "west", ns: str = "shop", sa: str = "users", td: str = TD) -> str:
    return f"spiffe://{td}/cluster/{cluster}/ns/{ns}/sa/{sa}"


def key_usage(**on: bool) -> x509.KeyUsage:
    names = [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ]
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


@dataclass
class LeafSpec:
    """Everything about a leaf a test may want to get wrong."""

    uris: Sequence[str] = (ident(),)
    dns: Sequence[str] = ()
    ca: bool = False
    usage: x509.KeyUsage | None = field(default_factory=lambda: key_usage(digital_signature=True))
    ekus: Sequence[x509.ObjectIdentifier] | None = (
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None


def tls_for(leaf: CertifiedKey, *roots: CertifiedKey) -> ReloadableTls:
    from isthmus.trust import TlsMaterial, TrustBundle

    return ReloadableTls(TlsMaterial.from_certified(leaf, TrustBundle.of([r.cert for r in roots])))


def make_leaf(issuer: CertifiedKey, spec: LeafSpec | None = None) -> CertifiedKey:
    spec = spec or LeafSpec()
    now = utcnow()
    key = generate_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test leaf")]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(spec.not_before or now - dt.timedelta(minutes=5))
        .not_valid_after(spec.not_after or now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=spec.ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if spec.usage is not None:
        builder = builder.add_extension(spec.usage, critical=True)
    if spec.ekus is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(spec.ekus)), critical=False)
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in spec.uris]
    names += [x509.DNSName(d) for d in spec.dns]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer.key, hashes.SHA256())
    return CertifiedKey(cert, key, (issuer.cert, *issuer.chain))


def der_chain(material: CertifiedKey) -> list[bytes]:
    return [c.public_bytes(serialization.Encoding.DER) for c in material.full_chain]


@dataclass
class Pki:
    """One root and a cluster CA per cluster name, made on demand."""

    trust_domain: str = TD
    root: CertifiedKey = field(init=False)
    cas: dict[str, CertifiedKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Backdated a month, so tests can sign certificates that have already expired.
        self.root = create_root(self.trust_domain, now=utcnow() - dt.timedelta(days=30))

    def ca(self, cluster: str = "west") -> CertifiedKey:
        if cluster not in self.cas:
            self.cas[cluster] = create_cluster_ca(self.root, cluster)
        return self.cas[cluster]


# --- a small mTLS service on loopback -------------------------------------------------


@dataclass
class EchoServer:
    """Accepts mTLS (``accept_tls``, so refusals carry their alert), verifies the peer with
    ``verify_tls_peer``, then echoes lines prefixed with the caller's SPIFFE ID; a refused
    peer gets the connection closed."""

    tls: ReloadableTls
    server: asyncio.Server | None = None
    refusals: list[Refusal] = field(default_factory=list)
    handshake_errors: list[str] = field(default_factory=list)
    accepted: int = 0
    roots_seen: list[str] = field(default_factory=list)
    handshake_timeout: float = 5.0

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            stream = await accept_tls(
                reader, writer, self.tls.server_context(), timeout=self.handshake_timeout
            )
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            self.handshake_errors.append(getattr(exc, "reason", None) or str(exc))
            return
        verdict = verify_tls_peer(stream.ssl_object, self.tls.bundle)
        if isinstance(verdict, Refusal):
            self.refusals.append(verdict)
            await stream.close()
            return
        self.accepted += 1
        self.roots_seen.append(verdict.root_fingerprint)
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while line := await stream.readline():
                stream.write(f"{verdict.identity.uri} {line.decode()}".encode())
                await stream.drain()
        await stream.close()

    async def start(self) -> EchoServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def echo_server(tls: ReloadableTls, **options: float) -> AsyncIterator[EchoServer]:
    server = await EchoServer(tls, **options).start()
    try:
        yield server
    finally:
        await server.stop()


async def connect(
    port: int, ctx: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=None), 5
    )


async def roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, text: str = "ping"
) -> str:
    writer.write(f"{text}\n".encode())
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 5)
    if not line:
        raise ConnectionError("closed by server")
    return line.decode().strip()


async def one_request(port: int, ctx: ssl.SSLContext, text: str = "ping") -> str:
    reader, writer = await connect(port, ctx)
    try:
        return await roundtrip(reader, writer, text)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


def blocking_request(port: int, ctx: ssl.SSLContext, text: str = "ping") -> bytes:
    """One request over a blocking ssl socket: alerts surface as ``ssl.SSLError``."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        tls.sendall(f"{text}\n".encode())
        return tls.recv(4096)
