"""This cluster's name as the KEP-2149 ClusterProperty ``cluster.clusterset.k8s.io``.

Written by the mirror's leader when the ClusterProperty CRD is installed: created when
absent, left alone when it already says this cluster's name, and never overwritten when it
names another cluster (``ClusterPropertyConflict``, logged and reported as a Warning Event:
a cluster set that calls this cluster something else is the operator's decision to fix).
Without the CRD there is nothing to publish; the mirror tries again at each resync.
"""

from __future__ import annotations

from typing import Any, Literal

from isthmus.kube import errors as kube_errors
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import CLUSTERPROPERTIES
from isthmus.logging import get_logger
from isthmus.mirror.errors import ClusterPropertyConflict
from isthmus.mirror.names import FIELD_MANAGER

log = get_logger("isthmus.mirror.cluster_property")

NAME = "cluster.clusterset.k8s.io"

Decision = Literal["create", "keep"]


def decide(existing: dict[str, Any] | None, cluster: str) -> Decision:
    """Pure: create the property, keep it, or refuse (``ClusterPropertyConflict``)."""
    if existing is None:
        return "create"
    value = (existing.get("spec") or {}).get("value")
    if value == cluster:
        return "keep"
    raise ClusterPropertyConflict(
        f"ClusterProperty {NAME} says {value!r}, but this cluster is {cluster!r}: it is "
        f"not overwritten; correct it (or the cluster's name in isthmus-system/"
        f"isthmus-cluster) by hand")


def desired(cluster: str) -> dict[str, Any]:
    return {"apiVersion": CLUSTERPROPERTIES.api_version, "kind": "ClusterProperty",
            "metadata": {"name": NAME, "labels": {"app.kubernetes.io/managed-by": "isthmus"}},
            "spec": {"value": cluster}}


async def publish(api: KubeApi, cluster: str) -> Literal["created", "kept", "no-crd"]:
    """Make the property name ``cluster``; raises ``ClusterPropertyConflict``."""
    try:
        existing: dict[str, Any] | None = await api.get(CLUSTERPROPERTIES, NAME)
    except kube_errors.NotFoundError:
        existing = None
    if decide(existing, cluster) == "keep":
        return "kept"
    try:
        await api.create(CLUSTERPROPERTIES, desired(cluster))
    except kube_errors.NotFoundError:
        return "no-crd"  # the resource is not served
    except kube_errors.ConflictError:
        # created meanwhile (by another writer): check what it says
        return await publish(api, cluster)
    log.info("cluster property created", name=NAME, value=cluster, manager=FIELD_MANAGER)
    return "created"
