"""The ``ClusterSet`` of the local rig: clusters in network namespaces, components as processes.

Clients run inside the calling cluster's namespace (``ip netns exec``), so every call takes
the real path: glibc's resolver -> isthmus-dns -> mirror VIP -> kube-proxy's iptables ->
local gateway -> mTLS -> peer gateway -> the workload process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from scenario_driver import (
    ECHO_PORTS,
    CallResult,
    CheckResult,
    RigUnavailable,
    TrafficReader,
    Unsupported,
    api_path,
    isthmus_labelled,
)

from isthmus.devcluster import ControlPlaneError, find_binaries
from isthmus.devcluster.rig import Rig, needs_root

CLIENT = [sys.executable, "-m", "isthmus.devcluster.demo_client"]


def unavailable() -> str | None:
    """Why the local rig cannot run here, or None."""
    reason = needs_root()
    if reason:
        return reason
    try:
        find_binaries()
    except ControlPlaneError as exc:
        return str(exc)
    return None


def _result(stdout: str, stderr: str = "") -> CallResult:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        return CallResult(False, error=(stderr.strip() or stdout.strip() or "no output")[-300:])
    data = json.loads(lines[-1])
    return CallResult(bool(data.get("ok")), data.get("cluster"), data,
                      str(data.get("error", "")), float(data.get("t", time.time())))


class LocalTraffic(TrafficReader):
    """A client process in ``src``'s namespace making one new HTTP connection every 0.2 s."""

    def __init__(self, prefix: list[str], url: str) -> None:
        super().__init__(subprocess.Popen(
            [*prefix, *CLIENT, "loop", url, "--interval", "0.2", "--timeout", "5"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True))

    def _end(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)


class LocalClusterSet:
    rig = "local"

    def __init__(self, names: list[str], *, prefix: str, wan_cidr: str) -> None:
        self.clusters = list(names)
        self._workdir = Path(tempfile.mkdtemp(prefix=f"isthmus-{prefix}-"))
        self.r = Rig(names, self._workdir, prefix=prefix, wan_cidr=wan_cidr)
        self._failed = False
        self._stub_backup: dict[str, dict[str, Any]] = {}

    # --- lifecycle -----------------------------------------------------------------------------
    def up(self) -> None:
        reason = unavailable()
        if reason:
            raise RigUnavailable(f"local rig not available: {reason}")
        try:
            self.r.up()
        except BaseException:
            self._failed = True
            print(self.r.logs())
            self.down()
            raise

    def down(self) -> None:
        self.r.down()
        if self._failed:
            print(f"[scenarios] rig logs kept in {self._workdir}")
        else:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def mark_failed(self) -> None:
        self._failed = True

    def logs(self) -> str:
        return self.r.logs()

    # --- traffic -------------------------------------------------------------------------------
    def _client(self, src: str, *argv: str, timeout: float = 30.0) -> CallResult:
        try:
            proc = self.r.run_in(src, *CLIENT, *argv, timeout=timeout)
        except subprocess.TimeoutExpired:
            return CallResult(False, error=f"client timed out after {timeout:.0f}s")
        return _result(proc.stdout, proc.stderr)

    def call_http(self, src: str, host: str) -> CallResult:
        return self._client(src, "http", f"http://{host}:{ECHO_PORTS['http']}/")

    def call_grpc(self, src: str, host: str, count: int = 3) -> CallResult:
        return self._client(src, "grpc", f"{host}:{ECHO_PORTS['grpc']}", "--count", str(count))

    def call_tcp(self, src: str, host: str) -> CallResult:
        return self._client(src, "tcp", f"{host}:{ECHO_PORTS['tcp']}")

    def resolve(self, src: str, name: str) -> list[str]:
        return self.r.resolve(src, name)

    def start_traffic(self, src: str, host: str) -> LocalTraffic:
        prefix = self.r.clusters[src].net.exec_prefix()
        return LocalTraffic(prefix, f"http://{host}:{ECHO_PORTS['http']}/")

    # --- workloads -----------------------------------------------------------------------------
    def deploy_echo(self, cluster: str, namespace: str, service: str, *,
                    export: bool = True) -> None:
        self.r.deploy_echo(cluster, namespace, service, export=export)

    def set_stateful(self, cluster: str, namespace: str, service: str, replicas: int) -> None:
        self.r.set_stateful(cluster, namespace, service, replicas)

    def remove_stateful(self, cluster: str, namespace: str, service: str) -> None:
        self.r.set_stateful(cluster, namespace, service, 0)
        self.delete(cluster, f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/"
                             f"endpointslices/{service}-rig")
        self.delete(cluster, f"/api/v1/namespaces/{namespace}/services/{service}")

    def export(self, cluster: str, namespace: str, service: str) -> None:
        self.r.set_export(cluster, namespace, service, True)

    def unexport(self, cluster: str, namespace: str, service: str) -> None:
        self.r.set_export(cluster, namespace, service, False)

    # --- faults and operations -----------------------------------------------------------------
    def kill_gateway(self, cluster: str) -> None:
        self.r.stop_component(cluster, "gateway", crash=True)

    def restore_gateway(self, cluster: str) -> None:
        self.r.start_component(cluster, "gateway")

    def kill_mirror(self, cluster: str) -> None:
        self.r.stop_component(cluster, "mirror", crash=True)

    def restore_mirror(self, cluster: str) -> None:
        self.r.start_component(cluster, "mirror")

    def stop_apiserver(self, cluster: str) -> None:
        self.r.stop_apiserver(cluster)

    def start_apiserver(self, cluster: str) -> None:
        self.r.start_apiserver(cluster)

    def _target(self, cluster: str) -> list[str]:
        return ["--context", cluster, "--kubeconfig", self.r.kubeconfig]

    def rotate_cluster_ca(self, cluster: str) -> None:
        self.r.isthmus("trust", "cluster-ca", "--cluster", cluster,
                       "--root", str(self._workdir / "root"), *self._target(cluster))

    def served_certificate(self, cluster: str) -> x509.Certificate | None:
        """The leaf ``cluster``'s gateway presents to a peer (from the WAN, as a peer gateway
        dials it). In TLS 1.3 the server's certificate arrives before the client's is
        checked, so no client certificate is needed to read it."""
        host, port = self.r.clusters[cluster].gateway_address.rsplit(":", 1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # read only; nothing is sent
        try:
            with socket.create_connection((host, int(port)), timeout=5) as raw, \
                    ctx.wrap_socket(raw) as tls:
                der = tls.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError):
            return None
        return x509.load_der_x509_certificate(der) if der else None

    def get_secret(self, cluster: str, namespace: str, name: str) -> dict[str, Any]:
        secret = self.get(cluster, f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if secret is None:
            raise AssertionError(f"{cluster}: Secret {namespace}/{name} is missing")
        return secret

    def put_secret_data(self, cluster: str, namespace: str, name: str,
                        data: dict[str, str]) -> None:
        status, body = self.r.request(
            cluster, "PATCH", f"/api/v1/namespaces/{namespace}/secrets/{name}",
            {"data": data}, content_type="application/merge-patch+json")
        if status != 200:
            raise AssertionError(f"{cluster}: patch Secret {namespace}/{name}: HTTP {status} "
                                 f"{body[:300]!r}")

    def join(self, clusters: list[str]) -> str:
        args = ["join", "--kubeconfig", self.r.kubeconfig]
        for name in clusters:
            args += ["--context", name]
        return self.r.isthmus(*args)

    def unjoin(self, clusters: list[str]) -> str:
        args = ["unjoin", "--kubeconfig", self.r.kubeconfig]
        for name in clusters:
            args += ["--context", name]
        return self.r.isthmus(*args)

    def upgrade(self, tag: str) -> None:
        raise Unsupported("the local rig runs isthmus as processes from this checkout: there is "
                          "no image or Deployment to roll (kind rig only)")

    def has_coredns(self, cluster: str) -> bool:
        return self.get(cluster, "/api/v1/namespaces/kube-system/configmaps/coredns") is not None

    def remove_stub_zone(self, cluster: str) -> None:
        raise Unsupported("the local rig has no CoreDNS")

    def restore_stub_zone(self, cluster: str) -> None:
        raise Unsupported("the local rig has no CoreDNS")

    # --- reading state -------------------------------------------------------------------------
    def apply(self, cluster: str, obj: dict[str, Any]) -> None:
        """Server-side apply, as the operator's ``kubectl apply --server-side``."""
        path = api_path(obj)
        status, body = self.r.request(
            cluster, "PATCH", f"{path}?fieldManager=operator&force=true", obj,
            content_type="application/apply-patch+yaml")
        if status not in (200, 201):
            raise AssertionError(f"{cluster}: apply {path}: HTTP {status} {body[:300]!r}")

    def delete(self, cluster: str, path: str) -> None:
        status, body = self.r.request(cluster, "DELETE", path)
        if status not in (200, 202, 404):
            raise AssertionError(f"{cluster}: DELETE {path}: HTTP {status} {body[:300]!r}")

    def get(self, cluster: str, path: str) -> dict[str, Any] | None:
        status, body = self.r.request(cluster, "GET", path)
        if status == 404:
            return None
        if status != 200:
            raise AssertionError(f"{cluster}: GET {path}: HTTP {status} {body[:300]!r}")
        return json.loads(body)  # type: ignore[no-any-return]

    def _list_paths(self, cluster: str) -> list[str]:
        """Every listable resource the API server serves (discovery, as kubectl does)."""
        paths: list[tuple[str, dict[str, Any] | None]] = [
            ("/api/v1", self.get(cluster, "/api/v1"))]
        for group in (self.get(cluster, "/apis") or {}).get("groups", []):
            version = group["preferredVersion"]["groupVersion"]
            paths.append((f"/apis/{version}", self.get(cluster, f"/apis/{version}")))
        out = []
        for base, listing in paths:
            for res in (listing or {}).get("resources", []):
                if "/" not in res["name"] and "list" in res.get("verbs", []):
                    out.append(f"{base}/{res['name']}")
        return out

    def isthmus_objects(self, cluster: str) -> list[dict[str, Any]]:
        found = []
        for path in self._list_paths(cluster):
            status, body = self.r.request(cluster, "GET", path)
            if status != 200:
                continue  # e.g. an aggregated API that is not served here
            found += isthmus_labelled(path.rsplit("/", 1)[1],
                                      json.loads(body).get("items", []))
        return found

    def check(self, cluster: str) -> CheckResult:
        proc = subprocess.run([sys.executable, "-m", "isthmus.cli", "check",
                               *self._target(cluster)],
                              capture_output=True, text=True, timeout=120, check=False)
        return CheckResult(proc.returncode, proc.stdout + proc.stderr)

    def status(self, cluster: str) -> str:
        return self.r.isthmus("status", *self._target(cluster))
