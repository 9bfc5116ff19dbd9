"""The catalog boundary: each entry checked as the API server would check what is made of
it, rejected alone with a reason; fuzzed with hypothesis (random and mutated messages)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isthmus.mirror.catalog_validation import (
    MAX_PODS,
    MAX_PORTS,
    Rejected,
    entry_from_message,
    key_from_message,
)
from isthmus.mirror.model import CatalogEntry
from isthmus.mirror.names import mirror_service_name, pinned_service_name
from isthmus.mirror.wire import pb

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def message(**fields: Any) -> Any:
    ports = fields.pop("ports", [("http", 80, "")])
    msg = pb.Service(namespace=fields.pop("namespace", "shop"), name=fields.pop("name", "users"),
                     ready_endpoints=fields.pop("ready", 1), **fields)
    for name, port, app in ports:
        msg.ports.append(pb.Port(name=name, port=port, app_protocol=app))
    return msg


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        pytest.param({"namespace": "Shop"}, "namespace", id="namespace-uppercase"),
        pytest.param({"namespace": "a" * 64}, "namespace", id="namespace-too-long"),
        pytest.param({"namespace": "kube_system"}, "namespace", id="namespace-underscore"),
        pytest.param({"name": "1users"}, "name", id="name-not-dns-1035"),
        pytest.param({"name": "users-"}, "name", id="name-trailing-hyphen"),
        pytest.param({"name": "a.b"}, "name", id="name-dot"),
        pytest.param({"name": ""}, "name", id="name-empty"),
        pytest.param({"ports": []}, "ports", id="no-ports"),
        pytest.param({"ports": [("http", 0, "")]}, "ports", id="port-zero"),
        pytest.param({"ports": [("http", 65536, "")]}, "ports", id="port-too-big"),
        pytest.param({"ports": [("a", 80, ""), ("b", 80, "")]}, "repeat", id="port-repeated"),
        pytest.param({"ports": [("a", 80, ""), ("a", 81, "")]}, "repeat", id="name-repeated"),
        pytest.param({"ports": [("x" * 16, 80, "")]}, "ports", id="port-name-too-long"),
        pytest.param({"ports": [("HTTP", 80, "")]}, "ports", id="port-name-uppercase"),
        pytest.param({"ports": [("http", 80, "a b")]}, "qualified", id="app-protocol-space"),
        pytest.param({"ports": [("http", 80, "x" * 300)]}, "ports", id="app-protocol-long"),
        pytest.param({"ports": [("", p, "") for p in range(1, MAX_PORTS + 2)]},
                     "at most 64", id="too-many-ports"),
        pytest.param({"ports": [("", p, "") for p in range(1, 2001)]}, "2000 ports",
                     id="two-thousand-ports"),
        pytest.param({"weight": 10001}, "weight", id="weight-too-big"),
        pytest.param({"ready": 2_000_000}, "ready_endpoints", id="ready-too-many"),
        pytest.param({"changed_at_ms": -5}, "changed_at_ms", id="negative-time"),
    ],
)
def test_bad_entries_are_rejected_with_a_reason(fields: dict[str, Any], problem: str) -> None:
    got = entry_from_message(message(**fields))
    assert isinstance(got, Rejected), got
    assert problem in got.reason, got.reason


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="plain"),
        pytest.param({"ports": [("", 80, "")]}, id="single-unnamed-port"),
        pytest.param({"ports": [("", p, "") for p in range(1, MAX_PORTS + 1)]}, id="max-ports"),
        pytest.param({"ports": [("grpc", 9090, "kubernetes.io/h2c")]}, id="prefixed-app-protocol"),
        pytest.param({"namespace": "0ns", "name": "a" * 63}, id="longest-name"),
        pytest.param({"weight": 0}, id="weight-zero"),
    ],
)
def test_good_entries_are_kept(fields: dict[str, Any]) -> None:
    got = entry_from_message(message(**fields))
    assert isinstance(got, CatalogEntry), got


def test_rejected_text_is_shortened_and_printable() -> None:
    got = entry_from_message(message(name="\x1b[31m" + "x" * 500))
    assert isinstance(got, Rejected)
    assert "\x1b" not in got.name and len(got.name) < 300


def test_removed_keys_are_checked() -> None:
    assert key_from_message(pb.ServiceKey(namespace="shop", name="users")) == ("shop", "users")
    assert key_from_message(pb.ServiceKey(namespace="shop", name="../x")) is None


def _assert_safe(entry: CatalogEntry) -> None:
    """What every accepted entry guarantees to the code that writes objects from it."""
    assert DNS_1035.match(entry.name) and len(entry.namespace) <= 63
    assert 1 <= len(entry.ports) <= MAX_PORTS
    assert len({p.port for p in entry.ports}) == len(entry.ports)
    assert all(1 <= p.port <= 65535 and len(p.name) <= 15 for p in entry.ports)
    assert 0 <= entry.weight <= 10000 and entry.ready_endpoints >= 0
    assert len(mirror_service_name(entry.name)) <= 63
    assert len(pinned_service_name(entry.name, "c" * 63)) <= 63


_text = st.text(max_size=80) | st.from_regex(r"\A[a-z0-9-]{1,70}\Z", fullmatch=True)
_port = st.builds(pb.Port, name=_text, port=st.integers(0, 2**32 - 1), app_protocol=_text)
_service = st.builds(
    pb.Service, namespace=_text, name=_text, ports=st.lists(_port, max_size=70),
    ready_endpoints=st.integers(0, 2**32 - 1), version=st.integers(0, 2**64 - 1),
    changed_at_ms=st.integers(-(2**63), 2**63 - 1), weight=st.integers(0, 2**32 - 1))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_service)
def test_fuzzed_messages_are_accepted_safely_or_rejected(msg: Any) -> None:
    got = entry_from_message(msg)
    if isinstance(got, CatalogEntry):
        _assert_safe(got)
    else:
        assert got.reason


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_never_get_past_the_boundary_unchecked(data: bytes) -> None:
    try:
        event = pb.CatalogEvent.FromString(data)
    except Exception:
        return
    for s in event.services:
        got = entry_from_message(s)
        if isinstance(got, CatalogEntry):
            _assert_safe(got)
    for k in event.removed:
        key_from_message(k)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        pytest.param({"pods": ["db-0"]}, "not headless", id="pods-without-headless"),
        pytest.param({"headless": True, "pods": ["DB-0"]}, "pods", id="pod-uppercase"),
        pytest.param({"headless": True, "pods": ["db.0"]}, "pods", id="pod-dot"),
        pytest.param({"headless": True, "pods": [""]}, "pods", id="pod-empty"),
        pytest.param({"headless": True, "pods": ["a" * 64]}, "pods", id="pod-too-long"),
        pytest.param({"headless": True, "pods": ["db-0", "db-0"]}, "repeat", id="pod-repeated"),
        pytest.param({"headless": True, "pods": [f"p{i}" for i in range(MAX_PODS + 1)]},
                     "at most", id="too-many-pods"),
    ],
)
def test_bad_pods_are_rejected_with_a_reason(fields: dict[str, Any], problem: str) -> None:
    result = entry_from_message(message(**fields))
    assert isinstance(result, Rejected)
    assert problem in result.reason


def test_headless_pods_are_kept_sorted() -> None:
    result = entry_from_message(message(headless=True, pods=["db-2", "db-0", "db-1"]))
    assert isinstance(result, CatalogEntry)
    assert result.headless
    assert result.pods == ("db-0", "db-1", "db-2")
