"""TLS material for running processes: ``ssl.SSLContext`` builders and hot reload.

Every context is TLS 1.3 only (``minimum_version = maximum_version = TLSv1_3``), verifies
the peer against the trust bundle, and never checks host names (peers are named by SPIFFE
ID, checked afterwards by ``verify_peer``). Server contexts require a client certificate.

``ReloadableTls`` holds the current material and swaps it atomically:

- ``server_context()`` returns one long-lived context to hand to ``accept_tls`` (see
  tls_stream.py: unlike ``asyncio.start_server(ssl=...)`` it sends refusal alerts) or to
  ``SSLContext.wrap_socket``; at each handshake its SNI callback moves the connection onto the
  newest context, so new handshakes use the new certificate and bundle, while connections
  already open keep the context they were made with and are never dropped;
- ``client_context()`` returns the newest client context; call it per connection.
- ``reload()`` re-reads the source (files, or a Secret via a callable) and swaps only if
  the material changed and is usable; ``watch()`` polls it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from isthmus.logging import get_logger
from isthmus.trust.bundle import TrustBundle
from isthmus.trust.ca import CertifiedKey, utcnow
from isthmus.trust.errors import MaterialError
from isthmus.trust.pem import describe_name, fingerprint, key_matches, load_certs, load_key
from isthmus.trust.refusal import Refusal
from isthmus.trust.svid_rules import check_leaf
from isthmus.trust.verifier import PeerIdentity, verify_peer

# Lazy: structlog builds it on first use, after the process configured logging.
log = get_logger(__name__)


TLS_VERSION = ssl.TLSVersion.TLSv1_3
_ENCODING_DER: int = getattr(ssl, "_ssl").ENCODING_DER  # noqa: B009 - private in 3.11


@dataclass(frozen=True)
class TlsMaterial:
    """What one endpoint needs: its chain (leaf first), its key, and the bundle."""

    chain_pem: bytes
    key_pem: bytes = field(repr=False)
    bundle: TrustBundle

    @classmethod
    def from_certified(cls, leaf: CertifiedKey, bundle: TrustBundle) -> TlsMaterial:
        return cls(leaf.chain_pem(), leaf.key_pem(), bundle)

    @classmethod
    def from_files(cls, cert: Path, key: Path, bundle: Path) -> TlsMaterial:
        try:
            return cls(
                cert.read_bytes(), key.read_bytes(), TrustBundle.from_pem(bundle.read_bytes())
            )
        except OSError as exc:
            raise MaterialError(f"cannot read TLS material: {exc}") from exc

    @classmethod
    def from_secret_data(
        cls, data: Mapping[str, bytes | str], bundle_pem: bytes | str
    ) -> TlsMaterial:
        """From a ``kubernetes.io/tls`` Secret's decoded data (``tls.crt``, ``tls.key``)."""

        def raw(name: str) -> bytes:
            if name not in data:
                raise MaterialError(f"secret data has no {name!r}")
            value = data[name]
            return value.encode("ascii") if isinstance(value, str) else value

        return cls(raw("tls.crt"), raw("tls.key"), TrustBundle.from_pem(bundle_pem))

    def leaf(self) -> x509.Certificate:
        """Check the material holds together; return the leaf."""
        certs = load_certs(self.chain_pem, what="certificate chain")
        key = load_key(self.key_pem, what="TLS key")
        if not key_matches(key, certs[0]):
            raise MaterialError("TLS key does not match the leaf certificate")
        verdict = check_leaf(certs[0])
        if isinstance(verdict, Refusal):
            raise MaterialError(f"leaf is not an SVID: {verdict}")
        return certs[0]

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.chain_pem, self.key_pem, self.bundle.to_pem()):
            h.update(hashlib.sha256(part).digest())
        return h.hexdigest()


def _load_chain(ctx: ssl.SSLContext, material: TlsMaterial) -> None:
    # ssl only loads a certificate chain from files: write them in a private directory
    # (mode 0700, key 0600) and delete them at once.
    with tempfile.TemporaryDirectory(prefix="isthmus-tls-") as tmp:
        cert_path = Path(tmp, "tls.crt")
        key_path = Path(tmp, "tls.key")
        cert_path.write_bytes(material.chain_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(material.key_pem)
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise MaterialError(f"ssl refused the certificate chain: {exc.reason}") from exc


def _common(ctx: ssl.SSLContext, material: TlsMaterial) -> ssl.SSLContext:
    ctx.minimum_version = TLS_VERSION
    ctx.maximum_version = TLS_VERSION
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_verify_locations(cadata=material.bundle.to_pem().decode("ascii"))
    _load_chain(ctx, material)
    return ctx


def build_server_context(material: TlsMaterial) -> ssl.SSLContext:
    """A TLS 1.3-only server context that requires a client certificate from the bundle.

    It issues no session tickets, so clients never try to resume: a resumed session
    carries no certificate chain, and every connection's peer must be verified on its
    full chain (docs/decisions/tls-session-resumption.md)."""
    material.leaf()
    ctx = _common(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), material)
    ctx.num_tickets = 0
    return ctx


