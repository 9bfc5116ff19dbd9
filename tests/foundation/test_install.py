"""isthmus install renders every component and applies to a real API server, CoreDNS included."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
import yaml
from click.testing import CliRunner

from isthmus.cli import cli
from isthmus.cli.install import gateway_addresses, lease_placeholder
from isthmus.devcluster import ControlPlane
from isthmus.dns.coredns import parse_server_blocks
from isthmus.kube.client import KubeApi
from isthmus.kube.errors import NotFoundError
from isthmus.kube.resources import (
    CONFIGMAPS,
    DEPLOYMENTS,
    LEASES,
    NAMESPACES,
    NODES,
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
        assert sum(1 for b in blocks if b.keys == ("clusterset.local:53",)) == 1, corefile
        assert dns_ip in corefile
        assert "kubernetes cluster.local" in corefile  # the rest is untouched
    finally:
        await api.close()


# --- where peers reach the gateway ------------------------------------------------------------

def _svc(kind: str, node_port: int | None = None, ingress: list[dict[str, str]] | None = None) -> dict:
    port: dict = {"name": "tls-inbound", "port": 15443}
    if node_port:
        port["nodePort"] = node_port
    svc: dict = {"spec": {"type": kind, "ports": [port]}}
    if ingress is not None:
        svc["status"] = {"loadBalancer": {"ingress": ingress}}
    return svc


def _node(ready: str, **addresses: str) -> dict:
    return {"status": {"conditions": [{"type": "Ready", "status": ready}],
                       "addresses": [{"type": t, "address": a} for t, a in addresses.items()]}}


@pytest.mark.parametrize(("service", "nodes", "expected"), [
    pytest.param(_svc("LoadBalancer", ingress=[]), [], [], id="lb-pending"),
    pytest.param(_svc("LoadBalancer"), [], [], id="lb-no-status"),
    pytest.param(_svc("LoadBalancer", ingress=[{"ip": "203.0.113.7"}, {"hostname": "gw.example.org"}]),
                 [], ["203.0.113.7:15443", "gw.example.org:15443"], id="lb-ip-and-hostname"),
    pytest.param(_svc("NodePort", 31443), [_node("True", InternalIP="172.18.0.2")],
                 ["172.18.0.2:31443"], id="nodeport-internal"),
    pytest.param(_svc("NodePort", 31443),
                 [_node("True", InternalIP="10.0.0.2", ExternalIP="198.51.100.2"),
                  _node("True", InternalIP="10.0.0.3")],
                 ["198.51.100.2:31443"], id="nodeport-external-preferred"),
    pytest.param(_svc("NodePort", 31443),
                 [_node("False", InternalIP="10.0.0.9"), _node("True", InternalIP="10.0.0.3"),
                  _node("True", InternalIP="10.0.0.1")],
                 ["10.0.0.1:31443", "10.0.0.3:31443"], id="nodeport-ready-only-sorted"),
    pytest.param(_svc("NodePort"), [_node("True", InternalIP="10.0.0.1")], [], id="nodeport-unallocated"),
    pytest.param(_svc("NodePort", 31443), [_node("False", InternalIP="10.0.0.1")], [], id="no-ready-node"),
    pytest.param(_svc("ClusterIP"), [_node("True", InternalIP="10.0.0.1")], [], id="clusterip"),
    pytest.param({"spec": {"type": "NodePort", "ports": [{"name": "other", "port": 1, "nodePort": 30001}]}},
                 [_node("True", InternalIP="10.0.0.1")], [], id="no-tls-port"),
])
def test_gateway_addresses(service: dict, nodes: list, expected: list[str]) -> None:
    assert [f"{a.host}:{a.port}" for a in gateway_addresses(service, nodes)] == expected


def test_render_sets_the_gateway_service_type() -> None:
    result = CliRunner().invoke(cli, [*ARGS, "--expose", "nodeport"])
    assert result.exit_code == 0, result.output
    svc = next(d for d in yaml.safe_load_all(result.output)
               if d and d["kind"] == "Service" and d["metadata"]["name"] == "isthmus-gateway")
    assert svc["spec"]["type"] == "NodePort"
    # the gateway reads its cluster name from the identity ConfigMap (no placeholder left)
    dep = next(d for d in yaml.safe_load_all(result.output)
               if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "isthmus-gateway")
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ISTHMUS_GATEWAY_CLUSTER"]["valueFrom"]["configMapKeyRef"] == {
        "name": "isthmus-cluster", "key": "cluster"}
    assert "CLUSTER_NAME" not in result.output


def test_read_only_root_has_a_writable_tmp() -> None:
    result = CliRunner().invoke(cli, ARGS)
    for dep in (d for d in yaml.safe_load_all(result.output) if d and d["kind"] == "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, dep["metadata"]["name"]
            vol = next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])
            assert "emptyDir" in vol


def test_render_without_an_address_is_a_clear_error() -> None:
    args = [a for a in ARGS if a not in ("--gateway-address", "192.0.2.10:15443")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert "--gateway-address" in str(result.exception)


async def test_install_works_out_the_node_port_address(
    fresh_cluster: Callable[..., ControlPlane],
) -> None:
    cp = fresh_cluster()
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        await api.create(NODES, {"metadata": {"name": "node-a"}})
        status = {"status": {"conditions": [{"type": "Ready", "status": "True",
                                             "reason": "test", "message": "",
                                             "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                                             "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                             "addresses": [{"type": "InternalIP", "address": "172.18.0.5"}]}}
        await api.request("PATCH", NODES.path(None, "node-a") + "/status", body=status,
                          content_type="application/merge-patch+json")
        args = [a for a in ARGS if a not in ("--gateway-address", "192.0.2.10:15443")]
        args += ["--expose", "nodeport", "--context", cp.context, "--kubeconfig", str(cp.kubeconfig)]
        result = await asyncio.to_thread(CliRunner().invoke, cli, args)
        assert result.exit_code == 0, (result.output, result.exception)
        svc = await api.get(SERVICES, "isthmus-gateway", "isthmus-system")
        node_port = next(p["nodePort"] for p in svc["spec"]["ports"] if p["name"] == "tls-inbound")
        info = await api.get(CONFIGMAPS, "isthmus-cluster", "isthmus-system")
        assert info["data"]["gatewayAddresses"] == f"172.18.0.5:{node_port}"
        assert f"172.18.0.5:{node_port}" in result.output
    finally:
        await api.close()


async def test_install_without_a_load_balancer_says_what_to_do(
    fresh_cluster: Callable[..., ControlPlane],
) -> None:
    cp = fresh_cluster()
    args = [a for a in ARGS if a not in ("--gateway-address", "192.0.2.10:15443")]
    args += ["--address-timeout", "1", "--context", cp.context, "--kubeconfig", str(cp.kubeconfig)]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert result.exit_code != 0
    assert "--expose nodeport" in str(result.exception)
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:  # nothing half-done that would run: no identity ConfigMap, no Deployments
        with pytest.raises(NotFoundError):
            await api.get(CONFIGMAPS, "isthmus-cluster", "isthmus-system")
        deps = await api.list(DEPLOYMENTS, "isthmus-system")
        assert deps["items"] == []
    finally:
        await api.close()


async def test_install_creates_absent_mcs_crds_and_leaves_present_ones_alone(
    fresh_cluster: Callable[..., ControlPlane],
) -> None:
    """The MCS CRDs are shared with other implementations: a cluster's own copy (here a
    ServiceExport CRD with a schema of its own) is neither replaced nor merged into."""
    from isthmus.api.crds import MCS_CRD_NAMES, load_mcs_crds
    from isthmus.kube.resources import CRDS

    cp = fresh_cluster()
    api = await KubeApi.connect(cp.kubeconfig, cp.context)
    try:
        theirs = next(c for c in load_mcs_crds()
                      if c["metadata"]["name"] == "serviceexports.multicluster.x-k8s.io")
        theirs["metadata"]["labels"] = {"owner": "another-mcs-controller"}
        theirs["spec"]["versions"][0]["additionalPrinterColumns"] = [
            {"name": "Theirs", "type": "string", "jsonPath": ".metadata.name"}]
        created = await api.create(CRDS, theirs)
        args = [*ARGS, "--context", cp.context, "--kubeconfig", str(cp.kubeconfig)]
        for _ in range(2):  # idempotent
            result = await asyncio.to_thread(CliRunner().invoke, cli, args)
            assert result.exit_code == 0, (result.output, result.exception)
        kept = await api.get(CRDS, "serviceexports.multicluster.x-k8s.io")
        # (the resourceVersion moves when the API server writes the CRD's status)
        assert kept["metadata"]["uid"] == created["metadata"]["uid"]
        assert kept["metadata"]["generation"] == 1
        assert kept["metadata"]["labels"] == {"owner": "another-mcs-controller"}
        assert kept["spec"]["versions"][0]["additionalPrinterColumns"][0]["name"] == "Theirs"
        assert not any(m.get("manager", "").startswith("isthmus")
                       for m in kept["metadata"]["managedFields"])
        for name in MCS_CRD_NAMES:
            crd = await api.get(CRDS, name)
            conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
            assert conds["Established"] == "True", name
        imports = await api.get(CRDS, "serviceimports.multicluster.x-k8s.io")
        assert imports["metadata"]["labels"] == {"app.kubernetes.io/part-of": "isthmus"}
        assert imports["metadata"]["generation"] == 1  # the second install did not write it
    finally:
        await api.close()
