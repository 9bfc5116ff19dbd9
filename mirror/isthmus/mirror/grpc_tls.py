"""Make TLS 1.2 impossible for grpc (the catalog's server and client): TLS 1.3 only.

grpcio's Python API has no minimum-version setting, and grpc core offers TLS 1.2 and 1.3.
grpc core does read ``GRPC_SSL_CIPHER_SUITES`` once, when the ``grpc`` module is imported,
and hands it to BoringSSL's cipher list, which governs TLS 1.2 and below only (TLS 1.3
suites are fixed). We set that list to a single PSK suite: PSK needs a pre-shared-key
callback, which grpc never installs, so BoringSSL leaves it out of every ClientHello and
never selects it as a server. A TLS 1.2 handshake then has no cipher to agree on, in either
direction and whatever the certificate type, while TLS 1.3 is untouched. (An RSA-only list
would also fail against our ECDSA certificates, but would still let a client complete
TLS 1.2 with an RSA-certified server.) ``tests/mirror/test_grpc_tls.py`` proves both ends
with ``openssl s_client``/``s_server``.

Because the variable is read at import, it must be set before anything imports ``grpc``:
every entry point calls ``isthmus.grpc_tls.pin_tls13()`` first (the ``isthmus`` command and
the test session), so every isthmus process sets it in time. A value set by the environment
is overwritten. If ``grpc`` was imported before (by a host program), the setting came too
late: ``require_tls13`` refuses
to build a catalog server or channel rather than run one that would accept TLS 1.2.
"""

from __future__ import annotations

# The pin itself is ``isthmus.grpc_tls.pin_tls13()``, called by each entry point before
# anything imports grpc.
from isthmus.grpc_tls import CIPHER_SUITES_ENV, TLS12_CIPHER_SUITES, pinned
from isthmus.mirror.errors import MirrorError

__all__ = ["CIPHER_SUITES_ENV", "TLS12_CIPHER_SUITES", "GrpcTlsNotPinned",
           "require_tls13"]


class GrpcTlsNotPinned(MirrorError):
    """grpc was initialised before isthmus restricted it to TLS 1.3."""


def require_tls13() -> None:
    """Raise unless grpc in this process refuses TLS 1.2 (called before serving or dialling)."""
    if not pinned():
        raise GrpcTlsNotPinned(
            "grpc was imported before isthmus set GRPC_SSL_CIPHER_SUITES, so the "
            "catalog would accept TLS 1.2; call isthmus.grpc_tls.pin_tls13() before importing "
            "grpc, or start the "
            f"process with {CIPHER_SUITES_ENV}={TLS12_CIPHER_SUITES}"
        )
