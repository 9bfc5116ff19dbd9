"""isthmus join / unjoin: link every pair, refuse without a shared root, write nothing then."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from isthmus.api.models import GatewayAddress
from isthmus.cli import cli
from isthmus.cli.join import JoinError, Member, check_members, desired_links
from isthmus.clusterinfo import ClusterInfo, parse_address
from isthmus.devcluster import ControlPlane
from isthmus.kube.apply import apply, with_retries
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import GLOBALSERVICES, LINKS, NAMESPACES
from isthmus.trust import TrustBundle, bundle_configmap, create_root


def member(name: str, roots: set[str], ctx: str | None = None) -> Member:
    info = ClusterInfo(cluster=name, trust_domain="example.org",
                       gateway_addresses=(GatewayAddress(host=f"{name}.gw", port=15443),))
    return Member(ctx or name, info, frozenset(roots))


@pytest.mark.parametrize(
    ("members", "message"),
    [
        pytest.param([member("a", {"r1"})], "at least two", id="one-cluster"),
        pytest.param([member("a", {"r1"}), member("a", {"r1"}, "other")], "unique", id="same-name"),
        pytest.param([member("a", {"r1"}), member("b", {"r2"})], "share no trust root", id="different-roots"),
        pytest.param([member("a", {"r1"}), member("b", {"r1"}), member("c", {"r9"})], "'a'", id="third-differs"),
    ],
)
def test_refusals(members: list[Member], message: str) -> None:
    with pytest.raises(JoinError) as info:
        check_members(members)
    assert message in str(info.value)


def test_overlapping_bundles_may_join() -> None:
    members = [member("a", {"old", "new"}), member("b", {"new"})]
    check_members(members)  # no refusal: one shared root is enough
    links = desired_links(members)
    assert [link["metadata"]["name"] for link in links["a"]] == ["b"]
    assert [link["metadata"]["name"] for link in links["b"]] == ["a"]


def test_desired_links_every_pair() -> None:
    links = desired_links([member("a", {"r"}), member("b", {"r"}), member("c", {"r"})])
    assert {ctx: sorted(link["metadata"]["name"] for link in ls) for ctx, ls in links.items()} == {
        "a": ["b", "c"], "b": ["a", "c"], "c": ["a", "b"],
    }
    assert links["a"][0]["spec"]["gatewayAddresses"] == [{"host": "b.gw", "port": 15443}]


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        pytest.param("10.0.0.1:15443", "10.0.0.1", 15443, id="ipv4"),
        pytest.param("gw.example.org", "gw.example.org", 15443, id="default-port"),
        pytest.param("[fd00::1]:9443", "fd00::1", 9443, id="ipv6"),
    ],
)
def test_parse_address(text: str, host: str, port: int) -> None:
    assert parse_address(text) == GatewayAddress(host=host, port=port)


async def _install(cp: ControlPlane, name: str, bundle: TrustBundle) -> None:
    from isthmus.api.crds import install_crds

    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        await install_crds(api)
        await api.create(NAMESPACES, {"metadata": {"name": "isthmus-system"}})
        info = ClusterInfo(cluster=name, trust_domain="example.org",
                           gateway_addresses=(GatewayAddress(host=f"{name}.gw.test"),))
        await apply(api, info.to_configmap(), force=True)
        await apply(api, bundle_configmap(bundle), force=True)
    finally:
        await api.close()


async def _links(cp: ControlPlane) -> list[str]:
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        # A new CRD's watch cache may still answer 429 "initializing": retry like a client.
        answer = await with_retries(lambda: api.list(LINKS))
        return sorted(i["metadata"]["name"] for i in answer["items"])
    finally:
        await api.close()


async def test_join_and_unjoin_real_clusters(
    fresh_cluster: Callable[..., ControlPlane], monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = create_root("example.org")
    stranger = create_root("example.org")
    cps = [fresh_cluster() for _ in range(3)]
    names = ["west", "east", "central"]
    for cp, name in zip(cps, names, strict=True):
        # "central" trusts only a different root: it cannot be joined with the others.
        root = stranger if name == "central" else shared
        await _install(cp, name, TrustBundle.of([root.cert]))
    kubeconfig = ":".join(str(cp.kubeconfig) for cp in cps)
    ctx = [cp.context for cp in cps]
    runner = CliRunner()

    # Different roots: a clear error, and nothing written anywhere.
    result = await asyncio.to_thread(runner.invoke, cli, ["join", "--kubeconfig", kubeconfig, "--context", ctx[0],
                                 "--context", ctx[1], "--context", ctx[2]])
    assert result.exit_code != 0
    assert "share no trust root" in str(result.exception)
    assert [await _links(cp) for cp in cps] == [[], [], []]

    # West and east share a root: linked both ways.
    result = await asyncio.to_thread(runner.invoke, cli, ["join", "--kubeconfig", kubeconfig,
                                 "--context", ctx[0], "--context", ctx[1]])
    assert result.exit_code == 0, result.output
    assert await _links(cps[0]) == ["east"]
    assert await _links(cps[1]) == ["west"]
    assert await _links(cps[2]) == []

    # Join is idempotent.
    result = await asyncio.to_thread(runner.invoke, cli, ["join", "--kubeconfig", kubeconfig,
                                 "--context", ctx[0], "--context", ctx[1]])
    assert result.exit_code == 0, result.output

    # Something the mirror imported from east into west, and an object that is not ours.
    api = await KubeApi.connect(cps[0].kubeconfig, cps[0].context)
    try:
        await api.create(NAMESPACES, {"metadata": {"name": "shop"}})
        for name, labels in (
            ("users", {"isthmus.io/mirror": "true", "app.kubernetes.io/managed-by": "isthmus",
                       "link.isthmus.io/east": "some-uid"}),
            ("mine", {}),
        ):
            await with_retries(lambda n=name, lab=labels: api.create(GLOBALSERVICES, {
                "apiVersion": "isthmus.io/v1alpha1", "kind": "GlobalService",
                "metadata": {"name": n, "namespace": "shop", "labels": lab},
                "spec": {"hosts": [f"{n}.shop.global"], "ports": [{"port": 80}]}},
                namespace="shop"))
    finally:
        await api.close()

    # Unjoin removes the Links and exactly the link's objects; twice is harmless.
    for _ in range(2):
        result = await asyncio.to_thread(runner.invoke, cli, ["unjoin", "--kubeconfig", kubeconfig,
                                     "--context", ctx[0], "--context", ctx[1]])
        assert result.exit_code == 0, result.output
    assert await _links(cps[0]) == []
    assert await _links(cps[1]) == []
    api = await KubeApi.connect(cps[0].kubeconfig, cps[0].context)
    try:
        left = (await api.list(GLOBALSERVICES, "shop"))["items"]
        assert [g["metadata"]["name"] for g in left] == ["mine"]
    finally:
        await api.close()


def test_join_needs_two_contexts() -> None:
    result = CliRunner().invoke(cli, ["join", "--context", "only"])
    assert result.exit_code == 2
    assert "at least two" in result.output


def test_join_refuses_an_uninstalled_cluster(fresh_cluster: Callable[..., ControlPlane],
                                             tmp_path: Path) -> None:
    a, b = fresh_cluster(), fresh_cluster()
    result = CliRunner().invoke(cli, ["join", "--kubeconfig", f"{a.kubeconfig}:{b.kubeconfig}",
                                      "--context", a.context, "--context", b.context])
    assert result.exit_code != 0
    assert "not set up for isthmus" in str(result.exception)
