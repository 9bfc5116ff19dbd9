"""build_exports: which Services are exported, to whom, with which ready backends."""

from __future__ import annotations

from typing import Any

import pytest

from isthmus.exports import (
    build_exports,
    parse_allowed,
    parse_weight,
    service_exports_by_key,
    timestamp_ms,
)


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


def _created(obj: dict[str, Any], when: str) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "creationTimestamp": when}}


def sx(name: str, when: str = "2026-01-02T00:00:00Z", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "shop", "creationTimestamp": when}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-03T00:00:00Z"
    return {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
            "metadata": meta}


JAN1 = timestamp_ms("2026-01-01T00:00:00Z")
JAN2 = timestamp_ms("2026-01-02T00:00:00Z")


@pytest.mark.parametrize(
    ("service", "exports", "exported", "age"),
    [
        pytest.param(svc("a"), [sx("a")], True, JAN2, id="serviceexport-alone"),
        pytest.param(_created(svc("a", EXPORTED), "2026-01-01T00:00:00Z"), [], True, JAN1,
                     id="label-alone-age-of-the-service"),
        pytest.param(_created(svc("a", EXPORTED), "2026-01-01T00:00:00Z"), [sx("a")], True, JAN1,
                     id="both-one-export-the-older-age"),
        pytest.param(_created(svc("a"), "2026-01-01T00:00:00Z"), [sx("a")], True, JAN2,
                     id="serviceexport-age-not-the-service"),
        pytest.param(svc("a"), [sx("b")], False, 0, id="serviceexport-of-another-name"),
        pytest.param(svc("a"), [sx("a", deleting=True)], False, 0, id="serviceexport-being-deleted"),
        pytest.param({**svc("a"), "spec": {"type": "ExternalName", "externalName": "x.example",
                                           "ports": [{"port": 80}]}}, [sx("a")], False, 0,
                     id="externalname-never-exported"),
        pytest.param(svc("a", {"isthmus.io/mirror": "true"}), [sx("a")], False, 0,
                     id="mirror-never-exported-by-serviceexport"),
        pytest.param(svc("a", ports=[{"port": 53, "protocol": "UDP"}]), [sx("a")], False, 0,
                     id="serviceexport-udp-only"),
        pytest.param(svc("a"), [sx("a", when="yesterday")], True, 0, id="malformed-age-unknown"),
    ],
)
def test_service_exports(service: dict[str, Any], exports: list[dict[str, Any]],
                         exported: bool, age: int) -> None:
    found = build_exports([service], [], service_exports_by_key(exports))
    assert (("shop", "a") in found) is exported
    if exported:
        assert found[("shop", "a")].exported_at_ms == age


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
