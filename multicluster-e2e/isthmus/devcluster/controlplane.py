"""Start and stop one real Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager.

Synchronous on purpose: pytest fixtures and the rig script drive it, and each call either
finishes (the API server answers /readyz) or raises ``ControlPlaneError`` with the tail of the
failing process's log. Several control planes run side by side; each picks free loopback ports
(or listens on ``host`` inside a network namespace when ``netns`` is given).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from isthmus.devcluster.pki import ClusterPki, Pair
from isthmus.errors import IsthmusError
from isthmus.logging import get_logger

log = get_logger("isthmus.devcluster")

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-proxy")
_READY_TIMEOUT = 90.0


class ControlPlaneError(IsthmusError):
    """A control plane could not be started, or a process in it died."""


def find_binaries() -> Path:
    """The directory holding the built binaries.

    ``ISTHMUS_CONTROL_PLANE_BIN`` wins; otherwise the newest complete build in the cache that
    multicluster-e2e/build-control-plane.sh writes.
    """
    env = os.environ.get("ISTHMUS_CONTROL_PLANE_BIN")
    candidates: list[Path] = [Path(env)] if env else []
    cache = Path(
        os.environ.get("ISTHMUS_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "isthmus"
    )
    builds = cache / "control-plane"
    if builds.is_dir():
        candidates += sorted(
            (p for p in builds.iterdir() if (p / ".complete").exists()),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
    for cand in candidates:
        if all((cand / b).is_file() for b in BINARIES):
            return cand
    raise ControlPlaneError(
        "control-plane binaries not found: run multicluster-e2e/build-control-plane.sh "
        "(or set ISTHMUS_CONTROL_PLANE_BIN)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class ManagedProcess:
    """One child process with its log file; stopped by process group (TERM, then KILL)."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    env: dict[str, str] | None = None  # added to this process's environment

    def start(self, prefix: list[str]) -> None:
        logf = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [*prefix, *self.argv],
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # so a test's Ctrl-C does not hit it before teardown
            env={**os.environ, **self.env} if self.env else None,
        )
        logf.close()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self.popen = None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])


