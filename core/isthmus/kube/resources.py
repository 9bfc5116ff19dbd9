"""The resources isthmus reads and writes, and how their URLs are built."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from isthmus.wellknown import API_GROUP, API_VERSION_NAME


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        return base


NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
SERVICES = Resource("", "v1", "services", "Service", namespaced=True)
SECRETS = Resource("", "v1", "secrets", "Secret", namespaced=True)
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", namespaced=True)
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount", namespaced=True)
EVENTS = Resource("events.k8s.io", "v1", "events", "Event", namespaced=True)
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)
CRDS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
)
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment", namespaced=True)
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
_RBAC = "rbac.authorization.k8s.io"
CLUSTERROLES = Resource(_RBAC, "v1", "clusterroles", "ClusterRole", namespaced=False)
CLUSTERROLEBINDINGS = Resource(_RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", False)
ROLES = Resource(_RBAC, "v1", "roles", "Role", namespaced=True)
ROLEBINDINGS = Resource(_RBAC, "v1", "rolebindings", "RoleBinding", namespaced=True)
LINKS = Resource(API_GROUP, API_VERSION_NAME, "links", "Link", namespaced=False)
GLOBALSERVICES = Resource(API_GROUP, API_VERSION_NAME, "globalservices", "GlobalService", True)
# The Multi-Cluster Services API (KEP-1645) and the About API (KEP-2149).
_MCS = "multicluster.x-k8s.io"
SERVICEEXPORTS = Resource(_MCS, "v1alpha1", "serviceexports", "ServiceExport", namespaced=True)
SERVICEIMPORTS = Resource(_MCS, "v1alpha1", "serviceimports", "ServiceImport", namespaced=True)
CLUSTERPROPERTIES = Resource(
    "about.k8s.io", "v1alpha1", "clusterproperties", "ClusterProperty", namespaced=False
)

_ALL = (NAMESPACES, SERVICES, SECRETS, CONFIGMAPS, SERVICEACCOUNTS, EVENTS, ENDPOINTSLICES,
        LEASES, CRDS, LINKS, GLOBALSERVICES, DEPLOYMENTS, NODES, CLUSTERROLES,
        CLUSTERROLEBINDINGS, ROLES, ROLEBINDINGS, SERVICEEXPORTS, SERVICEIMPORTS,
        CLUSTERPROPERTIES)
_BY_KIND = {(r.api_version, r.kind): r for r in _ALL}


def for_object(obj: dict[str, object]) -> Resource:
    """The resource of a manifest, from its apiVersion and kind."""
    key = (str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    try:
        return _BY_KIND[key]
    except KeyError:
        from isthmus.kube.errors import KubeError

        raise KubeError(f"isthmus does not know how to write {key[1]} ({key[0]})") from None
