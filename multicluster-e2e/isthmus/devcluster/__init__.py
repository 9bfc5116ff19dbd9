"""isthmus.devcluster: real Kubernetes control planes for tests and the local rig.

Each "cluster" is a real etcd, kube-apiserver (RBAC on, service-account token signing) and
kube-controller-manager, built from the Go module proxy by
multicluster-e2e/build-control-plane.sh and started here on free loopback ports (or inside a
network namespace, for the rig). Nothing here is a fake: the point is to test against the
same API server a real cluster runs.
"""

from isthmus.devcluster.controlplane import ControlPlane, ControlPlaneError, find_binaries

__all__ = ["ControlPlane", "ControlPlaneError", "find_binaries"]
