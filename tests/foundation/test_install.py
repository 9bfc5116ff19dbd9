"""isthmus install renders every component and applies to a real API server, CoreDNS included."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import yaml
from click.testing import CliRunner

from isthmus.cli import cli
from isthmus.cli.install import lease_placeholder
from isthmus.devcluster import ControlPlane
from isthmus.dns.coredns import parse_server_blocks
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import (
    CONFIGMAPS,
    LEASES,
    NAMESPACES,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
)

COREFILE = """.:53 {
    errors
    health
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
}
"""
ARGS = ["install", "--cluster", "west", "--trust-domain", "example.org",
        "--gateway-address", "192.0.2.10:15443", "--region", "eu", "--image", "reg.test/isthmus:1"]


def test_render_prints_every_component_with_the_image() -> None:
    result = CliRunner().invoke(cli, ARGS)
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "Namespace" and kinds[1] == "CustomResourceDefinition"
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"isthmus-mirror", "isthmus-gateway", "isthmus-dns"}
    for dep in deployments.values():
        assert {c["image"] for c in dep["spec"]["template"]["spec"]["containers"]} == {"reg.test/isthmus:1"}
    info = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "isthmus-cluster")
    assert info["data"]["gatewayAddresses"] == "192.0.2.10:15443"
    assert all(d["metadata"].get("namespace") != "kube-system" for d in docs)
    # the leaf Secrets are never in the applied stream (a re-apply would blank them): the
    # operator is told to create them once
    assert not any(d["kind"] in ("Secret", "Lease") for d in docs)
    for name in ("isthmus-gateway-tls", "isthmus-mirror-tls"):
        assert (f"kubectl -n isthmus-system create secret generic {name} "
                "--type=kubernetes.io/tls") in result.output
    # nor is the mirror's Lease (it has no `create` on Leases): one `kubectl create` of it
    line = next(ln for ln in result.output.splitlines() if "kind\":\"Lease" in ln)
    assert line.startswith("#   echo '") and line.endswith("' | kubectl create -f -")
    assert json.loads(line.split("'")[1]) == lease_placeholder()
    # the mirror's Role: get/update on its one Lease, no create on any
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "isthmus-mirror")
    lease_rules = [r for r in role["rules"] if "leases" in r["resources"]]
    assert lease_rules == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                            "resourceNames": ["isthmus-mirror"], "verbs": ["get", "update"]}]


def test_bad_input_is_a_clear_error() -> None:
    result = CliRunner().invoke(cli, [*ARGS[:2], "West_1", *ARGS[3:]])
    assert result.exit_code != 0
    assert "cluster" in str(result.exception)


async def test_apply_to_a_real_cluster_and_edit_coredns(
    fresh_cluster: Callable[..., ControlPlane],
) -> None:
    cp = fresh_cluster()
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        await api.create(CONFIGMAPS, {"metadata": {"name": "coredns", "namespace": "kube-system"},
                                      "data": {"Corefile": COREFILE}}, namespace="kube-system")
        args = [*ARGS, "--context", cp.context, "--kubeconfig", str(cp.kubeconfig)]
        for _ in range(2):  # idempotent
            result = await asyncio.to_thread(CliRunner().invoke, cli, args)
            assert result.exit_code == 0, (result.output, result.exception)
        await api.get(NAMESPACES, "isthmus-system")
        # the leaf Secrets exist, empty; a certificate written into one survives a re-install
        for name in ("isthmus-gateway-tls", "isthmus-mirror-tls"):
            secret = await api.get(SECRETS, name, "isthmus-system")
            assert secret["type"] == "kubernetes.io/tls"
            assert secret["data"] == {"tls.crt": "", "tls.key": ""}
        # and the mirror's Lease, holderless; a holder survives a re-install too
        lease = await api.get(LEASES, "isthmus-mirror", "isthmus-system")
        assert not (lease.get("spec") or {}).get("holderIdentity")
        assert lease["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "isthmus"
        lease["spec"] = {"holderIdentity": "replica-a", "leaseDurationSeconds": 15}
        await api.replace(LEASES, lease, "isthmus-system")
        live = {"data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}
        await api.merge_patch(SECRETS, "isthmus-mirror-tls", live, "isthmus-system",
                              field_manager="isthmus-mirror")
        result = await asyncio.to_thread(CliRunner().invoke, cli, args)
        assert result.exit_code == 0, (result.output, result.exception)
        secret = await api.get(SECRETS, "isthmus-mirror-tls", "isthmus-system")
        assert secret["data"] == live["data"]
        lease = await api.get(LEASES, "isthmus-mirror", "isthmus-system")
        assert lease["spec"]["holderIdentity"] == "replica-a"
        for sa in ("isthmus-mirror", "isthmus-gateway", "isthmus-dns"):
            await api.get(SERVICEACCOUNTS, sa, "isthmus-system")
        dns_ip = (await api.get(SERVICES, "isthmus-dns", "isthmus-system"))["spec"]["clusterIP"]
        corefile = (await api.get(CONFIGMAPS, "coredns", "kube-system"))["data"]["Corefile"]
        blocks = parse_server_blocks(corefile)
        assert sum(1 for b in blocks if "global" in " ".join(b.keys)) == 1, corefile
        assert dns_ip in corefile
        assert "kubernetes cluster.local" in corefile  # the rest is untouched
    finally:
        await api.close()
