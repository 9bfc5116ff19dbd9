"""The ServiceExport conditions (Valid, Ready, Conflict) and the KEP's conflict rule."""

from __future__ import annotations

from typing import Any

import pytest

from isthmus.mirror.desired import import_type, merge_ports, service_import
from isthmus.mirror.model import CatalogEntry, PortSpec
from isthmus.mirror.service_export_status import export_verdict

SVC: dict[str, Any] = {"metadata": {"name": "users", "namespace": "shop"},
                       "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80}]}}
OLD, NEW = 1_700_000_000_000, 1_800_000_000_000


def entry(*ports: PortSpec, at: int = NEW, headless: bool = False) -> CatalogEntry:
    return CatalogEntry("shop", "users", tuple(ports), 1, exported_at_ms=at,
                        headless=headless)


HTTP = PortSpec(80, "http")
WEB = PortSpec(80, "web")
GRPC = PortSpec(80, "http", "grpc")
ADMIN = PortSpec(9090, "admin")


def _svc(**spec: Any) -> dict[str, Any]:
    return {**SVC, "spec": {**SVC["spec"], **spec}}


@pytest.mark.parametrize(("service", "exported", "peers", "want", "losing"), [
    pytest.param(None, None, {}, {"Valid": ("False", "NoService"), "Ready": ("False", "Pending"),
                                  "Conflict": ("False", "NoConflicts")}, False, id="no-service"),
    pytest.param(_svc(type="ExternalName"), None, {},
                 {"Valid": ("False", "InvalidServiceType"), "Ready": ("False", "Pending")},
                 False, id="externalname"),
    pytest.param(_svc(ports=[{"port": 53, "protocol": "UDP"}]), None, {},
                 {"Valid": ("False", "NoTCPPorts")}, False, id="udp-only"),
    pytest.param({**SVC, "metadata": {**SVC["metadata"], "labels": {"isthmus.io/mirror": "true"}}},
                 None, {}, {"Valid": ("False", "InvalidServiceType")}, False, id="a-mirror"),
    pytest.param(SVC, None, {}, {"Valid": ("True", "Valid"), "Ready": ("False", "Pending")},
                 False, id="valid-not-yet-in-the-catalog"),
    pytest.param(SVC, entry(HTTP), {}, {"Valid": ("True", "Valid"), "Ready": ("True", "Ready"),
                                        "Conflict": ("False", "NoConflicts")}, False, id="ready"),
    pytest.param(SVC, entry(HTTP), {"east": entry(HTTP, at=OLD)},
                 {"Conflict": ("False", "NoConflicts")}, False, id="same-ports-no-conflict"),
    pytest.param(SVC, entry(HTTP), {"east": entry(ADMIN, at=OLD)},
                 {"Conflict": ("False", "NoConflicts")}, False, id="other-ports-are-a-union"),
    pytest.param(SVC, entry(HTTP, at=NEW), {"east": entry(WEB, at=OLD)},
                 {"Conflict": ("True", "PortConflict")}, True, id="older-peer-wins-name"),
    pytest.param(SVC, entry(HTTP, at=OLD), {"east": entry(WEB, at=NEW)},
                 {"Conflict": ("True", "PortConflict")}, False, id="this-older-wins"),
    pytest.param(SVC, entry(HTTP, at=NEW), {"east": entry(GRPC, at=OLD)},
                 {"Conflict": ("True", "PortConflict")}, True, id="app-protocol-differs"),
    pytest.param(SVC, entry(HTTP, at=0), {"east": entry(WEB, at=NEW)},
                 {"Conflict": ("True", "PortConflict")}, True, id="unknown-age-is-youngest"),
    pytest.param(SVC, entry(HTTP, at=OLD), {"alpha": entry(WEB, at=OLD)},
                 {"Conflict": ("True", "PortConflict")}, True, id="same-age-name-decides"),
    pytest.param(SVC, entry(HTTP, at=NEW), {"east": entry(HTTP, at=OLD, headless=True)},
                 {"Conflict": ("True", "TypeConflict")}, True, id="older-headless-peer-wins-type"),
    pytest.param(SVC, entry(HTTP, at=OLD, headless=True), {"east": entry(HTTP, at=NEW)},
                 {"Conflict": ("True", "TypeConflict")}, False, id="this-older-headless-wins"),
    pytest.param(SVC, entry(HTTP, at=NEW), {"east": entry(WEB, at=OLD, headless=True)},
                 {"Conflict": ("True", "TypeConflict")}, True, id="type-and-port-conflict"),
    pytest.param(SVC, entry(HTTP, headless=True), {"east": entry(HTTP, at=OLD, headless=True)},
                 {"Conflict": ("False", "NoConflicts")}, False, id="both-headless"),
])
def test_conditions(service: dict[str, Any] | None, exported: CatalogEntry | None,
                    peers: dict[str, CatalogEntry], want: dict[str, tuple[str, str]],
                    losing: bool) -> None:
    verdict = export_verdict(cluster="west", service=service, exported=exported, peers=peers)
    got = {c["type"]: (c["status"], c["reason"]) for c in verdict.conditions}
    assert set(got) == {"Valid", "Ready", "Conflict"}
    for kind, expected in want.items():
        assert got[kind] == expected, (kind, verdict.conditions)
    assert verdict.losing is losing


def test_the_conflict_message_names_the_winner_and_why() -> None:
    verdict = export_verdict(cluster="west", service=SVC, exported=entry(HTTP, at=NEW),
                             peers={"east": entry(WEB, at=OLD)})
    assert "east's definition (name='web'" in verdict.conflict_message
    assert "oldest" in verdict.conflict_message
    assert "2023-11-14T22:13:20Z" in verdict.conflict_message
    assert "west" in verdict.conflict_message


@pytest.mark.parametrize(("exporters", "name"), [
    pytest.param([("west", entry(HTTP, at=OLD)), ("east", entry(WEB, at=NEW))], "http",
                 id="older-west-wins-though-east-sorts-first"),
    pytest.param([("west", entry(HTTP, at=NEW)), ("east", entry(WEB, at=OLD))], "web",
                 id="older-east-wins"),
    pytest.param([("west", entry(HTTP, at=OLD)), ("east", entry(WEB, at=OLD))], "web",
                 id="equal-age-name-sorts-first"),
    pytest.param([("west", entry(HTTP, at=OLD)), ("east", entry(WEB, at=0))], "http",
                 id="unknown-age-loses"),
])
def test_the_merged_import_takes_the_oldest_exports_port(
    exporters: list[tuple[str, CatalogEntry]], name: str
) -> None:
    ports, conflict = merge_ports(exporters)
    assert [p.name for p in ports] == [name]
    assert conflict is not None


@pytest.mark.parametrize(("exporters", "want"), [
    pytest.param([], "ClusterSetIP", id="none"),
    pytest.param([("west", entry(HTTP))], "ClusterSetIP", id="one-clusterset-ip"),
    pytest.param([("west", entry(HTTP, headless=True))], "Headless", id="one-headless"),
    pytest.param([("west", entry(HTTP, at=NEW)), ("east", entry(HTTP, at=OLD, headless=True))],
                 "Headless", id="older-headless-wins"),
    pytest.param([("west", entry(HTTP, at=OLD)), ("east", entry(HTTP, at=NEW, headless=True))],
                 "ClusterSetIP", id="older-clusterset-ip-wins"),
])
def test_the_service_import_takes_the_oldest_exports_type(
    exporters: list[tuple[str, CatalogEntry]], want: str
) -> None:
    assert import_type(exporters) == want
    si = service_import(("shop", "users"), [HTTP], "10.96.0.9", {}, want)
    assert si["spec"]["type"] == want
    # a Headless import has no cluster-set IP: its names answer the pods
    assert si["spec"].get("ips") == (None if want == "Headless" else ["10.96.0.9"])


def test_a_type_conflict_message_names_the_winner() -> None:
    verdict = export_verdict(cluster="west", service=SVC, exported=entry(HTTP, at=NEW),
                             peers={"east": entry(HTTP, at=OLD, headless=True)})
    assert verdict.losing
    assert "east's (headless) is used" in verdict.conflict_message
