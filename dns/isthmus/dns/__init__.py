"""isthmus.dns: the authoritative responder for ``<svc>.<ns>.global`` names.

The public surface is re-exported here; docs/dns.md describes it.
"""

from isthmus.dns.coredns import with_global_forward
from isthmus.dns.errors import DnsError
from isthmus.dns.feed import Feed
from isthmus.dns.resolver import resolve
from isthmus.dns.responder import Responder, respond
from isthmus.dns.server import DnsServer
from isthmus.dns.snapshot import Snapshot, SnapshotConfig, SnapshotHolder, build_snapshot
from isthmus.dns.static_file import load_services
from isthmus.dns.wire import Query, parse_query

__all__ = [
    "DnsError",
    "DnsServer",
    "Feed",
    "Query",
    "Responder",
    "Snapshot",
    "SnapshotConfig",
    "SnapshotHolder",
    "build_snapshot",
    "load_services",
    "parse_query",
    "resolve",
    "respond",
    "with_global_forward",
]
