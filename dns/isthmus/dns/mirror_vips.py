"""Pure: the VIPs of the mirror's Services, so DNS answers as soon as a mirror Service exists.

The mirror writes a GlobalService, then its mirror Services (each gets its ClusterIP on
create), and only later the GlobalService status that repeats those ClusterIPs. Reading the
Services directly means ``<svc>.<ns>.global`` answers once the Service exists, without
waiting for that status write (which, in a burst, queues behind every other service's
objects on the API server).

Only Services the mirror owns count: ``isthmus.io/mirror=true`` and managed by isthmus, with
the ``isthmus.io/global-service`` label naming their GlobalService (and
``isthmus.io/pinned-cluster`` for ``<svc>.<ns>.<cluster>.global``, and ``isthmus.io/pod``
as well for ``<pod>.<svc>.<ns>.<cluster>.global``). A Service without those
labels never lends its address to a name, whatever it is called.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from isthmus.labels import (
    GLOBAL_SERVICE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MIRROR_LABEL,
    PINNED_CLUSTER_LABEL,
    POD_LABEL,
)

# (namespace, GlobalService name, cluster, pod); cluster "" is the merged Service, pod "" a
# Service that is not a headless import's per-pod one
VipKey = tuple[str, str, str, str]

# The reflector's label selector: the API server sends only mirror Services.
SELECTOR = f"{MIRROR_LABEL}=true,{MANAGED_BY_LABEL}={MANAGED_BY}"


def mirror_vips(service: Mapping[str, Any]) -> tuple[VipKey, tuple[str, ...]] | None:
    """``(key, ClusterIPs)`` of a mirror Service, or None when it is not one of ours or has
    no usable address (headless, not yet allocated, or not an IP)."""
    meta = service.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(MIRROR_LABEL) != "true" or labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
        return None
    global_service = labels.get(GLOBAL_SERVICE_LABEL)
    if not global_service:
        return None
    spec = service.get("spec") or {}
    values = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ips: list[str] = []
    for value in values:
        try:
            ips.append(str(ipaddress.ip_address(value)))
        except ValueError:
            return None  # "None" (headless) or garbage: nothing to answer with
    if not ips:
        return None
    cluster = str(labels.get(PINNED_CLUSTER_LABEL) or "")
    pod = str(labels.get(POD_LABEL) or "")
    if pod and not cluster:
        return None  # a per-pod Service always names its cluster
    key = (str(meta.get("namespace") or ""), str(global_service), cluster, pod)
    return key, tuple(ips)


def slim(service: dict[str, Any]) -> dict[str, Any]:
    """What the DNS cache keeps of a Service (the reflector's transform)."""
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    return {
        "metadata": {k: meta[k] for k in ("name", "namespace", "resourceVersion", "labels")
                     if k in meta},
        "spec": {k: spec[k] for k in ("clusterIP", "clusterIPs") if k in spec},
    }
