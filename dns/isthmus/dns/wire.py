"""Strict parsing of a query message from its wire bytes (RFC 1035 §4, RFC 6891).

dnslib's parser is lenient (it skips a short trailing OPT option, for one) and raises a
mix of exception types; the responder needs exact verdicts instead, so queries are parsed
here, once, into a ``Query``. Replies are still built and packed with dnslib.

Verdicts: shorter than a header or QR=1 -> ``DroppedMessage`` (no reply); opcode other
than QUERY -> ``OpcodeNotImplemented``; QDCOUNT != 1, a bad name, a record running past the
end, trailing bytes, a second OPT, an OPT not owned by the root or with a broken option
list -> ``FormatError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from isthmus.dns.errors import (
    DroppedMessage,
    FormatError,
    OpcodeNotImplemented,
)

HEADER = struct.Struct("!HHHHHH")
QR = 0x8000
OPCODE_MASK = 0x7800
RD = 0x0100
CD = 0x0010
TYPE_OPT = 41
MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class Edns:
    udp_size: int
    version: int
    do: bool


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query; ``qname`` keeps the bytes exactly as asked (case included)."""

    msg_id: int
    flags: int
    qname: tuple[bytes, ...]
    qtype: int
    qclass: int
    edns: Edns | None = None

    @property
    def rd(self) -> bool:
        return bool(self.flags & RD)

    @property
    def cd(self) -> bool:
        return bool(self.flags & CD)


def _read_name(data: bytes, pos: int, *, allow_pointers: bool) -> tuple[tuple[bytes, ...], int]:
    """Labels of the name at ``pos`` and the offset just past it in the message."""
    labels: list[bytes] = []
    end = -1  # where the name ends in the message, once a pointer is followed
    total = 1
    limit = pos  # pointers must go strictly backwards: no loops
    while True:
        if pos >= len(data):
            raise FormatError("name runs past the end")
        length = data[pos]
        if length == 0:
            return tuple(labels), (pos + 1 if end < 0 else end)
        kind = length & 0xC0
        if kind == 0xC0:
            if not allow_pointers or pos + 1 >= len(data):
                raise FormatError("compression pointer where none is allowed")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if target >= limit or target < HEADER.size:
                raise FormatError("compression pointer not backwards")
            if end < 0:
                end = pos + 2
            pos = limit = target
            continue
        if kind:
            raise FormatError("extended label type")
        total += length + 1
        if total > MAX_NAME:
            raise FormatError("name longer than 255 octets")
        label = data[pos + 1 : pos + 1 + length]
        if len(label) != length:
            raise FormatError("label runs past the end")
        labels.append(label)
        pos += 1 + length


def parse_query(data: bytes) -> Query:
    """Parse one query message or raise the error that says how to answer it."""
    if len(data) < HEADER.size:
        raise DroppedMessage("short")
    msg_id, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if flags & QR:
        raise DroppedMessage("qr")
    if flags & OPCODE_MASK:
        raise OpcodeNotImplemented("opcode", msg_id=msg_id, flags=flags)
    try:
        if qdcount != 1:
            raise FormatError(f"qdcount {qdcount}")
        qname, pos = _read_name(data, HEADER.size, allow_pointers=False)
        if pos + 4 > len(data):
            raise FormatError("question runs past the end")
        qtype, qclass = struct.unpack_from("!HH", data, pos)
        pos += 4
        edns: Edns | None = None
        for index in range(ancount + nscount + arcount):
            _owner, pos_after_name = _read_name(data, pos, allow_pointers=True)
            owner_is_root = pos_after_name == pos + 1
            pos = pos_after_name
            if pos + 10 > len(data):
                raise FormatError("record header runs past the end")
            rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", data, pos)
            pos += 10
            if pos + rdlen > len(data):
                raise FormatError("rdata runs past the end")
            if rtype == TYPE_OPT:
                if index < ancount + nscount or edns is not None or not owner_is_root:
                    raise FormatError("misplaced, repeated or non-root OPT")
                _check_options(data[pos : pos + rdlen])
                edns = Edns(udp_size=rclass, version=(ttl >> 16) & 0xFF, do=bool(ttl & 0x8000))
            pos += rdlen
        if pos != len(data):
            raise FormatError("trailing bytes")
    except FormatError as exc:
        exc.msg_id, exc.flags = msg_id, flags
        raise
    # An EDNS version above 0 parses fine: BADVERS is the responder's answer, with the
    # question echoed, so it is decided there, not here.
    return Query(msg_id, flags, qname, qtype, qclass, edns)


def _check_options(rdata: bytes) -> None:
    """An OPT RDATA is a sequence of (code, length, value) that fills it exactly."""
    pos = 0
    while pos < len(rdata):
        if pos + 4 > len(rdata):
            raise FormatError("truncated EDNS option header")
        (length,) = struct.unpack_from("!H", rdata, pos + 2)
        pos += 4 + length
        if pos > len(rdata):
            raise FormatError("EDNS option runs past the OPT record")
