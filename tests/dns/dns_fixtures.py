"""Helpers for the DNS tests: GlobalService builders, the sample services, query bytes.

(A plain module: the test folders are not packages, and a package named ``dns`` would
shadow dnspython.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dnslib import EDNS0, QTYPE, DNSQuestion, DNSRecord

from isthmus.api.models import GlobalService
from isthmus.dns.snapshot import SnapshotConfig


def global_service(
    name: str,
    namespace: str,
    vips: Sequence[str] = (),
    *,
    cluster_vips: dict[str, list[str]] | None = None,
    ports: Sequence[tuple[str, int]] = (("http", 8080),),
    endpoints: Sequence[str] = (),
    stale: bool = False,
    hosts: Sequence[str] | None = None,
) -> GlobalService:
    now = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    obj: dict[str, Any] = {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hosts": list(hosts) if hosts is not None else [f"{name}.{namespace}.global"],
            "ports": [{"name": n, "port": p} for n, p in ports],
            "endpoints": [{"cluster": c, "address": f"gw.{c}.example"} for c in endpoints],
        },
        "status": {
            "vips": list(vips),
            "clusterVips": [{"cluster": c, "vips": v} for c, v in (cluster_vips or {}).items()],
            "conditions": [
                {"type": "Stale", "status": "True" if stale else "False",
                 "reason": "PeerUnreachable" if stale else "Fresh", "lastTransitionTime": now}
            ],
        },
    }
    return GlobalService.model_validate(obj)


# 40 IPv4 + 10 IPv6 VIPs: an A+AAAA answer over 512 bytes, an A answer of ~680 bytes.
BIG_V4 = [f"10.97.0.{i}" for i in range(1, 41)]

SERVICES = [
    global_service(
        "users", "shop", ["10.96.0.10", "fd00::10"],
        cluster_vips={"east": ["10.96.1.10"], "west": ["10.96.2.10", "fd00::2:10"]},
        ports=[("http", 8080), ("grpc", 9090), ("", 7000)],
        endpoints=["east", "west", "central"],
    ),
    global_service("orders", "shop", ["10.96.0.20"], stale=True, endpoints=["east"]),
    global_service("pending", "shop", [], endpoints=["east"]),  # no VIP yet: NODATA
    global_service("v6only", "lab", ["fd00::30"]),
    global_service("big", "lab", BIG_V4),
]

CONFIG = SnapshotConfig(zones=("global.",), ttl=5, stale_ttl=1, negative_ttl=3)


def query(
    name: str, qtype: str | int = "A", *, edns: int | None = None, do: bool = False,
    version: int = 0, msg_id: int = 4242, rd: bool = True,
) -> bytes:
    """Wire bytes of a query (dnslib), optionally with an OPT record."""
    code = QTYPE.reverse[qtype] if isinstance(qtype, str) else qtype
    q = DNSRecord(q=DNSQuestion(name, code))
    q.header.id = msg_id
    q.header.rd = int(rd)
    if edns is not None:
        q.add_ar(EDNS0(udp_len=edns, version=version, flags="do" if do else ""))
    return bytes(q.pack())


def in_ns(ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside network namespace ``ns``."""
    return subprocess.run(["ip", "netns", "exec", ns, *argv], check=False,
                          capture_output=True, text=True, timeout=20)
