"""The local rig: several real clusters in network namespaces, linked by isthmus.

For each cluster the rig creates a network namespace on a shared "WAN" bridge, starts a real
control plane in it (etcd, kube-apiserver with RBAC, kube-controller-manager, kube-proxy),
and then does what an operator does, with the real CLI:

    isthmus trust init / cluster-ca / bundle     one root, an intermediate per cluster
    isthmus install --context <c>                 CRDs, RBAC, identity ConfigMap
    isthmus join --context west --context east    Links both ways

The components run as processes inside the cluster's namespace ("pods": each has its own
address on the namespace's loopback), each authenticated as its own ServiceAccount, so the
manifests' RBAC is what they get. The rig registers their EndpointSlices (there is no kubelet)
and points the namespace's resolv.conf at the cluster's isthmus-dns.

``deploy_demo`` runs an HTTP workload in one cluster and exports it; ``call`` makes a request
from inside another cluster's namespace by its ``.global`` name, through glibc DNS,
kube-proxy, both gateways and mutual TLS.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isthmus.devcluster.controlplane import ControlPlane, ControlPlaneError, ManagedProcess
from isthmus.devcluster.netns_resolv import write_netns_resolv_conf
from isthmus.devcluster.network import ClusterNet, RigNetwork
from isthmus.logging import get_logger
from isthmus.wellknown import CATALOG_PORT, GATEWAY_PORT

log = get_logger("isthmus.devcluster.rig")

TRUST_DOMAIN = "rig.isthmus.test"
SYSTEM = "isthmus-system"


@dataclass
class RigCluster:
    name: str
    net: ClusterNet
    cp: ControlPlane
    pods: dict[str, str] = field(default_factory=dict)  # component -> address
    procs: dict[str, ManagedProcess] = field(default_factory=dict)
    # (namespace, service) -> pod index -> address: the rig's "StatefulSets"
    stateful: dict[tuple[str, str], dict[int, str]] = field(default_factory=dict)

    @property
    def gateway_address(self) -> str:
        return f"{self.net.wan_ip}:{GATEWAY_PORT}"


class Rig:
    def __init__(
        self, names: list[str], workdir: Path, prefix: str = "isthmus",
        wan_cidr: str = "10.250.0.0/24",
    ) -> None:
        self.names = names
        self.workdir = workdir
        self.network = RigNetwork(prefix=prefix, wan_cidr=ipaddress.IPv4Network(wan_cidr))
        self.clusters: dict[str, RigCluster] = {}

    # --- helpers -------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> str:
        return ":".join(str(c.cp.kubeconfig) for c in self.clusters.values())

    def isthmus(self, *args: str) -> str:
        """Run the isthmus CLI as an operator would; raise with its stderr on failure."""
        cmd = [sys.executable, "-m", "isthmus.cli", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ControlPlaneError(f"isthmus {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def _target(self, c: RigCluster) -> list[str]:
        return ["--context", c.cp.context, "--kubeconfig", str(c.cp.kubeconfig)]

    def _api(self, c: RigCluster, method: str, path: str, body: Any = None) -> dict[str, Any]:
        for _ in range(50):
            status, data = c.cp.admin_request(method, path, body)
            if status == 429:  # a new resource's cache is still starting
                time.sleep(0.2)
                continue
            if status >= 300 and status != 409:
                raise ControlPlaneError(f"{c.name}: {method} {path}: HTTP {status} {data[:300]!r}")
            return json.loads(data or b"{}")  # type: ignore[no-any-return]
        raise ControlPlaneError(f"{c.name}: {method} {path}: still throttled")

    # --- bring-up ------------------------------------------------------------------------------
    def up(self) -> None:
        nets = self.network.create(self.names)
        root_dir = self.workdir / "root"
        for i, name in enumerate(self.names):
            net = nets[name]
            print(f"[rig] {name}: control plane in netns {net.netns} at {net.wan_ip}", flush=True)
            cp = ControlPlane(name, workdir=self.workdir / name, host=net.wan_ip, netns=net.netns,
                              service_cidr=f"10.{96 + i}.0.0/16", pod_cidr=net.pod_cidr,
                              with_kube_proxy=True, keep_workdir=True)
            cp.start()
            self.clusters[name] = RigCluster(name, net, cp)
        print("[rig] isthmus trust init", flush=True)
        self.isthmus("trust", "init", "--trust-domain", TRUST_DOMAIN, "--out", str(root_dir))
        for c in self.clusters.values():
            print(f"[rig] {c.name}: isthmus install / trust cluster-ca / trust bundle", flush=True)
            self.isthmus("install", "--cluster", c.name, "--trust-domain", TRUST_DOMAIN,
                         "--gateway-address", c.gateway_address, "--region", "rig",
                         "--zone", f"zone-{c.net.index}", *self._target(c))
            self.isthmus("trust", "cluster-ca", "--cluster", c.name, "--root", str(root_dir),
                         *self._target(c))
            self.isthmus("trust", "bundle", "--root", str(root_dir), *self._target(c))
            self._start_components(c)
        print("[rig] isthmus join " + " ".join(f"--context {n}" for n in self.names), flush=True)
        args = ["join", "--kubeconfig", self.kubeconfig]
        for name in self.names:
            args += ["--context", name]
        print(self.isthmus(*args), end="", flush=True)

    def _sa_kubeconfig(self, c: RigCluster, sa: str) -> Path:
        return c.cp.service_account_kubeconfig(
            SYSTEM, sa, c.cp.workdir / f"{sa}.kubeconfig",  # type: ignore[operator]
            expiration_seconds=24 * 3600,
        )

    def _spawn(self, c: RigCluster, component: str, args: list[str]) -> None:
        logs = c.cp.workdir / "logs"  # type: ignore[operator]
        proc = ManagedProcess(component, [sys.executable, "-m", "isthmus.cli", *args],
                              logs / f"isthmus-{component}.log")
        proc.start(c.net.exec_prefix())
        c.procs[component] = proc

    def _register(self, c: RigCluster, service: str, address: str,
                  ports: list[dict[str, Any]], namespace: str = SYSTEM) -> None:
        """An EndpointSlice for a "pod" of ``service`` (what the kubelet + EndpointSlice
        controller would produce for a real pod)."""
        self._api(c, "POST", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", {
            "metadata": {"name": f"{service}-rig", "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "isthmus-rig"}},
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        })

    def _start_components(self, c: RigCluster) -> None:
        for component in ("mirror", "gateway", "dns"):
            c.pods[component] = c.net.add_pod_ip()
        mirror_kc = self._sa_kubeconfig(c, "isthmus-mirror")
        self._spawn(c, "mirror", [
            "mirror", "--kubeconfig", str(mirror_kc), "--identity", f"{c.name}-mirror-0",
            "--catalog-host", c.pods["mirror"], "--catalog-port", str(CATALOG_PORT),
            "--metrics-host", c.pods["mirror"], "--metrics-port", "9464",
        ])
        self._register(c, "isthmus-mirror", c.pods["mirror"],
                       [{"name": "grpc-catalog", "port": CATALOG_PORT, "protocol": "TCP"}])
        self._wait_secret(c, "isthmus-gateway-tls")
        gateway_kc = self._sa_kubeconfig(c, "isthmus-gateway")
        self._spawn(c, "gateway", [
            "gateway", "--kubeconfig", str(gateway_kc), "--cluster", c.name,
            "--region", "rig", "--zone", f"zone-{c.net.index}",
            "--inbound-address", f"{c.net.wan_ip}:{GATEWAY_PORT}",
            "--outbound-host", c.pods["gateway"],
            "--admin-address", f"{c.pods['gateway']}:15021",
            "--catalog-address", f"{c.pods['mirror']}:{CATALOG_PORT}",
            "--tls-secret", "isthmus-gateway-tls",
        ])
        self._register(c, "isthmus-gateway", c.pods["gateway"],
                       [{"name": "tls-inbound", "port": GATEWAY_PORT, "protocol": "TCP"}])
        dns_kc = self._sa_kubeconfig(c, "isthmus-dns")
        self._spawn(c, "dns", ["dns", "--kubeconfig", str(dns_kc),
                               "--listen-address", "127.0.0.1", "--port", "53"])
        write_netns_resolv_conf(c.net.netns, "127.0.0.1")

    def _wait_secret(self, c: RigCluster, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = c.cp.admin_request("GET", f"/api/v1/namespaces/{SYSTEM}/secrets/{name}")
            # install creates it empty; wait for the mirror to fill it
            if status == 200 and (json.loads(body).get("data") or {}).get("tls.crt"):
                return
            self._check_procs(c)
            time.sleep(0.3)
        raise ControlPlaneError(f"{c.name}: Secret {SYSTEM}/{name} never filled "
                                f"(mirror log:\n{c.procs['mirror'].tail()})")

    def _check_procs(self, c: RigCluster) -> None:
        for proc in c.procs.values():
            if proc.popen is not None and not proc.alive():
                raise ControlPlaneError(
                    f"{c.name}: isthmus {proc.name} exited; log:\n{proc.tail()}"
                )

    # --- workloads -----------------------------------------------------------------------------
    def ensure_namespace(self, namespace: str) -> None:
        """``namespace`` in every cluster (imports land only in namespaces that exist)."""
        for c in self.clusters.values():
            self._api(c, "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})

    def start_workload(self, cluster: str, service: str, target_port: int = 8080, *,
                       grpc_port: int | None = None, tcp_port: int | None = None,
                       name: str | None = None, hostname: str | None = None) -> str:
        """A "pod" in ``cluster`` that answers HTTP (and, when given ports, gRPC and raw TCP)
        with its cluster and service name; its address."""
        c = self.clusters[cluster]
        address = c.net.add_pod_ip()
        # the same workload as the kind rig's pods: `isthmus demo serve`
        argv = [sys.executable, "-m", "isthmus.cli", "demo", "serve", "--cluster", cluster,
                "--service", service, "--host", address, "--http-port", str(target_port),
                "--grpc-port", str(grpc_port or 0), "--tcp-port", str(tcp_port or 0)]
        name = name or f"demo-{service}"
        proc = ManagedProcess(name, argv, c.cp.workdir / "logs" / f"{name}.log",  # type: ignore[operator]
                              env={"HOSTNAME": hostname} if hostname else None)
        proc.start(c.net.exec_prefix())
        c.procs[name] = proc
        return address

    def add_service(self, cluster: str, namespace: str, service: str, address: str, *,
                    port: int = 80, target_port: int = 8080, export: bool = True,
                    ports: list[tuple[str, int, int]] | None = None) -> None:
        """A Service with one ready endpoint at ``address`` (optionally labelled for export).
        ``ports`` lists (name, port, targetPort); by default one "http" port."""
        c = self.clusters[cluster]
        ports = ports or [("http", port, target_port)]
        labels = {"isthmus.io/export": "true"} if export else {}
        self._api(c, "POST", f"/api/v1/namespaces/{namespace}/services", {
            "metadata": {"name": service, "labels": labels},
            "spec": {"ports": [{"name": n, "port": p, "targetPort": t} for n, p, t in ports]},
        })
        self._register(c, service, address,
                       [{"name": n, "port": t, "protocol": "TCP"} for n, _, t in ports],
                       namespace)

    def set_export(self, cluster: str, namespace: str, service: str, export: bool) -> None:
        """Label (or unlabel) a Service for export: what an operator's kubectl label does."""
        c = self.clusters[cluster]
        status, data = c.cp.admin_request(
            "PATCH", f"/api/v1/namespaces/{namespace}/services/{service}",
            {"metadata": {"labels": {"isthmus.io/export": "true" if export else None}}},
            content_type="application/merge-patch+json")
        if status != 200:
            raise ControlPlaneError(f"{cluster}: label {namespace}/{service}: HTTP {status} "
                                    f"{data[:300]!r}")

    def deploy_demo(self, cluster: str, namespace: str = "shop", service: str = "users",
                    port: int = 80, target_port: int = 8080) -> None:
        """An HTTP "pod" in ``cluster``, behind Service ``service`` labelled for export; the
        namespace is created in every cluster."""
        self.ensure_namespace(namespace)
        address = self.start_workload(cluster, service, target_port)
        self.add_service(cluster, namespace, service, address, port=port,
                         target_port=target_port)

    def deploy_echo(self, cluster: str, namespace: str, service: str, *,
                    export: bool = True) -> None:
        """The echo workload behind Service ``service`` with ports http 80 -> 8080, grpc
        9090 and tcp 9000; the namespace is created in every cluster."""
        self.ensure_namespace(namespace)
        address = self.start_workload(cluster, service, 8080, grpc_port=9090, tcp_port=9000,
                                      name=f"demo-{namespace}-{service}")
        self.add_service(cluster, namespace, service, address, export=export, ports=[
            ("http", 80, 8080), ("grpc", 9090, 9090), ("tcp", 9000, 9000)])

    def set_stateful(self, cluster: str, namespace: str, service: str, replicas: int) -> None:
        """What a StatefulSet of ``replicas`` behind headless Service ``service`` (exported)
        gives: pods ``<service>-0..n-1``, each its own process answering with its name, and
        one EndpointSlice whose endpoints carry those hostnames. Called again, it scales:
        pods beyond ``replicas`` stop, missing ones start, the slice follows."""
        c = self.clusters[cluster]
        self.ensure_namespace(namespace)
        self._api(c, "POST", f"/api/v1/namespaces/{namespace}/services", {
            "metadata": {"name": service, "labels": {"isthmus.io/export": "true"}},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80,
                                                     "targetPort": 8080}]},
        })
        pods = c.stateful.setdefault((namespace, service), {})
        for index in sorted(set(pods) - set(range(replicas))):
            c.procs.pop(f"sts-{namespace}-{service}-{index}").stop()
            del pods[index]
        for index in sorted(set(range(replicas)) - set(pods)):
            pod = f"{service}-{index}"
            pods[index] = self.start_workload(cluster, service, 8080, hostname=pod,
                                              name=f"sts-{namespace}-{service}-{index}")
        slice_ = {
            "metadata": {"name": f"{service}-rig", "namespace": namespace, "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "isthmus-rig"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [address], "hostname": f"{service}-{index}",
                           "conditions": {"ready": True}}
                          for index, address in sorted(pods.items())],
        }
        path = f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
        status, _ = c.cp.admin_request("GET", f"{path}/{service}-rig")
        if status == 200:
            self._api(c, "PUT", f"{path}/{service}-rig", slice_)
        else:
            self._api(c, "POST", path, slice_)

    # --- faults: what a node, the kubelet or an operator would do -----------------------------
    def set_endpoint_ready(self, cluster: str, service: str, ready: bool,
                           namespace: str = SYSTEM) -> None:
        """Flip the readiness of the rig's EndpointSlice for ``service``: what the kubelet
        reports when a pod dies or comes back."""
        c = self.clusters[cluster]
        path = (f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/"
                f"{service}-rig")
        slice_ = self._api(c, "GET", path)
        for endpoint in slice_["endpoints"]:
            endpoint["conditions"] = {"ready": ready}
        self._api(c, "PUT", path, slice_)

    def stop_component(self, cluster: str, component: str, *, crash: bool = False) -> None:
        """Stop one isthmus process ("pod") of ``cluster``: SIGTERM, or SIGKILL with ``crash``
        (no drain). If it is the gateway, its endpoint turns not ready, as the kubelet would
        report."""
        proc = self.clusters[cluster].procs[component]
        if crash and proc.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.stop()
        if component == "gateway":
            self.set_endpoint_ready(cluster, "isthmus-gateway", False)

    def start_component(self, cluster: str, component: str, timeout: float = 60.0) -> None:
        """Start a stopped isthmus process again with the same arguments; for the gateway,
        wait until its /readyz answers, then mark its endpoint ready."""
        c = self.clusters[cluster]
        proc = c.procs[component]
        if not proc.alive():
            proc.stop()  # reap an exited one
            proc.start(c.net.exec_prefix())
        if component != "gateway":
            return
        url = f"http://{c.pods['gateway']}:15021/readyz"
        deadline = time.monotonic() + timeout
        while True:
            self._check_procs(c)
            if self.run_in(cluster, "curl", "-fsS", "--max-time", "2", url).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{cluster}: gateway not ready after restart; log:\n"
                                        f"{proc.tail()}")
            time.sleep(0.5)
        self.set_endpoint_ready(cluster, "isthmus-gateway", True)

    def stop_apiserver(self, cluster: str) -> None:
        """Stop the cluster's kube-apiserver (etcd and everything else keep running)."""
        self.clusters[cluster].cp.stop_apiserver()

    def start_apiserver(self, cluster: str) -> None:
        """Start it again, and restart any isthmus process that exited meanwhile (a mirror
        that cannot renew its Lease stops, and its pod would be restarted)."""
        c = self.clusters[cluster]
        c.cp.start_apiserver()
        for name, proc in c.procs.items():
            if proc.popen is not None and not proc.alive():
                log.info("restarting exited process", cluster=cluster, process=name)
                proc.stop()
                proc.start(c.net.exec_prefix())

    def request(self, cluster: str, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> tuple[int, bytes]:
        """One API request as cluster-admin (what the operator's kubectl does)."""
        return self.clusters[cluster].cp.admin_request(method, path, body, content_type)

    # --- from inside a cluster ---------------------------------------------------------------
    def run_in(
        self, cluster: str, *argv: str, timeout: float = 10.0
    ) -> subprocess.CompletedProcess[str]:
        net = self.clusters[cluster].net
        return subprocess.run([*net.exec_prefix(), *argv], capture_output=True, text=True,
                              timeout=timeout, check=False)

    def resolve(self, cluster: str, name: str) -> list[str]:
        proc = self.run_in(cluster, "getent", "hosts", name)
        return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]

    def call(self, cluster: str, url: str) -> str:
        proc = self.run_in(cluster, "curl", "-sS", "--max-time", "5", url)
        if proc.returncode != 0:
            raise ControlPlaneError(f"curl {url} from {cluster}: {proc.stderr.strip()}")
        return proc.stdout

    def wait_call(self, cluster: str, url: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for c in self.clusters.values():
                self._check_procs(c)
            try:
                return self.call(cluster, url)
            except (ControlPlaneError, subprocess.TimeoutExpired) as exc:
                last = str(exc)
            time.sleep(1.0)
        raise ControlPlaneError(f"{url} from {cluster} never answered: {last}")

    # --- teardown ------------------------------------------------------------------------------
    def down(self) -> None:
        for c in self.clusters.values():
            for proc in c.procs.values():
                proc.stop()
            c.cp.stop()
            with contextlib.suppress(OSError):
                (Path("/etc/netns") / c.net.netns / "resolv.conf").unlink()
                (Path("/etc/netns") / c.net.netns).rmdir()
        self.network.destroy()

    def logs(self) -> str:
        """The tail of every component's log (for a failing run)."""
        out = []
        for c in self.clusters.values():
            for proc in c.procs.values():
                out.append(f"--- {c.name}/{proc.name}\n{proc.tail(25)}")
        return "\n".join(out)


def needs_root() -> str | None:
    """Why the rig cannot run here, or None."""
    if os.geteuid() != 0:
        return "the rig needs root (network namespaces)"
    return None
