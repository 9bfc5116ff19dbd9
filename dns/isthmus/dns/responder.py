"""From query bytes to reply bytes: the slow path (``respond``) and the fast path (``Responder``).

``respond`` parses with ``wire.parse_query``, decides with ``resolver.resolve``, then adds
the transport framing: the OPT record for an EDNS query (our buffer size, DO copied, RFC
3225) and TC=1 with an empty answer when the reply exceeds the limit: over UDP the
client's (512 without EDNS, else min(client buffer, ours), never below 512; RFC 6891
§6.2.5), over TCP the 65 535 bytes a length prefix can say.

``Responder`` puts a precomputed-answer cache in front of it, in two tiers:

1. by the exact query bytes after the ID (one slice, one dict lookup): a client asking the
   same thing again gets the stored reply with its ID put in front;
2. by a key built from the query: the header flags, the question with its name
   lower-cased, and the "EDNS shape" (absent, or the effective UDP limit and DO bit; TCP
   has no limit). A hit copies the query's ID and question (so its exact case) into the
   stored reply. A miss answers the lower-cased question on the slow path and stores it.

Only queries of the plain shape reach tier 2 (one question, no compression, no records but
one well-formed version-0 OPT, standard flags) and only those are stored in tier 1;
everything else goes the slow way, so every verdict (FORMERR, NOTIMP, BADVERS, no reply to
QR=1) comes from the same code with or without the cache.

Invalidation: a new snapshot comes with new, empty tables in one reference assignment, so
no reply from an older snapshot survives the swap. Bounds: tier-2 replies for names that
exist (NOERROR) live in the "known" table up to ``known_limit`` entries (sized from the
snapshot); other replies, and known ones past that limit, go to a FIFO of ``other_limit``;
each tier-1 table is emptied when it reaches ``raw_limit``. Random names, types, case or
EDNS sizes therefore cost at most known_limit + other_limit + 2 x raw_limit entries.
"""

from __future__ import annotations

import struct
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from dnslib import EDNS0, QTYPE, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from isthmus.dns.errors import DroppedMessage, MessageError
from isthmus.dns.resolver import resolve
from isthmus.dns.snapshot import Snapshot
from isthmus.dns.wire import HEADER, OPCODE_MASK, QR, RD, parse_query
from isthmus.logging import get_logger

log = get_logger("isthmus.dns.responder")

DEFAULT_EDNS_SIZE = 1232  # the DNS flag day 2020 value: no IP fragmentation
MIN_UDP = 512
MAX_TCP = 65535
RCODE_SERVFAIL = 2
TC = 0x0200
_OPT_PREFIX = b"\x00\x00\x29"  # root owner, type OPT


@dataclass
class Stats:
    """Counters a metrics endpoint or a log line can read; cheap enough for the hot path."""

    queries: int = 0  # answered on the slow path (cache misses and uncacheable queries)
    cache_hits: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # slow-path verdicts

    def snapshot(self) -> dict[str, Any]:
        return {"queries": self.queries + self.cache_hits, "cache_hits": self.cache_hits,
                **self.outcomes}


_RCODE_NAMES = {0: "noerror", 1: "formerr", 2: "servfail", 3: "nxdomain", 4: "notimp",
                5: "refused"}


def _error_reply(exc: MessageError) -> bytes:
    flags = QR | (exc.flags & (OPCODE_MASK | RD)) | exc.rcode
    return HEADER.pack(exc.msg_id, flags, 0, 0, 0, 0)


def _truncated(reply: DNSRecord) -> bytes:
    short = DNSRecord(reply.header, q=reply.q)
    short.header.tc = 1
    for rr in reply.ar:
        if rr.rtype == QTYPE.OPT:
            short.add_ar(rr)
    return bytes(short.pack())


