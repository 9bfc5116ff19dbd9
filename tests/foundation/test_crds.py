"""The CRDs install into a real API server, which enforces their schemas."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from isthmus.api.crds import CRD_NAMES, install_crds, load_crds
from isthmus.api.models import GlobalService, Link
from isthmus.kube import errors
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import CRDS, GLOBALSERVICES, LINKS, NAMESPACES

GOOD_LINK: dict[str, Any] = {
    "apiVersion": "isthmus.io/v1alpha1",
    "kind": "Link",
    "metadata": {"name": "east"},
    "spec": {
        "cluster": "east",
        "trustDomain": "example.org",
        "gatewayAddresses": [{"host": "192.0.2.10", "port": 15443}],
    },
}
GOOD_GSVC: dict[str, Any] = {
    "apiVersion": "isthmus.io/v1alpha1",
    "kind": "GlobalService",
    "metadata": {"name": "users"},
    "spec": {
        "hosts": ["users.shop.global"],
        "ports": [{"name": "http", "port": 80, "outboundPort": 20080}],
        "endpoints": [{"cluster": "east", "address": "192.0.2.10", "weight": 50}],
    },
}


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = obj
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return obj


_DELETE = object()


def test_crds_are_well_formed() -> None:
    crds = load_crds()
    assert [c["metadata"]["name"] for c in crds] == ["links.isthmus.io", "globalservices.isthmus.io"]
    for crd in crds:
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert version["additionalPrinterColumns"]


async def test_install_is_idempotent(api: KubeApi) -> None:
    await install_crds(api)
    first = [await api.get(CRDS, name) for name in CRD_NAMES]
    await install_crds(api)  # again: no error, and no write
    again = [await api.get(CRDS, name) for name in CRD_NAMES]
    assert [c["metadata"]["resourceVersion"] for c in again] == [
        c["metadata"]["resourceVersion"] for c in first]
    for crd in again:
        established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert established["Established"] == "True"


async def test_good_objects_are_accepted_and_match_the_models(api: KubeApi, unique: str) -> None:
    await install_crds(api)
    await api.create(NAMESPACES, {"metadata": {"name": unique}})
    # A cluster name of its own: the shared clusters also run the mirror tests' mesh, where
    # a Link naming "east" would be a second Link to a real peer.
    link = _with(_with(GOOD_LINK, "metadata.name", unique), "spec.cluster", unique)
    created = await api.create(LINKS, link)
    model = Link.model_validate(created)
    assert model.spec.gateway_addresses[0].port == 15443
    gsvc = await api.create(GLOBALSERVICES, GOOD_GSVC, namespace=unique)
    parsed = GlobalService.model_validate(gsvc)
    # Server-side defaults are filled in from the schema.
    assert parsed.spec.endpoints[0].health == "Unknown"
    assert parsed.spec.endpoints[0].port == 15443
    assert parsed.spec.ports[0].protocol == "TCP"
    await api.delete(LINKS, unique)


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        pytest.param(_with(GOOD_LINK, "spec.cluster", "East_1"), "spec.cluster", id="link-bad-cluster-name"),
        pytest.param(_with(GOOD_LINK, "spec.gatewayAddresses", []), "spec.gatewayAddresses", id="link-no-gateways"),
        pytest.param(_with(GOOD_LINK, "spec.gatewayAddresses.0.port", 70000), "spec.gatewayAddresses[0].port", id="link-port-out-of-range"),
        pytest.param(_with(GOOD_LINK, "spec.trustDomain", "Example.ORG"), "spec.trustDomain", id="link-uppercase-trust-domain"),
        pytest.param(_with(GOOD_LINK, "spec", _DELETE), "spec", id="link-no-spec"),
    ],
)
async def test_bad_links_are_rejected_by_the_schema(
    api: KubeApi, unique: str, obj: dict[str, Any], field: str
) -> None:
    await install_crds(api)
    obj = _with(obj, "metadata.name", unique)
    with pytest.raises(errors.InvalidError) as info:
        await api.create(LINKS, obj)
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        pytest.param(_with(GOOD_GSVC, "spec.hosts", []), "spec.hosts", id="no-hosts"),
        pytest.param(_with(GOOD_GSVC, "spec.hosts", ["Users.Shop.Global"]), "spec.hosts[0]", id="uppercase-host"),
        pytest.param(_with(GOOD_GSVC, "spec.ports.0.port", 0), "spec.ports[0].port", id="port-zero"),
        pytest.param(_with(GOOD_GSVC, "spec.ports.0.protocol", "UDP"), "spec.ports[0].protocol", id="udp-port"),
        pytest.param(_with(GOOD_GSVC, "spec.endpoints.0.health", "Great"), "spec.endpoints[0].health", id="bad-health"),
        pytest.param(_with(GOOD_GSVC, "spec.endpoints.0.weight", -1), "spec.endpoints[0].weight", id="negative-weight"),
        pytest.param(_with(GOOD_GSVC, "spec.endpoints.0.address", _DELETE), "spec.endpoints[0].address", id="endpoint-no-address"),
    ],
)
async def test_bad_globalservices_are_rejected_by_the_schema(
    api: KubeApi, unique: str, obj: dict[str, Any], field: str
) -> None:
    await install_crds(api)
    await api.create(NAMESPACES, {"metadata": {"name": unique}})
    with pytest.raises(errors.InvalidError) as info:
        await api.create(GLOBALSERVICES, obj, namespace=unique)
    assert field in str(info.value)


async def test_status_is_a_subresource(api: KubeApi, unique: str) -> None:
    """A spec write cannot set status; only the status subresource can."""
    await install_crds(api)
    await api.create(NAMESPACES, {"metadata": {"name": unique}})
    obj = _with(GOOD_GSVC, "status", {"vips": ["10.96.0.50"]})
    created = await api.create(GLOBALSERVICES, obj, namespace=unique)
    assert "vips" not in created.get("status", {})
    patched = await api.apply(
        GLOBALSERVICES,
        {"apiVersion": "isthmus.io/v1alpha1", "kind": "GlobalService",
         "metadata": {"name": "users", "namespace": unique}, "status": {"vips": ["10.96.0.50"]}},
        field_manager="test", subresource="status",
    )
    assert patched["status"]["vips"] == ["10.96.0.50"]
