"""What a scenario may do to a rig: the ``ClusterSet`` protocol, written once for both rigs.

A scenario only talks to this protocol. The local rig (network namespaces, processes) and the
kind rig (pods, kubectl) each implement it; nothing in a test knows which one runs.

The times below are the documented ones (docs/gateway.md, docs/mirror.md, docs/dns.md,
docs/operations.md); ``docs/scenarios.md`` says where each comes from. Scenarios wait for a
condition with a generous timeout on top (a shared 2-core machine is slow), and assert on
what happened after the documented time, never on how fast it happened.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from cryptography import x509

# --- documented times (seconds) -----------------------------------------------------------
# gateway.md: a connect, handshake or tunnel failure moves on to the next exporting cluster
# within the same client connection; a dial gives up after --connect-timeout (5 s).
FAILOVER_SECONDS = 5.0
# gateway.md: on SIGTERM a gateway keeps serving for --shutdown-delay (5 s) before it drains;
# a pod scaled away still answers that long (a crashed process does not).
GATEWAY_SHUTDOWN_SECONDS = 5.0
# gateway.md: an ejected peer is probed every --probe-interval (2 s +- 20 %) and readmitted
# at the first success; the catalog stream through it reconnects and marks it Fresh again.
PROBE_INTERVAL_SECONDS = 2.4
# mirror.md: a peer is unreachable after a stream error or --idle-timeout-seconds (35 s) of
# silence; its leader stops when the Lease (15 s) cannot be renewed.
STALE_SECONDS = 35.0 + 15.0
# operations.md: the mirror notices a new cluster CA within its 30 s poll and re-issues at
# once; gateway.md: the gateway reloads its Secret every --tls-reload-interval (2 s).
CA_ROTATION_SECONDS = 30.0 + 2.0
LEAF_RELOAD_SECONDS = 2.0
# reliability.md: an unexported Service refuses new streams within one sync of the API
# feed; dns.md: answers live 5 s (--ttl).
UNEXPORT_SECONDS = 5.0

# How long a scenario waits for a documented condition on a busy shared machine.
SLACK_SECONDS = 90.0

ECHO_PORTS = {"http": 80, "grpc": 9090, "tcp": 9000}


class RigUnavailable(Exception):
    """This rig cannot run here; the message says why (the scenario is skipped with it)."""


class Unsupported(Exception):
    """This rig cannot do this step (for example: roll an image on the local rig)."""


@dataclass(frozen=True)
class CallResult:
    ok: bool
    cluster: str | None = None  # which cluster answered (HTTP and gRPC say it)
    detail: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    t: float = 0.0  # when the call started (time.time())


@dataclass(frozen=True)
class CheckResult:
    code: int  # 0 ok, 3 warnings, 1 errors
    output: str


class Traffic(Protocol):
    """New connections made in a loop from one cluster until ``stop``."""

    def results(self) -> list[CallResult]: ...

    def stop(self) -> list[CallResult]: ...


class TrafficReader:
    """A client loop's output, read as it comes: one JSON line per call
    (``{"ok", "cluster", "error", "t"}``). How the loop is stopped is the rig's: ``_end``."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._proc = proc
        self._lock = threading.Lock()
        self._results: list[CallResult] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith("{"):
                data = json.loads(line)
                with self._lock:
                    self._results.append(CallResult(
                        bool(data.get("ok")), data.get("cluster"), data,
                        str(data.get("error", "")), float(data.get("t", time.time()))))

    def results(self) -> list[CallResult]:
        with self._lock:
            return list(self._results)

    def _end(self) -> None:
        raise NotImplementedError

    def stop(self) -> list[CallResult]:
        self._end()
        self._reader.join(10)
        return self.results()