@dataclass
class ControlPlane:
    """One cluster's control plane. ``start()`` then use ``kubeconfig``; ``stop()`` at the end."""

    name: str
    workdir: Path | None = None
    host: str = "127.0.0.1"
    netns: str | None = None
    service_cidr: str = "10.96.0.0/16"
    bindir: Path | None = None
    watch_cache: bool = True
    with_controller_manager: bool = True
    # kube-proxy programs Service VIPs into iptables of ``netns`` (the rig); needs root.
    with_kube_proxy: bool = False
    pod_cidr: str = "10.100.0.0/16"
    keep_workdir: bool = False
    extra_apiserver_args: list[str] = field(default_factory=list)

    api_port: int = 0
    etcd_port: int = 0
    _procs: dict[str, ManagedProcess] = field(default_factory=dict)
    _owns_workdir: bool = False

    # --- paths and addresses -------------------------------------------------------------
    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.api_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://{self.host}:{self.etcd_port}"

    @property
    def kubeconfig(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "admin.kubeconfig"

    @property
    def context(self) -> str:
        return self.name

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> ControlPlane:
        bindir = self.bindir or find_binaries()
        self.bindir = bindir
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"isthmus-cp-{self.name}-"))
            self._owns_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        if not self.api_port:
            self.api_port = free_port(self.host) if self.netns is None else 6443
        if not self.etcd_port:
            self.etcd_port = free_port(self.host) if self.netns is None else 2379
        peer_port = free_port(self.host) if self.netns is None else 2380

        pki = ClusterPki(self.workdir / "pki", self.name)
        service_ip = _first_host(self.service_cidr)
        serving = pki.issue(
            "apiserver",
            "kube-apiserver",
            server_names=[self.host, "localhost", "127.0.0.1", service_ip, "kubernetes",
                          "kubernetes.default", "kubernetes.default.svc",
                          "kubernetes.default.svc.cluster.local"],
        )
        admin = pki.issue("admin", "isthmus-admin", org="system:masters", client=True)
        kcm = pki.issue("kcm", "system:kube-controller-manager", client=True)
        self._pki = pki
        self._write_kubeconfig(self.kubeconfig, self.name, pki.ca.cert, admin)
        kcm_config = self.workdir / "kcm.kubeconfig"
        self._write_kubeconfig(kcm_config, self.name, pki.ca.cert, kcm)

        logs = self.workdir / "logs"
        etcd_data = self.workdir / "etcd"
        self._procs = {
            "etcd": ManagedProcess("etcd", [
                str(bindir / "etcd"), "--name", self.name, "--data-dir", str(etcd_data),
                "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
                "--listen-peer-urls", f"http://{self.host}:{peer_port}",
                "--initial-advertise-peer-urls", f"http://{self.host}:{peer_port}",
                "--initial-cluster", f"{self.name}=http://{self.host}:{peer_port}",
                "--log-level", "warn", "--quota-backend-bytes", str(2 * 1024**3),
            ], logs / "etcd.log"),
            "kube-apiserver": ManagedProcess("kube-apiserver", [
                str(bindir / "kube-apiserver"),
                "--etcd-servers", self.etcd_url,
                "--bind-address", self.host, "--advertise-address", self.host,
                "--secure-port", str(self.api_port),
                "--authorization-mode", "Node,RBAC",
                "--client-ca-file", str(pki.ca.cert),
                "--tls-cert-file", str(serving.cert), "--tls-private-key-file", str(serving.key),
                "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file", str(pki.sa_pub),
                "--service-account-signing-key-file", str(pki.sa_key),
                "--api-audiences", "https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range", self.service_cidr,
                "--cert-dir", str(self.workdir / "apiserver-certs"),
                "--enable-priority-and-fairness=false",
                f"--watch-cache={'true' if self.watch_cache else 'false'}",
                "--etcd-compaction-interval", "0",
                "--profiling=false", "--v", "1",
                *self.extra_apiserver_args,
            ], logs / "kube-apiserver.log"),
        }
        if self.with_controller_manager:
            self._procs["kube-controller-manager"] = ManagedProcess("kube-controller-manager", [
                str(bindir / "kube-controller-manager"),
                "--kubeconfig", str(kcm_config),
                "--authentication-kubeconfig", str(kcm_config),
                "--authorization-kubeconfig", str(kcm_config),
                "--service-account-private-key-file", str(pki.sa_key),
                "--root-ca-file", str(pki.ca.cert),
                "--use-service-account-credentials",
                "--leader-elect=false",
                "--secure-port", "0",
                "--controllers", "*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-route,-service",
                "--v", "1",
            ], logs / "kube-controller-manager.log")
        if self.with_kube_proxy:
            self._procs["kube-proxy"] = ManagedProcess("kube-proxy", [
                str(bindir / "kube-proxy"),
                "--kubeconfig", str(self.kubeconfig),
                "--hostname-override", self.name,
                "--proxy-mode", "iptables",
                "--cluster-cidr", self.pod_cidr,
                "--conntrack-max-per-core", "0",  # no sysctl writes from inside a netns
                "--healthz-bind-address", "127.0.0.1:10256",
                "--metrics-bind-address", "127.0.0.1:10249",
                "--v", "1",
            ], logs / "kube-proxy.log")
        try:
            self._procs["etcd"].start(self._prefix())
            self._wait_etcd()
            self._procs["kube-apiserver"].start(self._prefix())
            self.wait_ready()
            if self.with_kube_proxy:
                self._register_node()
            for extra in ("kube-controller-manager", "kube-proxy"):
                if extra in self._procs:
                    self._procs[extra].start(self._prefix())
        except BaseException:
            self.stop()
            raise
        log.info("control plane ready", cluster=self.name, server=self.server)
        return self

    def stop(self) -> None:
        for name in ("kube-proxy", "kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self._procs.get(name)
            if proc is not None:
                proc.stop()
        if self._owns_workdir and not self.keep_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver (and the controller-manager, which exits without it)."""
        for name in ("kube-controller-manager", "kube-apiserver"):
            if name in self._procs:
                self._procs[name].stop()

    def start_apiserver(self) -> None:
        self._procs["kube-apiserver"].start(self._prefix())
        self.wait_ready()
        if "kube-controller-manager" in self._procs:
            self._procs["kube-controller-manager"].start(self._prefix())

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver (etcd keeps its data): watches drop mid-stream."""
        self.stop_apiserver()
        self.start_apiserver()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _register_node(self) -> None:
        """kube-proxy waits for its Node to learn the node IPs; there is no kubelet here."""
        node = {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name},
            "spec": {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr]},
        }
        status, body = self.admin_request("POST", "/api/v1/nodes", node)
        if status not in (201, 409):
            raise ControlPlaneError(f"{self.name}: cannot register Node: HTTP {status} {body!r}")
        patch = {"status": {"addresses": [{"type": "InternalIP", "address": self.host}]}}
        status, body = self.admin_request(
            "PATCH", f"/api/v1/nodes/{self.name}/status", patch,
            content_type="application/merge-patch+json",
        )
        if status != 200:
            raise ControlPlaneError(f"{self.name}: cannot set Node address: HTTP {status} {body!r}")

    # --- readiness ---------------------------------------------------------------------------
    def _prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def _check_alive(self) -> None:
        for proc in self._procs.values():
            if proc.popen is not None and not proc.alive():
                raise ControlPlaneError(
                    f"{self.name}: {proc.name} exited with {proc.popen.returncode}; "
                    f"last log lines ({proc.log_path}):\n{proc.tail()}"
                )

    def _wait_etcd(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError, json.JSONDecodeError):
                if self.etcd_request("/health", None).get("health") == "true":
                    return
            time.sleep(0.2)
        tail = self._procs["etcd"].tail()
        raise ControlPlaneError(f"{self.name}: etcd not healthy; log:\n{tail}")

    def wait_ready(self, timeout: float = _READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                status, body = self.admin_request("GET", "/readyz")
                if status == 200:
                    return
                last = f"HTTP {status}: {body[:200]!r}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.25)
        raise ControlPlaneError(
            f"{self.name}: kube-apiserver not ready after {timeout:.0f}s ({last}); log:\n"
            f"{self._procs['kube-apiserver'].tail()}"
        )

    # --- raw access for tests and the rig ------------------------------------------------------
    def admin_ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self._pki.ca.cert))
        admin = Pair(self._pki.dir / "admin.crt", self._pki.dir / "admin.key")
        ctx.load_cert_chain(str(admin.cert), str(admin.key))
        return ctx

    def admin_request(
        self, method: str, path: str, body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        """One HTTPS request as cluster-admin; used for readiness and set-up, not by isthmus."""
        conn = http.client.HTTPSConnection(
            self.host, self.api_port, context=self.admin_ssl_context(), timeout=10
        )
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": content_type} if payload else {}
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def etcd_request(self, path: str, body: Any) -> dict[str, Any]:
        """etcd's JSON gateway (v3 API over HTTP), e.g. to compact history in a test."""
        conn = http.client.HTTPConnection(self.host, self.etcd_port, timeout=10)
        try:
            if body is None:
                conn.request("GET", path)
            else:
                conn.request("POST", path, body=json.dumps(body).encode())
            data: dict[str, Any] = json.loads(conn.getresponse().read() or b"{}")
            return data
        finally:
            conn.close()

    def compact_etcd(self) -> int:
        """Compact etcd to its current revision, so older resourceVersions give 410 Gone."""
        header = self.etcd_request("/v3/kv/range", {"key": "AA=="})["header"]
        revision = int(header["revision"])
        self.etcd_request("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def service_account_kubeconfig(
        self, namespace: str, name: str, path: Path, *, expiration_seconds: int = 3600
    ) -> Path:
        """A kubeconfig that authenticates as a ServiceAccount (TokenRequest API), so tests can
        run a component with exactly the permissions its manifests grant."""
        status, body = self.admin_request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": expiration_seconds}},
        )
        if status != 201:
            raise ControlPlaneError(f"token request for {namespace}/{name}: HTTP {status} {body!r}")
        token = json.loads(body)["status"]["token"]
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": self.name,
            "clusters": [{"name": self.name, "cluster": {
                "server": self.server, "certificate-authority": str(self._pki.ca.cert)}}],
            "users": [{"name": f"{namespace}:{name}", "user": {"token": token}}],
            "contexts": [{"name": self.name, "context": {
                "cluster": self.name, "user": f"{namespace}:{name}", "namespace": namespace}}],
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def _write_kubeconfig(self, path: Path, context: str, ca: Path, user: Pair) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": context, "cluster": {
                "server": self.server, "certificate-authority": str(ca)}}],
            "users": [{"name": f"{context}-admin", "user": {
                "client-certificate": str(user.cert), "client-key": str(user.key)}}],
            "contexts": [{"name": context, "context": {
                "cluster": context, "user": f"{context}-admin"}}],
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)


def _first_host(cidr: str) -> str:
    return str(next(ipaddress.ip_network(cidr).hosts()))
