"""The ``ClusterSet`` of the kind rig: kind clusters running the isthmus image, driven by kubectl.

The clusters are brought up by ``multicluster-e2e/kind/up`` (pods from the isthmus image,
CoreDNS with the ``global`` stub, the demo workloads), which writes the kubeconfig and the
names of its clusters into its state folder. kubectl runs on each cluster's node
(``docker exec``, as ``multicluster-e2e/kind/kc`` does); the isthmus CLI runs with the rig's
kubeconfig, in the engine's network namespace when the engine is the isolated one.

Calls are made from a client pod in the calling cluster (the isthmus image, ``isthmus demo
call``): a new process per call, so the pod's own resolver -> CoreDNS (the ``global`` stub)
-> isthmus-dns -> mirror VIP -> kube-proxy -> local gateway -> mTLS -> peer gateway
(NodePort) -> the workload pod. The pod is kept for the run, so a call costs one
``kubectl exec``, not a pod start.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from scenario_driver import (
    ECHO_PORTS,
    CallResult,
    CheckResult,
    RigUnavailable,
    TrafficReader,
    Unsupported,
    isthmus_labelled,
)

REPO = Path(__file__).resolve().parents[2]
KIND_DIR = REPO / "multicluster-e2e" / "kind"
UP_SCRIPT = KIND_DIR / "up"
PREFIX = "isthmus-"  # env.sh: kind cluster names
SYSTEM_NAMESPACE = "isthmus-system"
CLIENT_NAMESPACE = "shop"
PYTHON = "/opt/isthmus/bin/python"  # the image's interpreter (up uses it the same way)

# One new HTTP connection every 0.2 s until stdin closes; one JSON line per call.
LOOP = r"""
import http.client, json, sys, threading, time, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1]); stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
end = time.time() + 1800
while not stop.is_set() and time.time() < end:
    t = time.time()
    try:
        c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=5)
        c.request("GET", u.path or "/", headers={"Connection": "close"})
        r = c.getresponse(); body = r.read(); c.close()
        if r.status != 200:
            raise OSError("HTTP %d" % r.status)
        out = {"ok": True, "cluster": json.loads(body)["cluster"], "t": t}
    except Exception as e:
        out = {"ok": False, "error": "%s: %s" % (type(e).__name__, e), "t": t}
    print(json.dumps(out), flush=True)
    stop.wait(max(0.0, t + 0.2 - time.time()))
"""

RESOLVE = r"""
import json, socket, sys
try:
    infos = socket.getaddrinfo(sys.argv[1], None, socket.AF_INET, socket.SOCK_STREAM)
except socket.gaierror:
    infos = []
print(json.dumps(sorted({i[4][0] for i in infos})))
"""

PEER_CERT = r"""
import base64, socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as raw:
    with ctx.wrap_socket(raw) as tls:
        print(base64.b64encode(tls.getpeercert(binary_form=True)).decode())
