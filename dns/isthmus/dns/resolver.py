"""``resolve(query, snapshot) -> reply``: the pure decision of what to answer.

No sockets, no clock, no cache: the same query and snapshot always give the same reply.
EDNS and truncation are transport framing (hop by hop), added by ``responder.respond``.

Behaviour (the RFCs this follows):
- outside every served zone, or a class other than IN/ANY, or a zone transfer: REFUSED;
- apex: SOA and NS (RFC 1035); ANY at the apex gives the SOA;
- a name with records of the asked type: those records, AA=1;
- a name that exists without that type, or an empty non-terminal: NODATA (NOERROR, empty
  answer) with the zone's SOA in the authority section;
- no such name: NXDOMAIN with the SOA (RFC 2308 §2.1);
- the SOA of a negative answer has TTL min(SOA TTL, SOA MINIMUM) (RFC 2308 §3);
- ANY gets one RRset, the first of A, AAAA, SRV, TXT the name has (RFC 8482 §4.2);
- SRV answers carry the target's A/AAAA in the additional section.
"""

from __future__ import annotations

from dnslib import (
    AAAA,
    NS,
    RCODE,
    RR,
    SOA,
    SRV,
    TXT,
    A,
    DNSHeader,
    DNSLabel,
    DNSQuestion,
    DNSRecord,
)

from isthmus.dns.snapshot import Labels, NameData, Snapshot, Zone
from isthmus.dns.wire import Query

# RFC 1035 numbers (dnslib's tables name CLASS ANY "*", so plain integers are clearer).
CLASS_IN = 1
CLASS_ANY = 255
T_A = 1
T_NS = 2
T_SOA = 6
T_TXT = 16
T_AAAA = 28
T_SRV = 33
T_ANY = 255
ZONE_TRANSFERS = frozenset({251, 252})  # IXFR, AXFR: not offered


def _soa(zone: Zone, ttl: int) -> RR:
    times = (zone.serial, zone.refresh, zone.retry, zone.expire, zone.negative_ttl)
    return RR(DNSLabel(zone.origin), T_SOA, CLASS_IN, ttl,
              SOA(DNSLabel(zone.ns), DNSLabel(zone.hostmaster), times))


def _records(owner: DNSLabel, data: NameData, qtype: int) -> list[RR]:
    if qtype == T_ANY:  # RFC 8482: one RRset is enough
        qtype = (T_A if data.a else T_AAAA if data.aaaa else T_SRV if data.srv
                 else T_TXT)
    if qtype == T_A:
        return [RR(owner, T_A, CLASS_IN, data.ttl, A(ip)) for ip in data.a]
    if qtype == T_AAAA:
        return [RR(owner, T_AAAA, CLASS_IN, data.ttl, AAAA(ip)) for ip in data.aaaa]
    if qtype == T_SRV:
        return [
            RR(owner, T_SRV, CLASS_IN, data.ttl,
               SRV(s.priority, s.weight, s.port, DNSLabel(s.target)))
            for s in data.srv
        ]
    if qtype == T_TXT:
        return [RR(owner, T_TXT, CLASS_IN, data.ttl, TXT(text)) for text in data.txt]
    return []


def _glue(snapshot: Snapshot, targets: set[Labels]) -> list[RR]:
    extra: list[RR] = []
    for target in sorted(targets):
        data = snapshot.names.get(target)
        if data is not None:
            label = DNSLabel(target)
            extra += _records(label, data, T_A) + _records(label, data, T_AAAA)
    return extra


def resolve(query: Query, snapshot: Snapshot) -> DNSRecord:
    """The reply to ``query`` from ``snapshot`` (without OPT; see the module docstring)."""
    reply = DNSRecord(
        DNSHeader(id=query.msg_id, qr=1, rd=int(query.rd), cd=int(query.cd)),
        q=DNSQuestion(DNSLabel(query.qname), query.qtype, query.qclass),
    )
    name = tuple(label.lower() for label in query.qname)
    zone = snapshot.zone_for(name)
    if (zone is None or query.qclass not in (CLASS_IN, CLASS_ANY)
            or query.qtype in ZONE_TRANSFERS):
        reply.header.rcode = RCODE.REFUSED
        return reply
    reply.header.aa = 1
    owner = DNSLabel(query.qname)  # owner names echo the question's case
    answers: list[RR] = []
    exists = True
    if name == zone.origin:
        if query.qtype in (T_SOA, T_ANY):
            answers = [_soa(zone, zone.ttl)]
            answers[0].rname = owner
        elif query.qtype == T_NS:
            answers = [RR(owner, T_NS, CLASS_IN, zone.ttl, NS(DNSLabel(zone.ns)))]
    else:
        data = snapshot.names.get(name)
        if data is not None:
            answers = _records(owner, data, query.qtype)
            if answers and data.srv and query.qtype in (T_SRV, T_ANY):
                for rr in _glue(snapshot, {s.target for s in data.srv}):
                    reply.add_ar(rr)
        else:
            exists = name in snapshot.nonterminals
    if answers:
        for rr in answers:
            reply.add_answer(rr)
        return reply
    if not exists:
        reply.header.rcode = RCODE.NXDOMAIN
    reply.add_auth(_soa(zone, min(zone.ttl, zone.negative_ttl)))
    return reply
