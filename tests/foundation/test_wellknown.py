"""Each shared fact is defined once in isthmus.wellknown; the YAML that must repeat it
(manifests, CRDs) agrees, and the trust-domain rule means the same everywhere."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from isthmus.api.crds import load_crds
from isthmus.cli.install import component_manifests
from isthmus.clusterinfo import ClusterInfo
from isthmus.trust.errors import SpiffeIdError
from isthmus.trust.spiffe import validate_trust_domain
from isthmus.wellknown import (
    API_GROUP,
    API_VERSION,
    API_VERSION_NAME,
    CATALOG_PORT,
    GATEWAY_PORT,
)


def _docs(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in component_manifests("img") if d["kind"] == kind
              and d["metadata"]["name"] == name]
    return doc


def _walk(node: Any, key: str) -> list[Any]:
    found: list[Any] = []
    if isinstance(node, dict):
        for k, v in node.items():
            found += [v] if k == key else []
            found += _walk(v, key)
    elif isinstance(node, list):
        for item in node:
            found += _walk(item, key)
    return found


def test_api_version_is_group_and_version() -> None:
    assert f"{API_GROUP}/{API_VERSION_NAME}" == API_VERSION
    for crd in load_crds():
        assert crd["spec"]["group"] == API_GROUP
        assert [v["name"] for v in crd["spec"]["versions"]] == [API_VERSION_NAME]


def test_manifests_use_the_gateway_and_catalog_ports() -> None:
    service = _docs("Service", "isthmus-gateway")
    assert {(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        (GATEWAY_PORT, GATEWAY_PORT)}
    gateway = _docs("Deployment", "isthmus-gateway")
    assert GATEWAY_PORT in _walk(gateway, "containerPort")
    mirror = _docs("Deployment", "isthmus-mirror")
    assert CATALOG_PORT in _walk(mirror, "containerPort")
    catalog = _docs("Service", "isthmus-mirror")
    assert [p["port"] for p in catalog["spec"]["ports"]] == [CATALOG_PORT]
    # the default port of a gateway address, in each CRD that has one
    defaults = [p["default"] for crd in load_crds() for p in _walk(crd, "port")
                if isinstance(p, dict) and "default" in p]
    assert defaults and set(defaults) == {GATEWAY_PORT}, defaults


@pytest.mark.parametrize("name, ok", [
    pytest.param("example.org", True, id="plain"),
    pytest.param("a_b-c.d", True, id="all-allowed-chars"),
    pytest.param("x" * 255, True, id="255-bytes"),
    pytest.param("x" * 256, False, id="256-bytes"),
    pytest.param("", False, id="empty"),
    pytest.param("Example.org", False, id="upper-case"),
    pytest.param("exa mple.org", False, id="space"),
    pytest.param("example.org:443", False, id="port"),
    pytest.param("user@example.org", False, id="userinfo"),
    pytest.param("exämple.org", False, id="non-ascii"),
    pytest.param("ex%41mple.org", False, id="percent"),
])
def test_trust_domain_rule_is_one_rule(name: str, ok: bool) -> None:
    """The SPIFFE validator and the pydantic models (CRD, cluster identity) agree."""
    try:
        validate_trust_domain(name)
        spiffe_ok = True
    except SpiffeIdError:
        spiffe_ok = False
    try:
        ClusterInfo(cluster="west", trust_domain=name,
                    gateway_addresses=({"host": "gw.example", "port": GATEWAY_PORT},))
        model_ok = True
    except pydantic.ValidationError:
        model_ok = False
    assert (spiffe_ok, model_ok) == (ok, ok)
