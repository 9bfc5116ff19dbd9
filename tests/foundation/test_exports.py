"""build_exports: which Services are exported, to whom, with which ready backends."""

from __future__ import annotations

from typing import Any

import pytest

from isthmus.exports import build_exports, parse_allowed


def svc(name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
        ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "labels": labels or {},
                     "annotations": annotations or {}},
        "spec": {"ports": ports if ports is not None else [{"name": "http", "port": 80}]},
    }


def eps(service: str, *endpoints: dict[str, Any], port: int = 8080) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{service}-x", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": service}},
        "ports": [{"name": "http", "port": port}],
        "endpoints": list(endpoints),
    }


EXPORTED = {"isthmus.io/export": "true"}


@pytest.mark.parametrize(
    ("service", "exported"),
    [
        pytest.param(svc("a", EXPORTED), True, id="label-true"),
        pytest.param(svc("a"), False, id="no-label"),
        pytest.param(svc("a", {"isthmus.io/export": ""}), False, id="empty-label"),
        pytest.param(svc("a", {"isthmus.io/export": "True"}), False, id="not-exactly-true"),
        pytest.param(svc("a", {**EXPORTED, "isthmus.io/mirror": "true"}), False, id="mirror-never-exported"),
        pytest.param(svc("a", EXPORTED, ports=[{"port": 53, "protocol": "UDP"}]), False, id="udp-only"),
    ],
)
def test_what_is_exported(service: dict[str, Any], exported: bool) -> None:
    assert (("shop", "a") in build_exports([service], [])) is exported


@pytest.mark.parametrize(
    ("annotations", "allowed"),
    [
        pytest.param({}, None, id="absent-means-everyone"),
        pytest.param({"isthmus.io/export-to": "east, Central"}, frozenset({"east", "central"}), id="list"),
        pytest.param({"isthmus.io/export-to": ""}, frozenset(), id="empty-means-nobody"),
    ],
)
def test_export_to(annotations: dict[str, str], allowed: frozenset[str] | None) -> None:
    assert parse_allowed(annotations) == allowed


def test_ready_backends_and_target_ports() -> None:
    exports = build_exports(
        [svc("users", EXPORTED)],
        [eps("users",
             {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
             {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
             {"addresses": ["10.0.0.3"], "conditions": {"ready": True, "terminating": True}},
             {"addresses": ["10.0.0.4"]}),
         eps("other", {"addresses": ["10.9.9.9"]})],
    )
    users = exports[("shop", "users")]
    assert [b.address for b in users.backends] == ["10.0.0.1", "10.0.0.4"]
    assert users.backends[0].ports == {80: 8080}
    assert users.ready_endpoints == 2
    assert users.allows("east")