def build_client_context(material: TlsMaterial) -> ssl.SSLContext:
    """A TLS 1.3-only client context that presents our chain and verifies the server's."""
    material.leaf()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # peers are SPIFFE IDs: verify_peer checks them
    return _common(ctx, material)


SslEndpoint = ssl.SSLSocket | ssl.SSLObject


def peer_chain_der(endpoint: SslEndpoint) -> list[bytes]:
    """The chain the peer sent, leaf first, as DER (empty if it sent none)."""
    leaf = endpoint.getpeercert(binary_form=True)
    if not leaf:
        return []
    inner: Any = getattr(endpoint, "_sslobj", None)
    getter = getattr(endpoint, "get_unverified_chain", None) or getattr(
        inner, "get_unverified_chain", None
    )
    chain: list[bytes] = []
    if getter is not None:
        for cert in getter() or []:
            der = cert if isinstance(cert, bytes) else cert.public_bytes(_ENCODING_DER)
            chain.append(bytes(der))
    if not chain or chain[0] != leaf:
        chain.insert(0, leaf)
    return chain


def verify_tls_peer(
    endpoint: SslEndpoint, bundle: TrustBundle, now: dt.datetime | None = None
) -> PeerIdentity | Refusal:
    """``verify_peer`` on the chain of an established TLS connection."""
    return verify_peer(bundle, peer_chain_der(endpoint), now or utcnow())


@dataclass(frozen=True)
class _Contexts:
    material: TlsMaterial
    server: ssl.SSLContext
    client: ssl.SSLContext
    digest: str


def _build(material: TlsMaterial) -> _Contexts:
    return _Contexts(
        material, build_server_context(material), build_client_context(material), material.digest
    )


class ReloadableTls:
    """The current TLS material of a process, swapped atomically on change."""

    def __init__(
        self, material: TlsMaterial, *, source: Callable[[], TlsMaterial] | None = None
    ) -> None:
        self._source = source
        self._now = _build(material)
        self._front: ssl.SSLContext | None = None
        self._log_swap(material, "tls material loaded")

    @classmethod
    def from_files(cls, cert: Path, key: Path, bundle: Path) -> ReloadableTls:
        def source() -> TlsMaterial:
            return TlsMaterial.from_files(cert, key, bundle)

        return cls(source(), source=source)

    @property
    def material(self) -> TlsMaterial:
        return self._now.material

    @property
    def bundle(self) -> TrustBundle:
        return self._now.material.bundle

    def client_context(self) -> ssl.SSLContext:
        """The newest client context (take one per connection)."""
        return self._now.client

    def current_server_context(self) -> ssl.SSLContext:
        """The newest server context itself (for callers that wrap each accepted socket)."""
        return self._now.server

    def server_context(self) -> ssl.SSLContext:
        """A stable server context whose handshakes always use the newest material."""
        if self._front is None:
            front = build_server_context(self._now.material)

            def switch(endpoint: SslEndpoint, _name: str | None, _ctx: ssl.SSLContext) -> None:
                endpoint.context = self._now.server

            front.sni_callback = switch
            self._front = front
        return self._front

    def update(self, material: TlsMaterial) -> bool:
        """Swap to ``material`` if it differs; raises ``MaterialError`` if it is unusable."""
        if material.digest == self._now.digest:
            return False
        self._now = _build(material)  # one assignment: readers see old or new, never a mix
        self._log_swap(material, "tls material swapped")
        return True

    def reload(self) -> bool:
        """Re-read the source; True if new material is now in use. Errors keep the old."""
        if self._source is None:
            return False
        try:
            return self.update(self._source())
        except MaterialError as exc:
            log.error("tls material not reloaded, keeping the current one", error=str(exc))
            return False

    async def watch(self, interval: float = 2.0, *, iterations: int | None = None) -> None:
        """Poll the source every ``interval`` seconds (forever, or ``iterations`` times)."""
        done = 0
        while iterations is None or done < iterations:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.reload)
            done += 1

    def _log_swap(self, material: TlsMaterial, event: str) -> None:
        leaf = load_certs(material.chain_pem)[0]
        log.info(
            event,
            leaf=describe_name(leaf),
            fingerprint=fingerprint(leaf),
            not_after=leaf.not_valid_after_utc.isoformat(),
            roots=list(material.bundle.fingerprints),
        )
