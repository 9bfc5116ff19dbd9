"""Names of the Multi-Cluster Services DNS zone, ``clusterset.local`` (MCS DNS schema 1.0.0).

One pure mapping between an owner name (relative to the zone) and what it names, both ways:
``owner(McsName)`` and ``parse(labels)``. The snapshot builds the zone's names with
``owner``; ``parse`` is its inverse (tests hold the two together).

What is served (a ClusterSetIP import; every GlobalService is one):

- ``<svc>.<ns>.svc``                   A/AAAA: the import's VIP (the merged mirror Service's)
- ``_<port>._tcp.<svc>.<ns>.svc``      SRV ``0 100 <port> <svc>.<ns>.svc.<zone>.`` per named
                                       port (unnamed ports have none; isthmus carries TCP)
- ``dns-version``                      TXT ``"1.0.0"``, the schema version

What must not exist does not: ``<cluster>.<svc>.<ns>.svc`` (a ClusterSetIP service has no
per-cluster name) is NXDOMAIN; ``svc``, ``<ns>.svc`` and ``_tcp.<svc>.<ns>.svc`` are empty
non-terminals (NODATA). ``kind="pod"`` (``<pod>.<cluster>.<svc>.<ns>.svc``) is the form a
headless import's per-pod names take. PTR records are not served: each VIP is a mirror
Service's ClusterIP, which already has the cluster DNS's PTR record (the spec's stated
limitation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Labels = tuple[bytes, ...]

ZONE = "clusterset.local."
SCHEMA_VERSION = "1.0.0"
VERSION_LABEL = b"dns-version"
_SVC = b"svc"

Kind = Literal["service", "srv", "pod", "version"]


@dataclass(frozen=True, slots=True)
class McsName:
    kind: Kind
    service: str = ""
    namespace: str = ""
    cluster: str | None = None  # only in a per-pod name
    pod: str | None = None  # only in a per-pod name
    port: str | None = None  # only in an SRV name
    proto: str = "tcp"


def owner(name: McsName) -> Labels:
    """The owner name of ``name``, relative to the zone (lower case)."""
    if name.kind == "version":
        return (VERSION_LABEL,)
    base = (name.service.lower().encode(), name.namespace.lower().encode(), _SVC)
    if name.kind == "service":
        return base
    if name.kind == "srv":
        if not name.port:
            raise ValueError("an SRV name needs a port name")
        return (b"_" + name.port.lower().encode(), b"_" + name.proto.lower().encode(), *base)
    if not name.pod or not name.cluster:
        raise ValueError("a per-pod name needs a pod and a cluster")
    return (name.pod.lower().encode(), name.cluster.lower().encode(), *base)


def parse(labels: Labels) -> McsName | None:
    """What a relative owner name names, or None when it names nothing by the schema."""
    text = tuple(label.decode("ascii", "replace").lower() for label in labels)
    if text == ("dns-version",):
        return McsName("version")
    if len(text) < 3 or text[-1] != "svc":
        return None
    svc, ns = text[-3], text[-2]
    rest = text[:-3]
    if not rest:
        return McsName("service", svc, ns)
    if len(rest) == 2 and rest[0].startswith("_") and rest[1].startswith("_"):
        return McsName("srv", svc, ns, port=rest[0][1:], proto=rest[1][1:])
    if len(rest) == 2 and not rest[0].startswith("_") and not rest[1].startswith("_"):
        return McsName("pod", svc, ns, cluster=rest[1], pod=rest[0])
    return None
