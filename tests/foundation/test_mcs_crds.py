"""The MCS CRDs (ServiceExport, ServiceImport) and ClusterProperty, dry-run against a real
API server: the CRDs themselves, good objects, and bad objects the schemas refuse."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from isthmus.api.crds import MCS_CRD_NAMES, install_crds, load_mcs_crds
from isthmus.kube import errors
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import (
    CLUSTERPROPERTIES,
    CRDS,
    NAMESPACES,
    SERVICEEXPORTS,
    SERVICEIMPORTS,
    Resource,
)

DRY_RUN = {"dryRun": "All"}

EXPORT: dict[str, Any] = {
    "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
    "metadata": {"name": "users"},
}
IMPORT: dict[str, Any] = {
    "apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
    "metadata": {"name": "users"},
    "spec": {"type": "ClusterSetIP", "ips": ["10.96.0.50"],
             "ports": [{"name": "http", "protocol": "TCP", "port": 80, "appProtocol": "http"}]},
}
PROPERTY: dict[str, Any] = {
    "apiVersion": "about.k8s.io/v1alpha1", "kind": "ClusterProperty",
    "metadata": {"name": "cluster.clusterset.k8s.io"}, "spec": {"value": "west"},
}


def _set(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = obj
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return obj


_DELETE = object()


async def _dry_create(api: KubeApi, res: Resource, obj: dict[str, Any], ns: str | None) -> Any:
    return await api.request("POST", res.path(ns), query=DRY_RUN, body=obj)


def test_the_shipped_crds_are_the_standard_kinds() -> None:
    crds = {c["metadata"]["name"]: c for c in load_mcs_crds()}
    assert tuple(crds) == MCS_CRD_NAMES
    for name, crd in crds.items():
        spec = crd["spec"]
        assert name == f"{spec['names']['plural']}.{spec['group']}"
        assert [v["name"] for v in spec["versions"]] == ["v1alpha1"]
    assert crds["clusterproperties.about.k8s.io"]["spec"]["scope"] == "Cluster"
    assert crds["serviceexports.multicluster.x-k8s.io"]["spec"]["scope"] == "Namespaced"


async def test_the_crds_pass_a_server_dry_run(api: KubeApi) -> None:
    await install_crds(api)
    for crd in load_mcs_crds():
        name = crd["metadata"]["name"]
        # Server-side apply, dry run: the API server validates the whole CRD, schema
        # included (structural, formats, list-map keys), and stores nothing.
        before = await api.get(CRDS, name)
        answer = await api.request(
            "PATCH", CRDS.path(None, name), query={**DRY_RUN, "fieldManager": "dry-run-test",
                                                 "force": "true"},
            body=crd, content_type="application/apply-patch+yaml")
        assert answer["spec"]["group"] == crd["spec"]["group"]
        after = await api.get(CRDS, name)
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


@pytest.mark.parametrize(("res", "obj"), [
    pytest.param(SERVICEEXPORTS, EXPORT, id="serviceexport"),
    pytest.param(SERVICEEXPORTS, _set(EXPORT, "spec", {"exportedLabels": {"tier": "db"}}),
                 id="serviceexport-with-labels"),
    pytest.param(SERVICEIMPORTS, IMPORT, id="serviceimport-clustersetip"),
    pytest.param(SERVICEIMPORTS, _set(IMPORT, "spec.ips", ["10.96.0.50", "fd00::50"]),
                 id="serviceimport-dual-stack"),
    pytest.param(SERVICEIMPORTS, _set(_set(IMPORT, "spec.type", "Headless"), "spec.ips", _DELETE),
                 id="serviceimport-headless"),
    pytest.param(CLUSTERPROPERTIES, PROPERTY, id="clusterproperty"),
])
async def test_good_objects_pass_a_dry_run(
    api: KubeApi, unique: str, res: Resource, obj: dict[str, Any]
) -> None:
    await install_crds(api)
    await api.create(NAMESPACES, {"metadata": {"name": unique}})
    ns = unique if res.namespaced else None
    if not res.namespaced:
        # cluster-wide and shared: the mirror tests' mirrors write the real one
        obj = _set(obj, "metadata.name", f"{unique}.test.isthmus.io")
    answer = await _dry_create(api, res, obj, ns)
    assert answer["kind"] == obj["kind"]
    with pytest.raises(errors.NotFoundError):  # a dry run stores nothing
        await api.get(res, obj["metadata"]["name"], ns)


@pytest.mark.parametrize(("res", "obj", "field"), [
    pytest.param(SERVICEIMPORTS, _set(IMPORT, "spec.type", "LoadBalancer"), "spec.type",
                 id="import-bad-type"),
    pytest.param(SERVICEIMPORTS, _set(IMPORT, "spec.type", _DELETE), "spec.type",
                 id="import-no-type"),
    pytest.param(SERVICEIMPORTS, _set(IMPORT, "spec.ports", _DELETE), "spec.ports",
                 id="import-no-ports"),
    pytest.param(SERVICEIMPORTS, _set(IMPORT, "spec.ips", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
                 "spec.ips", id="import-three-ips"),
    pytest.param(SERVICEIMPORTS, _set(IMPORT, "spec.ips", ["users.shop"]), "spec.ips[0]",
                 id="import-ip-not-an-address"),
    pytest.param(SERVICEIMPORTS, _set(IMPORT, "spec.ports.0.port", 0), "spec.ports[0].port",
                 id="import-port-zero"),
    pytest.param(SERVICEIMPORTS, _set(IMPORT, "spec.ports.0.protocol", "HTTP"),
                 "spec.ports[0].protocol", id="import-bad-protocol"),
    pytest.param(SERVICEIMPORTS, _set(IMPORT, "spec.ports.0.name", "Http_1"),
                 "spec.ports[0].name", id="import-bad-port-name"),
    pytest.param(SERVICEIMPORTS, _set(IMPORT, "spec.sessionAffinity", "Sticky"),
                 "spec.sessionAffinity", id="import-bad-affinity"),
    pytest.param(CLUSTERPROPERTIES, _set(PROPERTY, "spec.value", ""), "spec.value",
                 id="property-empty-value"),
    pytest.param(CLUSTERPROPERTIES, _set(PROPERTY, "spec", _DELETE), "spec",
                 id="property-no-spec"),
    pytest.param(SERVICEEXPORTS, _set(EXPORT, "spec", {"exportedLabels": {"a": 1}}),
                 "spec.exportedLabels.a", id="export-label-not-a-string"),
])
async def test_bad_objects_fail_a_dry_run(
    api: KubeApi, unique: str, res: Resource, obj: dict[str, Any], field: str
) -> None:
    await install_crds(api)
    await api.create(NAMESPACES, {"metadata": {"name": unique}})
    ns = unique if res.namespaced else None
    with pytest.raises(errors.InvalidError) as info:
        await _dry_create(api, res, obj, ns)
    assert field in str(info.value)


@pytest.mark.parametrize(("flags", "names"), [
    pytest.param([], ["links.isthmus.io", "globalservices.isthmus.io", *MCS_CRD_NAMES],
                 id="default-with-mcs"),
    pytest.param(["--no-mcs"], ["links.isthmus.io", "globalservices.isthmus.io"],
                 id="without-mcs"),
])
def test_the_crds_command(flags: list[str], names: list[str]) -> None:
    import yaml
    from click.testing import CliRunner

    from isthmus.cli import cli

    result = CliRunner().invoke(cli, ["crds", *flags])
    assert result.exit_code == 0, result.output
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(result.output)] == names
