"""The tunnel protocol spoken inside the mTLS connection between two gateways.

After the TLS 1.3 handshake (client certificate required on both ends), a tunnel carries
*streams*, one at a time, each a TCP connection relayed end to end. A tunnel that finished
a stream cleanly carries the next one, so a warm pool of tunnels lets a new client
connection start without any TLS handshake. Frames (big-endian)::

    OPEN    0x01 u16 len, target bytes        client → server: start a stream to target
    STATUS  0x02 u8 status                    server → client: 0 = connected, else refused
    DATA    0x03 u32 len, payload             either way
    END     0x04                              either way: no more DATA (TCP half-close)
    RESET   0x05                              either way: abort; the tunnel is closed

Targets: ``<service>.<namespace>:<port>`` for an exported Service port,
``<pod>.<service>.<namespace>:<port>`` for one named pod of an exported headless Service
(its EndpointSlice hostname), or ``catalog`` for the local mirror's export catalog (mirror
identities only). A target is normalized once
(``normalize_target``): ASCII only, lower-cased, a trailing dot on the host dropped, at
most ``MAX_TARGET`` bytes; the same normalized ``Target`` is used for authorization and
routing. A stream ends when both sides have sent END (the tunnel is then reusable), or
when either sends RESET or the TLS connection closes. The client must not send DATA before
STATUS 0; the server reads nothing more from the tunnel until it has answered.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import IntEnum

OPEN = 0x01
STATUS = 0x02
DATA = 0x03
END = 0x04
RESET = 0x05

MAX_TARGET = 255
MAX_FRAME = 1 << 20  # DATA frames above this are a protocol error
CATALOG = "catalog"

_U16 = struct.Struct("!H")
_DATA_HEAD = struct.Struct("!BI")

END_FRAME = bytes([END])
RESET_FRAME = bytes([RESET])


class Status(IntEnum):
    """The one-byte answer to OPEN; everything but OK ends the stream (not the tunnel)."""

    OK = 0
    MALFORMED = 1  # not a target name, too long, non-ASCII
    UNLINKED = 2  # caller's cluster has no Link (or another trust domain)
    UNKNOWN_TARGET = 3  # not exported, unknown service or port (not told apart, on purpose)
    FORBIDDEN = 4  # export-to excludes the caller, or catalog asked by a non-mirror
    NO_BACKEND = 5  # exported, but no ready endpoint
    UPSTREAM_FAILED = 6  # every ready endpoint refused or timed out
    OVERLOADED = 7  # connection limit reached
    DRAINING = 8  # shutting down


#: statuses after which the caller should try another exporting cluster
RETRYABLE = frozenset({Status.NO_BACKEND, Status.UPSTREAM_FAILED, Status.OVERLOADED,
                       Status.DRAINING})


def open_frame(target: str) -> bytes:
    raw = target.encode("ascii")
    return bytes([OPEN]) + _U16.pack(len(raw)) + raw


def open_frame_raw(raw: bytes) -> bytes:
    """An OPEN frame with arbitrary bytes (tests send malformed targets with it)."""
    return bytes([OPEN]) + _U16.pack(len(raw)) + raw


def status_frame(status: Status) -> bytes:
    return bytes([STATUS, int(status)])


def data_head(length: int) -> bytes:
    return _DATA_HEAD.pack(DATA, length)


# --- target names ---------------------------------------------------------------------------

_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
# fullmatch, never ``$``: ``$`` also matches before one trailing newline.
_SERVICE_TARGET = re.compile(
    rf"((?P<pod>{_LABEL})\.)?(?P<svc>{_LABEL})\.(?P<ns>{_LABEL}):(?P<port>[0-9]{{1,5}})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Target:
    """A normalized target: a Service port, or the catalog (``service == "catalog"``)."""

    service: str
    namespace: str = ""
    port: int = 0
    pod: str = ""  # one named pod of a headless export, by hostname

    @property
    def is_catalog(self) -> bool:
        return self.service == CATALOG and not self.namespace

    def __str__(self) -> str:
        if self.is_catalog:
            return CATALOG
        pod = f"{self.pod}." if self.pod else ""
        return f"{pod}{self.service}.{self.namespace}:{self.port}"


@dataclass(frozen=True)
class BadTarget:
    """Why a raw target is not a target: ``too_long``, ``non_ascii`` or ``malformed``."""

    reason: str


def normalize_target(raw: bytes) -> Target | BadTarget:
    """Pure: the one normalization of a requested target (see the module docstring)."""
    if len(raw) > MAX_TARGET:
        return BadTarget("too_long")
    if not raw.isascii():
        return BadTarget("non_ascii")
    text = raw.decode("ascii").lower()
    if _CONTROL.search(text):
        return BadTarget("malformed")
    if text == CATALOG:
        return Target(CATALOG)
    host, sep, port = text.rpartition(":")
    if sep and host.endswith("."):
        text = f"{host[:-1]}:{port}"
    m = _SERVICE_TARGET.fullmatch(text)
    if m is None:
        return BadTarget("malformed")
    number = int(m["port"])
    if not 1 <= number <= 65535:
        return BadTarget("malformed")
    return Target(m["svc"], m["ns"], number, m["pod"] or "")
