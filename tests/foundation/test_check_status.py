"""isthmus check and status against a real cluster: certificates, links, exit codes."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from isthmus.cli import cli
from isthmus.cli.check import (
    Level,
    Observed,
    check_cluster_property,
    check_clusterset_stub,
    check_coredns,
    check_gateway,
    check_lease,
)
from isthmus.devcluster import ControlPlane
from isthmus.kube.apply import apply, with_retries
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import ENDPOINTSLICES, GLOBALSERVICES, LINKS, NAMESPACES
from isthmus.trust import (
    TrustBundle,
    bundle_configmap,
    cluster_ca_secret,
    create_cluster_ca,
    create_root,
)

INSTALL = ["install", "--cluster", "west", "--trust-domain", "example.org",
           "--gateway-address", "192.0.2.10"]


async def _cli(*args: str) -> tuple[int, str, str]:
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args))
    return result.exit_code, result.output, str(result.exception or "")


async def test_check_and_status_walk_through(fresh_cluster: Callable[..., ControlPlane]) -> None:
    cp = fresh_cluster()
    target = ["--context", cp.context, "--kubeconfig", str(cp.kubeconfig)]

    code, out, err = await _cli("check", *target)
    assert code == 1 and "not installed" in out

    code, out, err = await _cli(*INSTALL, *target)
    assert code == 0, err
    code, out, err = await _cli("check", *target)
    assert code == 1
    assert "ConfigMap isthmus-trust-bundle" in err  # missing bundle is an error that names it

    assert "Gateway isthmus-system/isthmus-gateway (down: no ready endpoint" in err

    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        # A running gateway pod: its ready endpoint, as the EndpointSlice controller writes it.
        await with_retries(lambda: api.create(ENDPOINTSLICES, {
            "metadata": {"name": "isthmus-gateway-abcde", "namespace": "isthmus-system",
                         "labels": {"kubernetes.io/service-name": "isthmus-gateway"}},
            "addressType": "IPv4", "ports": [{"name": "tls", "port": 15443}],
            "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": True}}]},
            namespace="isthmus-system"))
        root = create_root("example.org", now=dt.datetime.now(dt.UTC) - dt.timedelta(days=100))
        await apply(api, bundle_configmap(TrustBundle.of([root.cert])), force=True)
        # 5 of 60 days left: inside the warning window (30 days, or a third of the lifetime).
        days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=55)
        soon = create_cluster_ca(root, "west", lifetime=dt.timedelta(days=60), now=days_ago)
        await apply(api, cluster_ca_secret(soon, root.cert_pem()), force=True)
        code, out, err = await _cli("check", *target)
        assert code == 3, (out, err)  # warnings only: CA expires soon, leaves not issued, no links
        assert "WARNING" in out and "expires in" in out
        assert "Links: none" in out
        assert "Lease isthmus-system/isthmus-mirror: no mirror holds it" in out  # install made it

        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
        expired = create_cluster_ca(root, "west", lifetime=dt.timedelta(days=1), now=past)
        await apply(api, cluster_ca_secret(expired, root.cert_pem()), force=True)
        code, out, err = await _cli("check", *target)
        assert code == 1
        assert "Secret/isthmus-cluster-ca" in err and "expired" in out

        # A link whose peer is unreachable, and an imported service marked Stale.
        await with_retries(lambda: api.create(LINKS, {
            "apiVersion": "isthmus.io/v1alpha1", "kind": "Link", "metadata": {"name": "east"},
            "spec": {"cluster": "east", "trustDomain": "example.org",
                     "gatewayAddresses": [{"host": "192.0.2.11"}]}}))
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await api.apply(LINKS, {
            "apiVersion": "isthmus.io/v1alpha1", "kind": "Link", "metadata": {"name": "east"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "PeerUnreachable",
                                       "message": "connect timeout", "lastTransitionTime": now}],
                       "importedServices": 1}}, field_manager="test", subresource="status")
        await api.create(NAMESPACES, {"metadata": {"name": "shop"}})
        await with_retries(lambda: api.create(GLOBALSERVICES, {
            "apiVersion": "isthmus.io/v1alpha1", "kind": "GlobalService",
            "metadata": {"name": "users", "namespace": "shop"},
            "spec": {"hosts": ["users.shop.global"], "ports": [{"port": 80}],
                     "endpoints": [{"cluster": "east", "address": "192.0.2.11", "health": "Unhealthy"}]}},
            namespace="shop"))
        await api.apply(GLOBALSERVICES, {
            "apiVersion": "isthmus.io/v1alpha1", "kind": "GlobalService",
            "metadata": {"name": "users", "namespace": "shop"},
            "status": {"vips": ["10.96.0.77"], "conditions": [
                {"type": "Stale", "status": "True", "reason": "PeerUnreachable",
                 "message": "east unreachable", "lastTransitionTime": now}]}},
            field_manager="test", subresource="status")
        code, out, err = await _cli("check", *target)
        assert "Link east: not ready: PeerUnreachable" in out
        assert "GlobalService shop/users: stale" in out

        code, out, err = await _cli("status", *target)
        assert code == 0, err
        assert "east" in out and "no (PeerUnreachable)" in out
        assert "users.shop.global" in out and "10.96.0.77" in out and "stale" in out
        assert "east(unhealthy)" in out
    finally:
        await api.close()


NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("lease", "level", "text"),
    [
        pytest.param(None, Level.ERROR, "missing (run isthmus install)", id="missing"),
        pytest.param({"spec": {}}, Level.WARNING, "no mirror holds it", id="unheld"),
        pytest.param({"spec": {"holderIdentity": "m-1", "leaseDurationSeconds": 15,
                               "renewTime": "2026-11-22T11:59:50.000000Z"}},
                     Level.OK, "held by m-1", id="held"),
        pytest.param({"spec": {"holderIdentity": "m-1", "leaseDurationSeconds": 15,
                               "renewTime": "2026-11-22T11:50:00.000000Z"}},
                     Level.WARNING, "not renewed (600 s ago", id="expired"),
        pytest.param({"spec": {"holderIdentity": "m-1", "renewTime": "garbage"}},
                     Level.WARNING, "not renewed (never", id="unreadable-time"),
    ],
)
def test_check_lease(lease: dict[str, Any] | None, level: Level, text: str) -> None:
    obs = Observed(crds={}, cluster_info=None, bundle=None, secrets={}, links=[],
                   global_services=[], lease=lease)
    [finding] = check_lease(obs, NOW)
    assert finding.level == level and text in finding.message


def _observed(**kwargs: Any) -> Observed:
    return Observed(crds={}, cluster_info=None, bundle=None, secrets={}, links=[],
                    global_services=[], **kwargs)


def _slice(*ready: bool | None) -> dict[str, Any]:
    return {"endpoints": [{"addresses": [f"10.0.0.{i}"],
                           "conditions": {} if r is None else {"ready": r}}
                          for i, r in enumerate(ready)]}


@pytest.mark.parametrize(("slices", "level", "text"), [
    pytest.param([_slice(True)], Level.OK, "1 ready endpoint", id="ready"),
    pytest.param([_slice(None, False)], Level.OK, "1 ready endpoint", id="absent-means-ready"),
    pytest.param([_slice(False)], Level.ERROR, "down: no ready endpoint", id="not-ready"),
    pytest.param([], Level.ERROR, "down: no ready endpoint", id="no-slice"),
    pytest.param([{"endpoints": [{"addresses": ["10.0.0.1"],
                                  "conditions": {"ready": True, "terminating": True}}]}],
                 Level.ERROR, "down", id="terminating"),
])
def test_gateway_finding(slices: list[dict[str, Any]], level: Level, text: str) -> None:
    [finding] = check_gateway(_observed(gateway_slices=slices))
    assert finding.level == level and text in finding.message
    assert "isthmus-system/isthmus-gateway" in finding.what


STUB = "global:53 {\n    errors\n    forward . 10.96.0.53\n}\n"
PLAIN = ".:53 {\n    forward . /etc/resolv.conf\n}\n"


@pytest.mark.parametrize(("corefile", "level", "text"), [
    pytest.param(None, Level.OK, "no such ConfigMap", id="no-coredns"),
    pytest.param(PLAIN + STUB, Level.OK, "forwards global to 10.96.0.53", id="stub"),
    pytest.param(PLAIN, Level.ERROR, "stub zone is gone", id="stub-removed"),
    pytest.param(STUB.replace("10.96.0.53", "10.96.0.99"), Level.ERROR, "not isthmus-dns",
                 id="wrong-address"),
    pytest.param("global {", Level.ERROR, "unreadable", id="broken"),
])
def test_coredns_finding(corefile: str | None, level: Level, text: str) -> None:
    coredns = None if corefile is None else {"data": {"Corefile": corefile}}
    dns = {"spec": {"clusterIP": "10.96.0.53"}}
    [finding] = check_coredns(_observed(coredns=coredns, dns_service=dns))
    assert finding.level == level and text in finding.message


MCS_STUB = STUB.replace("global:53", "clusterset.local:53")


@pytest.mark.parametrize(("corefile", "level", "text"), [
    pytest.param(PLAIN + STUB + MCS_STUB, Level.OK, "forwards to 10.96.0.53", id="stub"),
    pytest.param(PLAIN + STUB, Level.WARNING, "missing", id="stub-missing"),
    pytest.param(PLAIN + MCS_STUB.replace("10.96.0.53", "10.96.0.99"), Level.ERROR,
                 "not isthmus-dns", id="wrong-address"),
])
def test_clusterset_stub_finding(corefile: str, level: Level, text: str) -> None:
    obs = _observed(coredns={"data": {"Corefile": corefile}},
                    dns_service={"spec": {"clusterIP": "10.96.0.53"}})
    [finding] = check_clusterset_stub(obs)
    assert finding.level == level and text in finding.message


def test_no_coredns_no_clusterset_finding() -> None:
    assert check_clusterset_stub(_observed()) == []


@pytest.mark.parametrize(("value", "level", "text"), [
    pytest.param(None, Level.OK, "absent", id="absent"),
    pytest.param("west", Level.OK, "west", id="this-cluster"),
    pytest.param("east", Level.ERROR, "does not overwrite", id="another-cluster"),
])
def test_cluster_property_finding(value: str | None, level: Level, text: str) -> None:
    from isthmus.clusterinfo import ClusterInfo, parse_address

    info = ClusterInfo(cluster="west", trust_domain="example.org",
                       gateway_addresses=(parse_address("192.0.2.1:15443"),))
    prop = None if value is None else {"spec": {"value": value}}
    obs = Observed(crds={}, cluster_info=info.to_configmap(), bundle=None, secrets={},
                   links=[], global_services=[], cluster_property=prop)
    [finding] = check_cluster_property(obs)
    assert finding.level == level and text in finding.message
