"""Which byte path the gateway uses once a stream is open: kernel TLS or userspace TLS.

Kernel TLS (kTLS) lets the kernel encrypt and decrypt a TLS socket, so an open stream's
bytes could be moved with ``splice`` and never enter Python. It needs both:

- the ``ssl`` module able to hand the keys to the kernel (``ssl.OP_ENABLE_KTLS``, Python
  3.12+ built against OpenSSL 3 with kTLS), and
- the kernel's TLS upper-layer protocol (``tls`` in ``tcp_available_ulp``, or accepted by
  ``setsockopt(TCP_ULP, "tls")`` on a connected socket).

Only when both are present is the kernel path possible; otherwise the userspace path
(``tunnel.py``: OpenSSL on a MemoryBIO) carries the bytes. The gateway has no kernel path
yet (docs/decisions/ktls.md): the detection says which one a host could use and why, and
the gateway logs it at start.
"""

from __future__ import annotations

import errno
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

TCP_ULP = getattr(socket, "TCP_ULP", 31)  # linux/tcp.h; Python exposes it from 3.12 only
AVAILABLE_ULP = Path("/proc/sys/net/ipv4/tcp_available_ulp")


@dataclass(frozen=True)
class DataPath:
    """The chosen path and, for the userspace one, why the kernel path is not possible."""

    kind: str  # "kernel" | "userspace"
    reasons: tuple[str, ...] = ()


def choose_data_path(*, ssl_ktls: bool, kernel_tls: bool, kernel_path_built: bool) -> DataPath:
    """Pure: the kernel path only when Python's ssl, the kernel and the gateway all have it."""
    reasons = []
    if not ssl_ktls:
        reasons.append("ssl_without_ktls")
    if not kernel_tls:
        reasons.append("kernel_without_tls_ulp")
    if not kernel_path_built:
        reasons.append("gateway_without_kernel_path")
    return DataPath("userspace", tuple(reasons)) if reasons else DataPath("kernel")


def ssl_has_ktls() -> bool:
    return hasattr(ssl, "OP_ENABLE_KTLS")


def kernel_has_tls_ulp() -> bool:
    """Whether the kernel accepts the ``tls`` ULP: the list of available ULPs when it says
    ``tls``, else a real ``setsockopt`` on a connected loopback socket (the module may load
    on demand)."""
    try:
        if "tls" in AVAILABLE_ULP.read_text().split():
            return True
    except OSError:
        pass
    try:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            with socket.create_connection(listener.getsockname(), timeout=2) as client:
                conn, _ = listener.accept()
                with conn:
                    client.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"tls")
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EPERM):
            return False
        raise
    return True


def detect_data_path() -> DataPath:
    """What this host allows (I/O: the ssl module, /proc, one loopback socket pair)."""
    return choose_data_path(ssl_ktls=ssl_has_ktls(), kernel_tls=kernel_has_tls_ulp(),
                            kernel_path_built=False)