"""


def _state() -> Path:
    return Path(os.environ.get("ISTHMUS_KIND_STATE") or REPO / "rig-state" / "kind")


def _engine() -> tuple[dict[str, str], bool] | None:
    """The environment that reaches the rig's engine, and whether it is the isolated one."""
    proc = subprocess.run(
        ["bash", "-c", f'source "{KIND_DIR}/env.sh"; engine_detect >/dev/null 2>&1 || exit 1; '
                       'printf "%s\\n%s\\n" "${DOCKER_HOST:-}" "$ISOLATED"'],
        capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        return None
    host, isolated = [*proc.stdout.splitlines(), "", "0"][:2]
    env = dict(os.environ)
    if host:
        env["DOCKER_HOST"] = host
    return env, isolated == "1"


def unavailable() -> str | None:
    """Why the kind rig cannot run the scenarios here, or None."""
    if not UP_SCRIPT.exists():
        return f"kind rig not available: {UP_SCRIPT.relative_to(REPO)} is not in this checkout"
    kubeconfig = _state() / "kubeconfig"
    names = _state() / "clusters"
    if not kubeconfig.exists() or not names.exists():
        return (f"kind rig not available: no clusters are up ({names} is missing; run "
                f"{UP_SCRIPT.relative_to(REPO)} --clusters 3)")
    if _engine() is None:
        return "kind rig not available: no container engine answers (run multicluster-e2e/kind/up)"
    return None


def rig_clusters() -> list[str]:
    """The rig's clusters, in up's order (the first is the caller in smoke.sh)."""
    return [n for n in (_state() / "clusters").read_text().split() if n]


def _call_result(proc: subprocess.CompletedProcess[str], t: float) -> CallResult:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return CallResult(False, error=(proc.stderr.strip() or proc.stdout.strip()
                                        or f"exit {proc.returncode}")[-300:], t=t)
    data: dict[str, Any] = json.loads(lines[-1])
    cluster = data.get("cluster")
    if cluster is None and "unary" in data:  # gRPC answers "<cluster>:ping"
        cluster = str(data["unary"]).rsplit(":", 1)[0]
    if "tcp" in data:
        data["echoed"] = len(str(data["tcp"]))
    return CallResult(True, cluster, data, t=t)


class KindTraffic(TrafficReader):
    """The loop above, in a client pod, over ``kubectl exec -i``; closing stdin stops it."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        super().__init__(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True, env=env,
                                          start_new_session=True))

    def _end(self) -> None:
        assert self._proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()
        try:
            self._proc.wait(15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)


def echo_deployment(cluster: str, service: str, image: str) -> dict[str, Any]:
    """workloads/echo.yaml's ``echo`` Deployment, renamed to back ``service``."""
    docs = yaml.safe_load_all((KIND_DIR / "workloads" / "echo.yaml").read_text()
                              .replace("__CLUSTER__", cluster).replace("__IMAGE__", image))
    template = next(d for d in docs
                    if d["kind"] == "Deployment" and d["metadata"]["name"] == "echo")
    template["metadata"]["name"] = service
    labels = {"app": service}
    template["metadata"]["labels"] = labels
    template["spec"]["selector"]["matchLabels"] = labels
    pod = template["spec"]["template"]
    pod["metadata"]["labels"] = labels
    for env in pod["spec"]["containers"][0]["env"]:
        if env["name"] == "ISTHMUS_DEMO_SERVICE":
            env["value"] = service
    return dict(template)


class KindClusterSet:
    rig = "kind"

    def __init__(self, names: list[str]) -> None:
        engine = _engine()
        if engine is None:
            raise RigUnavailable("kind rig not available: no container engine answers")
        self._env, self._isolated = engine
        self.clusters = list(names)
        self._kubeconfig = str(_state() / "kubeconfig")
        self._client = f"scenario-client-{uuid.uuid4().hex[:6]}"
        self._clients: set[str] = set()
        self._image = ""
        self._stub_backup: dict[str, str] = {}
        self._replicas: dict[tuple[str, str], int] = {}  # what a killed component ran with

    # --- plumbing --------------------------------------------------------------------------
    def _kubectl_argv(self, cluster: str, *args: str, stdin: bool = False) -> list[str]:
        return ["docker", "exec", *(["-i"] if stdin else []), f"{PREFIX}{cluster}-control-plane",
                "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", *args]

    def kubectl(self, cluster: str, *args: str, input: str | None = None,
                timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self._kubectl_argv(cluster, *args, stdin=input is not None),
                              input=input, capture_output=True, text=True, env=self._env,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{cluster}: kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def _docker(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=self._env,
                              timeout=timeout, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def _isthmus(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(REPO / ".venv" / "bin" / "isthmus"), *args]
        if self._isolated:
            argv = [str(KIND_DIR / "engine.sh"), "exec", *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, env=self._env, timeout=300,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"isthmus {' '.join(args)} (exit {proc.returncode}): "
                                 f"{proc.stdout}{proc.stderr}")
        return proc

    def _target(self, cluster: str) -> list[str]:
        return ["--context", f"kind-{PREFIX}{cluster}", "--kubeconfig", self._kubeconfig]

    def image(self) -> str:
        """The isthmus image the rig's gateway runs."""
        if not self._image:
            self._image = self.kubectl(
                self.clusters[0], "-n", SYSTEM_NAMESPACE, "get", "deployment/isthmus-gateway",
                "-o", "jsonpath={.spec.template.spec.containers[0].image}").stdout.strip()
        return self._image

    def _ensure_client(self, cluster: str) -> None:
        if cluster in self._clients:
            return
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": self._client, "namespace": CLIENT_NAMESPACE,
                         "labels": {"app": "scenario-client"}},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "client", "image": self.image(), "imagePullPolicy": "Never",
                    "command": [PYTHON, "-c", "import time; time.sleep(1e9)"],
                    "securityContext": {"allowPrivilegeEscalation": False,
                                        "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}}}]}}
        self.kubectl(cluster, "apply", "-f", "-", input=json.dumps(pod))
        self.kubectl(cluster, "-n", CLIENT_NAMESPACE, "wait", "--for=condition=Ready",
                     f"pod/{self._client}", "--timeout=120s", timeout=150)
        self._clients.add(cluster)

    def _in_client(self, src: str, *argv: str, timeout: float = 30) -> \
            subprocess.CompletedProcess[str]:
        self._ensure_client(src)
        try:
            return self.kubectl(src, "-n", CLIENT_NAMESPACE, "exec", self._client, "--", *argv,
                                timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 1, "", f"timed out after {timeout:.0f}s")

    # --- lifecycle -------------------------------------------------------------------------
    def up(self) -> None:
        for cluster in self.clusters:
            self._ensure_client(cluster)

    def down(self) -> None:
        for cluster in self._clients:
            self.kubectl(cluster, "-n", CLIENT_NAMESPACE, "delete", "pod", self._client,
                         "--wait=false", "--ignore-not-found", check=False)
        self._clients.clear()

    def mark_failed(self) -> None:
        pass  # the rig stays up until multicluster-e2e/kind/down; logs() prints what matters

    def logs(self) -> str:
        out = []
        for cluster in self.clusters:
            for comp in ("mirror", "gateway", "dns"):
                proc = self.kubectl(cluster, "-n", SYSTEM_NAMESPACE, "logs",
                                    f"deployment/isthmus-{comp}", "--tail=40", check=False)
                out.append(f"--- {cluster} isthmus-{comp}\n{proc.stdout}{proc.stderr}")
        return "\n".join(out)

    # --- traffic ---------------------------------------------------------------------------
    def _demo_call(self, src: str, *args: str) -> CallResult:
        t = time.time()
        return _call_result(self._in_client(src, "isthmus", "demo", "call", "--timeout", "5",
                                            *args), t)

    def call_http(self, src: str, host: str) -> CallResult:
        return self._demo_call(src, "--http", f"http://{host}:{ECHO_PORTS['http']}/")

    def call_grpc(self, src: str, host: str, count: int = 3) -> CallResult:
        return self._demo_call(src, "--grpc", f"{host}:{ECHO_PORTS['grpc']}",
                               "--count", str(count))

    def call_tcp(self, src: str, host: str) -> CallResult:
        return self._demo_call(src, "--tcp", f"{host}:{ECHO_PORTS['tcp']}")

    def resolve(self, src: str, name: str) -> list[str]:
        proc = self._in_client(src, PYTHON, "-c", RESOLVE, name)
        if proc.returncode != 0:
            raise AssertionError(f"{src}: resolve {name}: {proc.stderr.strip()}")
        return list(json.loads(proc.stdout))

    def start_traffic(self, src: str, host: str) -> KindTraffic:
        self._ensure_client(src)
        argv = self._kubectl_argv(src, "-n", CLIENT_NAMESPACE, "exec", "-i", self._client,
                                  "--", PYTHON, "-u", "-c", LOOP,
                                  f"http://{host}:{ECHO_PORTS['http']}/", stdin=True)
        return KindTraffic(argv, self._env)

    # --- workloads -------------------------------------------------------------------------
    def deploy_echo(self, cluster: str, namespace: str, service: str, *,
                    export: bool = True) -> None:
        """A Service ``service`` with the echo workload's three ports, exported, backed by its
        own Deployment (the rig's echo Deployment of workloads/echo.yaml, renamed), so that
        its HTTP answers name ``service``."""
        if namespace != "shop":
            raise Unsupported("the kind rig runs the echo workload in namespace shop only")
        deployment = echo_deployment(cluster, service, self.image())
        svc = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": service, "namespace": namespace,
                         "labels": {"isthmus.io/export": "true"} if export else {}},
            "spec": {"selector": {"app": service}, "ports": [
                {"name": "http", "port": ECHO_PORTS["http"], "targetPort": "http",
                 "appProtocol": "http"},
                {"name": "grpc", "port": ECHO_PORTS["grpc"], "targetPort": "grpc",
                 "appProtocol": "grpc"},
                {"name": "tcp", "port": ECHO_PORTS["tcp"], "targetPort": "tcp"}]}}
        self.kubectl(cluster, "apply", "-f", "-",
                     input=json.dumps({"apiVersion": "v1", "kind": "List",
                                       "items": [deployment, svc]}))
        self.kubectl(cluster, "-n", namespace, "rollout", "status", f"deployment/{service}",
                     "--timeout=180s", timeout=200)

    def set_stateful(self, cluster: str, namespace: str, service: str, replicas: int) -> None:
        """A StatefulSet ``service`` of the echo pod (each answers with its pod name) behind
        an exported headless Service of the same name; called again, it scales."""
        if namespace != "shop":
            raise Unsupported("the kind rig runs the echo workload in namespace shop only")
        pod = echo_deployment(cluster, service, self.image())
        labels = {"app": service}
        stateful = {
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": service, "namespace": namespace, "labels": labels},
            "spec": {"serviceName": service, "replicas": replicas,
                     "podManagementPolicy": "Parallel",
                     "selector": {"matchLabels": labels},
                     "template": pod["spec"]["template"]},
        }
        svc = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": service, "namespace": namespace,
                         "labels": {"isthmus.io/export": "true"}},
            "spec": {"clusterIP": "None", "selector": labels, "ports": [
                {"name": "http", "port": ECHO_PORTS["http"], "targetPort": "http"}]},
        }
        self.kubectl(cluster, "apply", "-f", "-",
                     input=json.dumps({"apiVersion": "v1", "kind": "List",
                                       "items": [svc, stateful]}))
        self.kubectl(cluster, "-n", namespace, "rollout", "status", f"statefulset/{service}",
                     "--timeout=180s", timeout=200)

    def remove_stateful(self, cluster: str, namespace: str, service: str) -> None:
        self.kubectl(cluster, "-n", namespace, "delete", "statefulset,service", service,
                     "--ignore-not-found", "--wait=true", timeout=200)

    def export(self, cluster: str, namespace: str, service: str) -> None:
        self.kubectl(cluster, "-n", namespace, "label", "service", service,
                     "isthmus.io/export=true", "--overwrite")

    def unexport(self, cluster: str, namespace: str, service: str) -> None:
        self.kubectl(cluster, "-n", namespace, "label", "service", service, "isthmus.io/export-")

    # --- faults and operations -------------------------------------------------------------
    def _scale(self, cluster: str, component: str, replicas: int) -> None:
        deploy = f"deployment/isthmus-{component}"
        self.kubectl(cluster, "-n", SYSTEM_NAMESPACE, "scale", deploy, f"--replicas={replicas}")
        if replicas == 0:
            self.kubectl(cluster, "-n", SYSTEM_NAMESPACE, "wait", "--for=delete", "pod",
                         "-l", f"app.kubernetes.io/name=isthmus-{component}", "--timeout=90s",
                         timeout=120, check=False)
        else:
            self.kubectl(cluster, "-n", SYSTEM_NAMESPACE, "rollout", "status", deploy,
                         "--timeout=180s", timeout=200)

    def _kill(self, cluster: str, component: str) -> None:
        replicas = self.kubectl(cluster, "-n", SYSTEM_NAMESPACE, "get",
                                f"deployment/isthmus-{component}", "-o",
                                "jsonpath={.spec.replicas}").stdout.strip()
        self._replicas.setdefault((cluster, component), int(replicas or "1"))
        self._scale(cluster, component, 0)

    def _restore(self, cluster: str, component: str) -> None:
        self._scale(cluster, component, self._replicas.pop((cluster, component), 1))

    def kill_gateway(self, cluster: str) -> None:
        self._kill(cluster, "gateway")

    def restore_gateway(self, cluster: str) -> None:
        self._restore(cluster, "gateway")

    def kill_mirror(self, cluster: str) -> None:
        self._kill(cluster, "mirror")

    def restore_mirror(self, cluster: str) -> None:
        self._restore(cluster, "mirror")

    def _node(self, cluster: str, *argv: str, check: bool = True) -> str:
        proc = subprocess.run(["docker", "exec", f"{PREFIX}{cluster}-control-plane", *argv],
                              capture_output=True, text=True, env=self._env, timeout=60,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{cluster}: {' '.join(argv)}: {proc.stderr.strip()}")
        return proc.stdout

    def stop_apiserver(self, cluster: str) -> None:
        """The kubelet stops the static pod whose manifest leaves its folder. (Pausing the
        node container would freeze the gateway with it; only the API server stops here.)"""
        self._node(cluster, "mv", "/etc/kubernetes/manifests/kube-apiserver.yaml",
                   "/etc/kubernetes/kube-apiserver.yaml.stopped")
        deadline = time.monotonic() + 120
        while self._node(cluster, "crictl", "ps", "-q", "--name", "kube-apiserver").strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"{cluster}: kube-apiserver still runs after 120s")
            time.sleep(1)

    def start_apiserver(self, cluster: str) -> None:
        self._node(cluster, "mv", "/etc/kubernetes/kube-apiserver.yaml.stopped",
                   "/etc/kubernetes/manifests/kube-apiserver.yaml")
        deadline = time.monotonic() + 180
        while self.kubectl(cluster, "get", "--raw", "/readyz", check=False,
                           timeout=30).returncode != 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"{cluster}: kube-apiserver not ready 180s after restart")
            time.sleep(1)

    def rotate_cluster_ca(self, cluster: str) -> None:
        self._isthmus("trust", "cluster-ca", "--cluster", cluster,
                      "--root", str(_state() / "root"), *self._target(cluster))

    def served_certificate(self, cluster: str) -> x509.Certificate | None:
        """The leaf ``cluster``'s gateway presents to a peer, read from a pod in another
        cluster at the gateway's NodePort (how peer gateways dial it)."""
        node_ip = self.kubectl(cluster, "get", "nodes", "-o", "jsonpath={.items[0].status."
                               "addresses[?(@.type==\"InternalIP\")].address}").stdout.strip()
        port = self.kubectl(cluster, "-n", SYSTEM_NAMESPACE, "get", "service",
                            "isthmus-gateway", "-o",
                            "jsonpath={.spec.ports[0].nodePort}").stdout.strip()
        src = next(c for c in self.clusters if c != cluster)
        proc = self._in_client(src, PYTHON, "-c", PEER_CERT, node_ip, port)
        if proc.returncode != 0 or not proc.stdout.strip():
            return None
        return x509.load_der_x509_certificate(base64.b64decode(proc.stdout.strip()))

    def get_secret(self, cluster: str, namespace: str, name: str) -> dict[str, Any]:
        secret = self.get(cluster, f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if secret is None:
            raise AssertionError(f"{cluster}: Secret {namespace}/{name} is missing")
        return secret

    def put_secret_data(self, cluster: str, namespace: str, name: str,
                        data: dict[str, str]) -> None:
        self.kubectl(cluster, "-n", namespace, "patch", "secret", name, "--type", "merge",
                     "-p", json.dumps({"data": data}))

    def join(self, clusters: list[str]) -> str:
        args = ["join", "--kubeconfig", self._kubeconfig]
        for name in clusters:
            args += ["--context", f"kind-{PREFIX}{name}"]
        return self._isthmus(*args).stdout

    def unjoin(self, clusters: list[str]) -> str:
        args = ["unjoin", "--kubeconfig", self._kubeconfig]
        for name in clusters:
            args += ["--context", f"kind-{PREFIX}{name}"]
        return self._isthmus(*args).stdout

    def upgrade(self, tag: str) -> None:
        """The rig's image under a new tag, loaded into every node, and every isthmus
        Deployment rolled to it (what an operator does with a new release)."""
        image = self.image()
        new = f"{image.rsplit(':', 1)[0]}:{tag}"
        self._docker("tag", image, new)
        kind = subprocess.run(
            ["bash", "-c", f'source "{KIND_DIR}/env.sh"; engine_detect >/dev/null 2>&1; '
                           'for c in "${@:2}"; do kind_cli load docker-image "$1" '
                           '--name "$PREFIX$c" || exit 1; done', "-", new, *self.clusters],
            capture_output=True, text=True, env=self._env, timeout=900, check=False)
        if kind.returncode != 0:
            raise AssertionError(f"kind load docker-image {new}: {kind.stderr.strip()}")
        for cluster in self.clusters:
            deploys = self.kubectl(cluster, "-n", SYSTEM_NAMESPACE, "get", "deployments", "-o",
                                   "name").stdout.split()
            for deploy in deploys:
                self.kubectl(cluster, "-n", SYSTEM_NAMESPACE, "set", "image", deploy,
                             f"*={new}")
        for cluster in self.clusters:
            for deploy in self.kubectl(cluster, "-n", SYSTEM_NAMESPACE, "get", "deployments",
                                       "-o", "name").stdout.split():
                self.kubectl(cluster, "-n", SYSTEM_NAMESPACE, "rollout", "status", deploy,
                             "--timeout=300s", timeout=320)
        self._image = new

    def has_coredns(self, cluster: str) -> bool:
        return self.get(cluster, "/api/v1/namespaces/kube-system/configmaps/coredns") is not None

    def _corefile(self, cluster: str) -> str:
        cm = self.get(cluster, "/api/v1/namespaces/kube-system/configmaps/coredns") or {}
        return str((cm.get("data") or {}).get("Corefile", ""))

    def _put_corefile(self, cluster: str, text: str) -> None:
        self.kubectl(cluster, "-n", "kube-system", "patch", "configmap", "coredns", "--type",
                     "merge", "-p", json.dumps({"data": {"Corefile": text}}))

    def remove_stub_zone(self, cluster: str) -> None:
        from isthmus.dns.coredns import parse_server_blocks

        text = self._corefile(cluster)
        self._stub_backup.setdefault(cluster, text)
        for block in reversed(parse_server_blocks(text)):
            if any(k.split(":", 1)[0].rstrip(".").lower() == "global" for k in block.keys):
                text = text[:block.start] + text[block.end:].removeprefix("\n")
        self._put_corefile(cluster, text)

    def restore_stub_zone(self, cluster: str) -> None:
        if cluster in self._stub_backup:
            self._put_corefile(cluster, self._stub_backup.pop(cluster))

    # --- reading state ---------------------------------------------------------------------
    def apply(self, cluster: str, obj: dict[str, Any]) -> None:
        self.kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", "-",
                     input=json.dumps(obj))

    def delete(self, cluster: str, path: str) -> None:
        proc = self.kubectl(cluster, "delete", "--raw", path, check=False)
        if proc.returncode != 0 and "NotFound" not in proc.stderr:
            raise AssertionError(f"{cluster}: DELETE {path}: {proc.stderr.strip()[:300]}")

    def get(self, cluster: str, path: str) -> dict[str, Any] | None:
        proc = self.kubectl(cluster, "get", "--raw", path, check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr or "not found" in proc.stderr:
                return None
            raise AssertionError(f"{cluster}: GET {path}: {proc.stderr.strip()[:300]}")
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    def isthmus_objects(self, cluster: str) -> list[dict[str, Any]]:
        """Every object of every listable resource whose labels mention isthmus."""
        names = self.kubectl(cluster, "api-resources", "--verbs=list", "-o", "name").stdout.split()
        script = "".join(f'echo "### {n}"; kubectl --kubeconfig /etc/kubernetes/admin.conf '
                         f'get {n} -A -o json 2>/dev/null; ' for n in names)
        out = self._node(cluster, "sh", "-c", script, check=False)
        found = []
        for chunk in out.split("### ")[1:]:
            name, _, body = chunk.partition("\n")
            if not body.strip():
                continue
            found += isthmus_labelled(name.split(".", 1)[0], json.loads(body).get("items", []))
        return found

    def check(self, cluster: str) -> CheckResult:
        proc = self._isthmus("check", *self._target(cluster), check=False)
        return CheckResult(proc.returncode, proc.stdout + proc.stderr)

    def status(self, cluster: str) -> str:
        return self._isthmus("status", *self._target(cluster)).stdout