def respond(
    data: bytes, snapshot: Snapshot, *, udp: bool, edns_size: int = DEFAULT_EDNS_SIZE,
    stats: Stats | None = None,
) -> bytes | None:
    """The reply to one query message, or None for no reply. Never raises on bad input."""
    try:
        query = parse_query(data)
    except DroppedMessage as exc:
        if stats is not None:
            stats.outcomes["dropped_" + exc.reason] += 1
        return None
    except MessageError as exc:
        if stats is not None:
            stats.outcomes[exc.reason] += 1
        return _error_reply(exc)
    if query.edns is not None and query.edns.version > 0:
        # RFC 6891 §6.1.3: BADVERS (16) = extended rcode 1 in the OPT, low bits 0.
        reply = DNSRecord(DNSHeader(id=query.msg_id, qr=1, rd=int(query.rd)),
                          q=DNSQuestion(DNSLabel(query.qname), query.qtype, query.qclass))
        reply.add_ar(EDNS0(ext_rcode=1, version=0, udp_len=edns_size))
        if stats is not None:
            stats.outcomes["badvers"] += 1
        return bytes(reply.pack())
    reply = resolve(query, snapshot)
    if query.edns is not None:
        reply.add_ar(EDNS0(udp_len=edns_size, flags="do" if query.edns.do else ""))
    wire = bytes(reply.pack())
    if stats is not None:
        stats.outcomes[_RCODE_NAMES.get(reply.header.rcode, "other")] += 1
    limit = MAX_TCP  # the two-byte TCP length prefix
    if udp:
        limit = MIN_UDP
        if query.edns is not None:
            limit = max(MIN_UDP, min(query.edns.udp_size, edns_size))
    if len(wire) > limit:
        if stats is not None:
            stats.outcomes["truncated"] += 1
        return _truncated(reply)
    return wire


def _servfail(data: bytes) -> bytes | None:
    if len(data) < HEADER.size:
        return None
    msg_id, flags = struct.unpack_from("!HH", data)
    return HEADER.pack(msg_id, QR | (flags & (OPCODE_MASK | RD)) | RCODE_SERVFAIL, 0, 0, 0, 0)


class _State:
    """One snapshot and the caches computed from it: swapped as a single reference."""

    __slots__ = ("known", "other", "raw_tcp", "raw_udp", "snapshot")

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.known: dict[bytes, bytes] = {}
        self.other: OrderedDict[bytes, bytes] = OrderedDict()
        self.raw_udp: dict[bytes, bytes] = {}
        self.raw_tcp: dict[bytes, bytes] = {}


