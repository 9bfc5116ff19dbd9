"""The Link status as a pure function of the peer's state and the Link's problems."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from isthmus.mirror.import_policy import DENIED, Refusal
from isthmus.mirror.link_status import LinkProblems, link_status
from isthmus.mirror.model import ServiceKey

SEEN = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


def _status(**given: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "up": True, "synced": True, "reason": "connecting", "version": 7,
        "last_message": SEEN, "entries": [("shop", "users")], "refused": {},
        "problems": LinkProblems(), "namespaces": {"shop"},
    }
    args.update(given)
    return link_status(**args)


def _condition(status: dict[str, Any], type_: str) -> tuple[str, str, str]:
    [cond] = [c for c in status["conditions"] if c["type"] == type_]
    return cond["status"], cond["reason"], cond["message"]


@pytest.mark.parametrize(("given", "ready", "synced"), [
    pytest.param({"up": None, "synced": False},
                 ("Unknown", "Connecting", "connecting to the peer's catalog"),
                 ("False", "NotSynced", "waiting for the catalog snapshot"), id="connecting"),
    pytest.param({}, ("True", "Connected", "catalog stream open"),
                 ("True", "CatalogSynced", "catalog version 7"), id="synced"),
    pytest.param({"synced": False}, ("True", "Connected", "catalog stream open"),
                 ("False", "NotSynced", "waiting for the catalog snapshot"),
                 id="connected-before-snapshot"),
    pytest.param({"up": False, "synced": False, "reason": "refused"},
                 ("False", "PeerUnreachable", "refused"),
                 ("False", "PeerUnreachable", "refused (mirrors kept, marked Stale)"),
                 id="down-mirrors-kept"),
    pytest.param({"up": False, "synced": False, "reason": "refused", "entries": []},
                 ("False", "PeerUnreachable", "refused"),
                 ("False", "PeerUnreachable", "refused"), id="down-nothing-imported"),
    pytest.param({"up": False, "synced": False, "reason": "x" * 1500},
                 ("False", "PeerUnreachable", "x" * 1000),
                 ("False", "PeerUnreachable", "x" * 1500 + " (mirrors kept, marked Stale)"),
                 id="long-reason-cut-in-ready"),
])
def test_peer_conditions(given: dict[str, Any], ready: tuple[str, str, str],
                         synced: tuple[str, str, str]) -> None:
    status = _status(**given)
    assert _condition(status, "Ready") == ready
    assert _condition(status, "Synced") == synced


def _keys(n: int) -> dict[ServiceKey, str]:
    return {("shop", f"s{i}"): f"problem {i}" for i in range(n)}


@pytest.mark.parametrize(("problems", "conflict"), [
    pytest.param(LinkProblems(), ("False", "NoConflict", ""), id="none"),
    pytest.param(LinkProblems(conflicts={("shop", "users"): "taken"}),
                 ("True", "NameTaken", "shop/users: taken"), id="name-taken"),
    pytest.param(LinkProblems(conflicts={("shop", "a"): "taken"},
                              write_failures={("shop", "b"): "forbidden"}),
                 ("True", "WriteFailed", "shop/a: taken; shop/b: forbidden"),
                 id="write-failure-wins-the-reason"),
    pytest.param(LinkProblems(write_failures=_keys(7)),
                 ("True", "WriteFailed", "; ".join(f"shop/s{i}: problem {i}" for i in range(5))),
                 id="first-five-named"),
])
def test_conflict_condition(problems: LinkProblems, conflict: tuple[str, str, str]) -> None:
    assert _condition(_status(problems=problems), "Conflict") == conflict


@pytest.mark.parametrize(("missing", "expected"), [
    pytest.param({}, ("False", "AllPresent", ""), id="all-present"),
    pytest.param({("b", "x"): "b", ("a", "y"): "a", ("a", "z"): "a"},
                 ("True", "NamespaceNotFound", "not imported, namespace absent here: a, b"),
                 id="named-once-sorted"),
    pytest.param({(f"n{i:02d}", "s"): f"n{i:02d}" for i in range(25)},
                 ("True", "NamespaceNotFound", "not imported, namespace absent here: "
                  + ", ".join(f"n{i:02d}" for i in range(20))), id="first-twenty-named"),
])
def test_namespaces_missing(missing: dict[ServiceKey, str],
                            expected: tuple[str, str, str]) -> None:
    status = _status(problems=LinkProblems(missing_namespaces=missing))
    assert _condition(status, "NamespacesMissing") == expected


@pytest.mark.parametrize(("entries", "namespaces", "conflicts", "imported"), [
    pytest.param([], {"shop"}, {}, 0, id="nothing"),
    pytest.param([("shop", "a"), ("shop", "b")], {"shop"}, {}, 2, id="all"),
    pytest.param([("shop", "a"), ("gone", "b")], {"shop"}, {}, 1, id="namespace-absent"),
    pytest.param([("shop", "a"), ("shop", "b")], {"shop"}, {("shop", "b"): "taken"}, 1,
                 id="conflict-not-counted"),
])
def test_imported_services(entries: list[ServiceKey], namespaces: set[str],
                           conflicts: dict[ServiceKey, str], imported: int) -> None:
    status = _status(entries=entries, namespaces=namespaces,
                     problems=LinkProblems(conflicts=conflicts))
    assert status["importedServices"] == imported


def test_every_condition_always_present() -> None:
    for status in (_status(), _status(up=None, synced=False, last_message=None)):
        assert [c["type"] for c in status["conditions"]] == [
            "Ready", "Synced", "Conflict", "NamespacesRefused", "LimitExceeded",
            "InvalidEntries", "NamespacesMissing"]


def test_version_and_sync_time() -> None:
    status = _status(version=42)
    assert status["catalogVersion"] == 42
    assert status["lastSyncTime"] == "2026-03-04T05:06:07Z"
    assert "lastSyncTime" not in _status(last_message=None)


def test_refused_and_invalid_entries_reach_the_conditions() -> None:
    status = _status(refused={("kube-system", "dns"): Refusal(DENIED, "denied here")},
                     problems=LinkProblems(invalid={"shop/bad": "port 0"}))
    assert _condition(status, "NamespacesRefused") == ("True", DENIED, "denied here")
    assert _condition(status, "InvalidEntries") == (
        "True", "RejectedByValidation", "shop/bad: port 0")
