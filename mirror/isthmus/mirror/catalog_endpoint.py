"""The catalog Service's one endpoint: the leader's own pod, written by the leader.

Every replica is Ready once it runs (so a rollout of two replicas finishes), but only the
leader serves the catalog. So the ``isthmus-mirror`` Service has no selector: the leader,
once its catalog server listens, writes this EndpointSlice with its pod IP. A new leader
overwrites it; the name is fixed, so there is only ever one.
"""

from __future__ import annotations

from typing import Any

from isthmus.kube.client import KubeApi
from isthmus.kube.resources import ENDPOINTSLICES
from isthmus.labels import MANAGED_BY, MANAGED_BY_LABEL

CATALOG_SERVICE = "isthmus-mirror"
CATALOG_PORT_NAME = "grpc-catalog"
SLICE_NAME = "isthmus-mirror-leader"
SLICE_FIELD_MANAGER = "isthmus-mirror-leader"


def catalog_slice(namespace: str, pod_ip: str, port: int, identity: str) -> dict[str, Any]:
    """Pure: the EndpointSlice naming the leader as the catalog Service's endpoint."""
    family = "IPv6" if ":" in pod_ip else "IPv4"
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": SLICE_NAME,
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": CATALOG_SERVICE,
                # not the EndpointSlice controller's: it must leave this slice alone
                "endpointslice.kubernetes.io/managed-by": "isthmus-mirror",
                MANAGED_BY_LABEL: MANAGED_BY,
            },
        },
        "addressType": family,
        "endpoints": [{
            "addresses": [pod_ip],
            "conditions": {"ready": True},
            "targetRef": {"kind": "Pod", "name": identity, "namespace": namespace},
        }],
        "ports": [{"name": CATALOG_PORT_NAME, "port": port, "protocol": "TCP",
                   "appProtocol": "grpc"}],
    }


async def publish(api: KubeApi, namespace: str, pod_ip: str, port: int, identity: str) -> None:
    """Point the catalog Service at this (leading) replica."""
    await api.apply(ENDPOINTSLICES, catalog_slice(namespace, pod_ip, port, identity),
                    field_manager=SLICE_FIELD_MANAGER, force=True)
