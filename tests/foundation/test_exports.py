"""build_exports: which Services are exported, to whom, with which ready backends."""

from __future__ import annotations

from typing import Any

import pytest

from isthmus.exports import build_exports, parse_allowed, parse_weight


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


@pytest.mark.parametrize(
    ("annotations", "weight", "problem"),
    [
        pytest.param({}, 100, None, id="absent-default"),
        pytest.param({"isthmus.io/weight": "250"}, 250, None, id="integer"),
        pytest.param({"isthmus.io/weight": " 7 "}, 7, None, id="spaces-trimmed"),
        pytest.param({"isthmus.io/weight": "0"}, 0, None, id="zero-drains"),
        pytest.param({"isthmus.io/weight": "10000"}, 10000, None, id="crd-maximum"),
        pytest.param({"isthmus.io/weight": "007"}, 7, None, id="leading-zeros"),
        pytest.param({"isthmus.io/weight": "10001"}, 100, "not an integer from 0 to 10000",
                     id="above-crd-maximum"),
        pytest.param({"isthmus.io/weight": "-1"}, 100, "not an integer", id="negative"),
        pytest.param({"isthmus.io/weight": "1.5"}, 100, "not an integer", id="fraction"),
        pytest.param({"isthmus.io/weight": "1e3"}, 100, "not an integer", id="exponent"),
        pytest.param({"isthmus.io/weight": ""}, 100, "not an integer", id="empty"),
        pytest.param({"isthmus.io/weight": "heavy"}, 100, "'heavy' is not an integer",
                     id="word"),
        pytest.param({"isthmus.io/weight": "٣"}, 100, "not an integer", id="non-ascii-digit"),
        pytest.param({"isthmus.io/weight": "9" * 400}, 100, "...' is not", id="long-cut-short"),
    ],
)
def test_parse_weight(annotations: dict[str, str], weight: int, problem: str | None) -> None:
    got, why = parse_weight(annotations)
    assert got == weight
    if problem is None:
        assert why is None
    else:
        assert why is not None and problem in why and "default weight 100" in why
        assert len(why) < 200


def test_invalid_weight_keeps_the_export() -> None:
    bad = svc("a", EXPORTED, {"isthmus.io/weight": "heavy"})
    good = svc("b", EXPORTED, {"isthmus.io/weight": "30"})
    exports = build_exports([bad, good], [])
    assert exports[("shop", "a")].weight == 100
    assert exports[("shop", "a")].weight_problem is not None
    assert (exports[("shop", "b")].weight, exports[("shop", "b")].weight_problem) == (30, None)