class ClusterSet(Protocol):
    """Linked clusters, and what an operator, a node or a workload can do in them."""

    rig: str  # "local" or "kind"
    clusters: list[str]

    # traffic, from a client inside ``src`` (a process in its namespace, or a pod)
    def call_http(self, src: str, host: str) -> CallResult: ...
    def call_grpc(self, src: str, host: str, count: int = 3) -> CallResult: ...
    def call_tcp(self, src: str, host: str) -> CallResult: ...
    def resolve(self, src: str, name: str) -> list[str]: ...
    def start_traffic(self, src: str, host: str) -> Traffic: ...

    # workloads and exports
    def deploy_echo(self, cluster: str, namespace: str, service: str, *,
                    export: bool = True) -> None: ...
    def set_stateful(self, cluster: str, namespace: str, service: str,
                     replicas: int) -> None: ...
    def remove_stateful(self, cluster: str, namespace: str, service: str) -> None: ...
    def export(self, cluster: str, namespace: str, service: str) -> None: ...
    def unexport(self, cluster: str, namespace: str, service: str) -> None: ...

    # faults and operations
    def kill_gateway(self, cluster: str) -> None: ...
    def restore_gateway(self, cluster: str) -> None: ...
    def kill_mirror(self, cluster: str) -> None: ...
    def restore_mirror(self, cluster: str) -> None: ...
    def stop_apiserver(self, cluster: str) -> None: ...
    def start_apiserver(self, cluster: str) -> None: ...
    def rotate_cluster_ca(self, cluster: str) -> None: ...
    def served_certificate(self, cluster: str) -> x509.Certificate | None: ...
    def get_secret(self, cluster: str, namespace: str, name: str) -> dict[str, Any]: ...
    def put_secret_data(self, cluster: str, namespace: str, name: str,
                        data: dict[str, str]) -> None: ...
    def join(self, clusters: list[str]) -> str: ...
    def unjoin(self, clusters: list[str]) -> str: ...
    def upgrade(self, tag: str) -> None: ...
    def has_coredns(self, cluster: str) -> bool: ...
    def remove_stub_zone(self, cluster: str) -> None: ...
    def restore_stub_zone(self, cluster: str) -> None: ...

    # any object, as an operator's kubectl would
    def apply(self, cluster: str, obj: dict[str, Any]) -> None: ...
    def delete(self, cluster: str, path: str) -> None: ...

    # reading state
    def get(self, cluster: str, path: str) -> dict[str, Any] | None: ...
    def isthmus_objects(self, cluster: str) -> list[dict[str, Any]]: ...
    def check(self, cluster: str) -> CheckResult: ...
    def status(self, cluster: str) -> str: ...
    def logs(self) -> str: ...


T = TypeVar("T")


def isthmus_labelled(resource: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The objects of one resource whose labels mention isthmus, as the unjoin scenario
    compares them (resource, namespace, name, labels)."""
    found = []
    for item in items:
        meta = item.get("metadata") or {}
        labels = meta.get("labels") or {}
        if any("isthmus" in k or "isthmus" in str(v) for k, v in labels.items()):
            found.append({"resource": resource, "namespace": meta.get("namespace", ""),
                          "name": meta.get("name", ""), "labels": labels})
    return found


def api_path(obj: dict[str, Any]) -> str:
    """The API path of a namespaced object, from its apiVersion, kind and metadata (the
    plural is the lower-cased kind plus "s", which holds for every kind the scenarios use)."""
    group_version = obj["apiVersion"]
    prefix = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    meta = obj["metadata"]
    return (f"{prefix}/namespaces/{meta['namespace']}/{obj['kind'].lower()}s/"
            f"{meta['name']}")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = SLACK_SECONDS,
             interval: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after
    ``timeout``. A timeout waiting for a condition, not a timing assertion."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} "
                                 f"(last: {last!r})")
        time.sleep(interval)


def first(what: str, produce: Callable[[], T], accept: Callable[[T], bool],
          timeout: float = SLACK_SECONDS) -> T:
    """The first result of ``produce`` that ``accept`` takes (see ``wait_for``)."""
    holder: list[T] = []

    def probe() -> bool:
        holder[:] = [produce()]
        return accept(holder[0])

    wait_for(what, probe, timeout)
    return holder[0]


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    """The status condition ``kind`` of a Kubernetes object, if any."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond  # type: ignore[no-any-return]
    return None
