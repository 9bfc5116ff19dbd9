"""The KEP-2149 ClusterProperty cluster.clusterset.k8s.io: this cluster's name, written by
the mirror, never overwritten when it names another cluster."""

from __future__ import annotations

from typing import Any

import pytest
from mirror_helpers import Mesh, eventually

from isthmus.kube import errors as kube_errors
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import CLUSTERPROPERTIES, SERVICEEXPORTS
from isthmus.mirror.cluster_property import NAME, decide, publish
from isthmus.mirror.errors import ClusterPropertyConflict


@pytest.mark.parametrize(("existing", "decision"), [
    pytest.param(None, "create", id="absent"),
    pytest.param({"spec": {"value": "west"}}, "keep", id="ours"),
])
def test_decide(existing: dict[str, Any] | None, decision: str) -> None:
    assert decide(existing, "west") == decision


@pytest.mark.parametrize("existing", [
    pytest.param({"spec": {"value": "east"}}, id="another-cluster"),
    pytest.param({"spec": {}}, id="no-value"),
])
def test_another_value_is_refused(existing: dict[str, Any]) -> None:
    with pytest.raises(ClusterPropertyConflict, match="not overwritten"):
        decide(existing, "west")


async def test_each_mirror_publishes_its_cluster_name(mesh: Mesh) -> None:
    for name in ("west", "east", "central"):
        admin = mesh[name].admin

        async def published(admin: KubeApi = admin, name: str = name) -> bool:
            prop = await admin.get(CLUSTERPROPERTIES, NAME)
            assert prop["spec"]["value"] == name
            return True

        await eventually(published, what=f"the ClusterProperty in {name}")
    # as the mirror's ServiceAccount: a different name is refused and nothing is written
    west = mesh["west"]
    sa = await KubeApi.connect(west.sa_kubeconfig)
    try:
        before = await west.admin.get(CLUSTERPROPERTIES, NAME)
        with pytest.raises(ClusterPropertyConflict, match="'west'"):
            await publish(sa, "imposter")
        assert await publish(sa, "west") == "kept"
        after = await west.admin.get(CLUSTERPROPERTIES, NAME)
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        # least privilege: no other property, no ServiceExport of its own, no patching
        with pytest.raises(kube_errors.ForbiddenError):
            await sa.get(CLUSTERPROPERTIES, "id.k8s.io")
        with pytest.raises(kube_errors.ForbiddenError):
            await sa.merge_patch(CLUSTERPROPERTIES, NAME, {"spec": {"value": "x"}},
                                 field_manager="test")
        with pytest.raises(kube_errors.ForbiddenError):
            await sa.create(SERVICEEXPORTS, {
                "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
                "metadata": {"name": "x", "namespace": "default"}}, "default")
    finally:
        await sa.close()
