"""Pure: the per-pod names of headless imports, independent of any zone's layout.

A headless export's named pods are listed in its GlobalService (``spec.endpoints[].pods``),
and each has a per-pod mirror Service whose ClusterIP the DNS feed reads
(``isthmus.dns.mirror_vips``, key ``(ns, svc, cluster, pod)``). ``pod_table`` joins the two:
only a pod the GlobalService names and whose Service has an address is in the table, so a
stray Service never adds a name and a pod that leaves the catalog leaves DNS with the next
snapshot.

Two layouts name the same pod:

- ``<pod>.<svc>.<ns>.<cluster>.global``   (``global_pod_key``);
- ``<pod>.<cluster>.<svc>.<ns>.svc.clusterset.local``, the MCS DNS specification's
  headless form (``clusterset_pod_key``);

both parse a name, relative to its zone, into the same ``PodKey``; ``lookup_pod`` answers it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from isthmus.api.models import GlobalService

Labels = tuple[bytes, ...]
# (namespace, service, cluster, pod hostname)
PodKey = tuple[str, str, str, str]
VipKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class PodAddresses:
    v4: tuple[str, ...]
    v6: tuple[str, ...]


PodTable = Mapping[PodKey, PodAddresses]


def _split(values: Iterable[str]) -> PodAddresses:
    v4: list[str] = []
    v6: list[str] = []
    for value in values:
        ip = ipaddress.ip_address(value)
        (v4 if ip.version == 4 else v6).append(str(ip))
    return PodAddresses(tuple(v4), tuple(v6))


def pod_table(services: Iterable[GlobalService],
              vips: Mapping[VipKey, tuple[str, ...]]) -> dict[PodKey, PodAddresses]:
    """Every named pod of every headless import that has an address."""
    table: dict[PodKey, PodAddresses] = {}
    for svc in services:
        ns, name = svc.metadata.namespace or "", svc.metadata.name
        for endpoint in svc.spec.endpoints:
            for pod in endpoint.pods:
                ips = vips.get((ns, name, endpoint.cluster, pod.hostname))
                if ips:
                    table[(ns, name, endpoint.cluster, pod.hostname)] = _split(ips)
    return table


def pods_of(table: PodTable, namespace: str, service: str,
            cluster: str | None = None) -> list[tuple[PodKey, PodAddresses]]:
    """The pods of one headless import (of one cluster when given), in (cluster, pod) order."""
    return sorted((key, addrs) for key, addrs in table.items()
                  if key[0] == namespace and key[1] == service
                  and (cluster is None or key[2] == cluster))


def _text(labels: Labels) -> tuple[str, ...] | None:
    try:
        return tuple(label.decode("ascii").lower() for label in labels)
    except UnicodeDecodeError:
        return None


def global_pod_key(relative: Labels) -> PodKey | None:
    """``(pod, svc, ns, cluster)`` below the ``global`` zone, as a key."""
    parts = _text(relative)
    if parts is None or len(parts) != 4:
        return None
    pod, svc, ns, cluster = parts
    return (ns, svc, cluster, pod)


def clusterset_pod_key(relative: Labels) -> PodKey | None:
    """``(pod, cluster, svc, ns, "svc")`` below ``clusterset.local``, as a key."""
    parts = _text(relative)
    if parts is None or len(parts) != 5 or parts[4] != "svc":
        return None
    pod, cluster, svc, ns, _ = parts
    return (ns, svc, cluster, pod)


def global_pod_name(key: PodKey) -> Labels:
    """The relative owner name of ``key`` under the ``global`` zone."""
    ns, svc, cluster, pod = key
    return (pod.encode(), svc.encode(), ns.encode(), cluster.encode())


def clusterset_pod_name(key: PodKey) -> Labels:
    """The relative owner name of ``key`` under ``clusterset.local`` (the MCS headless form)."""
    ns, svc, cluster, pod = key
    return (pod.encode(), cluster.encode(), svc.encode(), ns.encode(), b"svc")


def lookup_pod(table: PodTable, key: PodKey | None) -> PodAddresses | None:
    """The addresses a per-pod name answers with; None: no such name."""
    return None if key is None else table.get(key)