class Responder:
    """The answering object the server calls; owns the snapshot and the answer caches."""

    def __init__(
        self, snapshot: Snapshot, *, edns_size: int = DEFAULT_EDNS_SIZE,
        other_limit: int = 10_000, raw_limit: int = 20_000, use_cache: bool = True,
    ) -> None:
        self.edns_size = edns_size
        self.other_limit = other_limit
        self.raw_limit = raw_limit
        self.use_cache = use_cache
        self.stats = Stats()
        self.set_snapshot(snapshot)

    @property
    def snapshot(self) -> Snapshot:
        return self._state.snapshot

    def set_snapshot(self, snapshot: Snapshot) -> None:
        """Swap snapshot and caches together: one assignment, so atomic for any reader."""
        # Names x a handful of types x a few flag/EDNS shapes; bounded by the snapshot.
        self.known_limit = 64 * (len(snapshot.names) + len(snapshot.zones)) + 1024
        self._state = _State(snapshot)

    def raw_udp_cache(self) -> dict[bytes, bytes]:
        """The current tier-1 UDP table, for a batched reader's inline lookups (read only):
        query bytes after the ID -> reply bytes after the ID. Replaced on every snapshot."""
        return self._state.raw_udp

    def cache_size(self) -> int:
        state = self._state
        return len(state.known) + len(state.other) + len(state.raw_udp) + len(state.raw_tcp)

    def _key(self, data: bytes, udp: bool) -> tuple[bytes, int] | None:
        """Cache key and the end of the question, or None when not of the plain shape."""
        n = len(data)
        # QDCOUNT=1, AN=NS=0; QR/opcode/AA/TC clear; RA, Z and rcode clear (RD, AD, CD ok).
        if n < 17 or data[4:10] != b"\x00\x01\x00\x00\x00\x00" or data[2] & 0xFE \
                or data[3] & 0xCF:
            return None
        i = 12
        while True:
            if i >= n:
                return None
            length = data[i]
            if length == 0:
                break
            if length > 63:
                return None
            i += length + 1
        end = i + 5
        if i - 11 > 255 or end > n:  # name (with its root byte) over 255 octets
            return None
        arcount = data[10:12]
        if arcount == b"\x00\x00":
            if end != n:
                return None
            shape = b"u" if udp else b"t"
        elif arcount == b"\x00\x01":
            # One OPT: root owner, version 0, no ext rcode, well-formed options. The reply
            # does not depend on the options (cookies, padding are ignored), so they are not
            # part of the key.
            if n < end + 11 or data[end : end + 3] != _OPT_PREFIX \
                    or data[end + 5 : end + 7] != b"\x00\x00" \
                    or (data[end + 9] << 8) | data[end + 10] != n - end - 11:
                return None
            pos = end + 11
            while pos < n:
                if pos + 4 > n:
                    return None
                pos += 4 + ((data[pos + 2] << 8) | data[pos + 3])
            if pos != n:
                return None
            do = data[end + 7] & 0x80
            if udp:
                size = (data[end + 3] << 8) | data[end + 4]
                size = min(max(size, MIN_UDP), self.edns_size)
                shape = bytes((0x45, size >> 8, size & 0xFF, do))
            else:
                shape = bytes((0x54, do))
        else:
            return None
        return data[2:4] + data[12:i].lower() + data[i:end] + shape, end

    def handle(self, data: bytes, *, udp: bool) -> bytes | None:
        """The reply to one datagram or TCP message; no exception escapes."""
        state = self._state
        # First tier: these exact bytes (all but the ID) were answered before. One slice,
        # one dict lookup, one concatenation: the common case of a client asking again.
        entry = (state.raw_udp if udp else state.raw_tcp).get(data[2:])
        if entry is not None:
            self.stats.cache_hits += 1
            return data[:2] + entry
        try:
            keyed = self._key(data, udp) if self.use_cache else None
            if keyed is None:
                self.stats.queries += 1
                return respond(data, state.snapshot, udp=udp, edns_size=self.edns_size,
                               stats=self.stats)
            key, end = keyed
            entry = state.known.get(key) or state.other.get(key)
            if entry is None:
                self.stats.queries += 1
                entry = self._fill(state, data, key, end, udp)
                if entry is None:
                    return respond(data, state.snapshot, udp=udp, edns_size=self.edns_size)
            else:
                self.stats.cache_hits += 1
            # Second tier: same question in another case or with another ID; patch both.
            reply = data[:2] + entry[:10] + data[12:end] + entry[end - 2 :]
            raw = state.raw_udp if udp else state.raw_tcp
            if len(raw) >= self.raw_limit:
                raw.clear()  # crude but O(1) amortized, and a hard bound
            raw[data[2:]] = reply[2:]
            return reply
        except Exception:
            self.stats.outcomes["internal_error"] += 1
            log.exception("dns_internal_error", size=len(data))
            return _servfail(data)

    def _fill(self, state: _State, data: bytes, key: bytes, end: int, udp: bool) -> bytes | None:
        """Answer the lower-cased question and store it without its ID; None if the reply
        does not carry the question (e.g. FORMERR for a name over 255 octets)."""
        qname_end = end - 4
        canonical = data[:12] + data[12:qname_end].lower() + data[qname_end:]
        reply = respond(canonical, state.snapshot, udp=udp, edns_size=self.edns_size,
                        stats=self.stats)
        if reply is None or reply[12:end] != canonical[12:end]:
            return None
        entry = reply[2:]
        if reply[3] & 0x0F == 0 and len(state.known) < self.known_limit:
            state.known[key] = entry
        else:
            state.other[key] = entry
            if len(state.other) > self.other_limit:
                state.other.popitem(last=False)
        return entry
