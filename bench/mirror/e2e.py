"""End-to-end convergence and failover on the local rig (docs/benchmarks.md, "End to end").

    .venv/bin/python bench/mirror/e2e.py [--sizes 10,100] [--failover-seconds 20]   # as root

Three clusters (west, east, central) on the rig: real control planes in network namespaces,
isthmus' mirror, gateway and DNS as processes, linked with ``isthmus join``.

Convergence: N Services in east, each with a ready endpoint, are labelled for export in a
burst. t0 is the moment each label request was sent; t1 is measured from inside west's
network namespace by a prober that asks glibc (``getaddrinfo``, which reaches isthmus-dns
through the namespace's resolv.conf) for ``s<i>.conv.global`` and then makes an HTTP GET to
it (mirror VIP -> kube-proxy -> west gateway -> mTLS -> east gateway -> workload). Reported:
p50/p99/max of t1(DNS) - t0 and t1(HTTP) - t0. Deletes: t0 each Service is deleted, t1 its
name stops resolving in west.

Failover: ``users.shop`` is exported by east and central. A load of new connections (one
HTTP GET on a new connection every 20 ms) runs from west; east's gateway is killed
(SIGKILL) mid-run. Reported: failed requests, the time from the kill to the last failure
("until every new connection succeeds again"), and which clusters answered before and after.

Each part is reported: GlobalService with a VIP in west's API (polled every 50 ms), DNS,
HTTP.

Memory: RSS of every isthmus process at the end. Results go to build/bench-mirror-e2e.json.
A benchmark, not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "conv"


# --- the prober: runs inside west's namespace (this file, re-invoked with --probe) ----------

def probe_main(mode: str, names: list[str], seconds: float) -> None:
    """Print one JSON line per event; stdlib only, so it measures glibc DNS and plain HTTP."""
    import http.client
    import socket

    def http_get(host: str, timeout: float = 2.0) -> str | None:
        conn = http.client.HTTPConnection(host, 80, timeout=timeout)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read()
            return json.loads(body)["cluster"] if resp.status == 200 else None
        except (OSError, ValueError, KeyError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def resolves(host: str) -> bool:
        try:
            socket.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM)
            return True
        except socket.gaierror:
            return False

    deadline = time.time() + seconds
    if mode == "load":
        host = names[0]
        while time.time() < deadline:
            start = time.time()
            cluster = http_get(host)
            print(json.dumps({"t": start, "ok": cluster is not None, "cluster": cluster}),
                  flush=True)
            time.sleep(max(0.0, 0.02 - (time.time() - start)))
        return

    # One thread per name (up to 128 at a time), each probing on its own: a lookup that stalls
    # (a lost datagram costs glibc its 1 s timeout) delays only its own name.
    import threading

    slow: list[float] = []
    lock = threading.Lock()

    def emit(**event: Any) -> None:
        with lock:
            print(json.dumps(event), flush=True)

    def watch(name: str) -> None:
        resolved = False
        while time.time() < deadline:
            started = time.time()
            ok = resolves(name)
            took = time.time() - started
            if took > 0.5:
                with lock:
                    slow.append(took)
            if mode == "gone" and not ok:
                emit(name=name, event="gone", t=time.time())
                return
            if mode == "up" and ok and not resolved:
                resolved = True
                emit(name=name, event="dns", t=time.time())
            # A short timeout: until kube-proxy programs the new VIP a SYN goes unanswered,
            # and a long wait would hide when the path starts to work.
            if mode == "up" and resolved and http_get(name, timeout=0.3):
                emit(name=name, event="http", t=time.time())
                return
            time.sleep(0.01)

    emit(ready=time.time())
    with concurrent.futures.ThreadPoolExecutor(min(128, len(names))) as pool:
        list(pool.map(watch, names))
    emit(slow_lookups=len(slow), slowest_s=max(slow, default=0.0))


# --- the driver ---------------------------------------------------------------------------------

def pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {"p50": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
            "max": ordered[-1], "n": len(ordered)}


def start_probe(rig: Any, cluster: str, mode: str, names: list[str],
                seconds: float) -> subprocess.Popen[str]:
    argv = [*rig.clusters[cluster].net.exec_prefix(), sys.executable, str(Path(__file__)),
            "--probe", mode, "--seconds", str(seconds), *names]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    if mode != "load":
        assert proc.stdout is not None
        json.loads(proc.stdout.readline())  # {"ready": ...}: imports done, first round next
    return proc


def read_events(proc: subprocess.Popen[str], timeout: float) -> list[dict[str, Any]]:
    out, _ = proc.communicate(timeout=timeout)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class ApiWatcher:
    """Polls west's API (every 50 ms) for GlobalServices of ``NAMESPACE`` with a VIP: the
    mirror's part of t1, apart from DNS and the data path."""

    def __init__(self, rig: Any, cluster: str) -> None:
        import threading

        self.cp = rig.clusters[cluster].cp
        self.first_vip: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        path = f"/apis/isthmus.io/v1alpha1/namespaces/{NAMESPACE}/globalservices"
        while not self.stop.wait(0.05):
            status, data = self.cp.admin_request("GET", path)
            if status != 200:
                continue
            now = time.time()
            for item in json.loads(data).get("items", []):
                host = f"{item['metadata']['name']}.{NAMESPACE}.global"
                if (item.get("status") or {}).get("vips") and host not in self.first_vip:
                    self.first_vip[host] = now

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def convergence(rig: Any, n: int, address: str, timeout: float) -> dict[str, Any]:
    names = [f"s{n}x{i}" for i in range(n)]
    for name in names:
        rig.add_service("east", NAMESPACE, name, address, export=False)
    hosts = [f"{name}.{NAMESPACE}.global" for name in names]
    probe = start_probe(rig, "west", "up", hosts, timeout)
    t0: dict[str, float] = {}

    def label(name: str) -> None:
        t0[f"{name}.{NAMESPACE}.global"] = time.time()
        rig.set_export("east", NAMESPACE, name, True)

    watcher = ApiWatcher(rig, "west")
    burst_start = time.time()
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(label, names))
    burst_sent = time.time() - burst_start
    events = read_events(probe, timeout + 30)
    watcher.close()
    probe_rounds = next((e for e in events if "slow_lookups" in e), {})
    api = [t - t0[h] for h, t in watcher.first_vip.items() if h in t0]
    dns = [e["t"] - t0[e["name"]] for e in events if e.get("event") == "dns"]
    http = [e["t"] - t0[e["name"]] for e in events if e.get("event") == "http"]

    probe = start_probe(rig, "west", "gone", hosts, timeout)
    c = rig.clusters["east"]
    gone0: dict[str, float] = {}

    def delete(name: str) -> None:
        gone0[f"{name}.{NAMESPACE}.global"] = time.time()
        c.cp.admin_request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/services/{name}")

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(pool.map(delete, names))
    gone = [e["t"] - gone0[e["name"]] for e in read_events(probe, timeout + 30)
            if e.get("event") == "gone"]
    row = {"n": n, "label_burst_s": burst_sent, "globalservice_vip": pcts(api),
           "dns": pcts(dns), "http": pcts(http), "probe": probe_rounds,
           "delete_dns": pcts(gone), "missing_http": n - len(http), "missing_gone": n - len(gone)}
    print(json.dumps(row), flush=True)
    return row


def failover(rig: Any, seconds: float) -> dict[str, Any]:
    rig.ensure_namespace("shop")
    for cluster in ("east", "central"):
        address = rig.start_workload(cluster, "users")
        rig.add_service(cluster, "shop", "users", address)
    url = "http://users.shop.global/"
    seen: set[str] = set()
    deadline = time.monotonic() + 120
    while seen != {"east", "central"} and time.monotonic() < deadline:
        with contextlib.suppress(ValueError, KeyError):
            seen.add(json.loads(rig.wait_call("west", url, timeout=60))["cluster"])
    load = start_probe(rig, "west", "load", ["users.shop.global"], seconds)
    time.sleep(seconds / 4)
    gateway = rig.clusters["east"].procs["gateway"]
    assert gateway.popen is not None
    killed_at = time.time()
    os.killpg(gateway.popen.pid, signal.SIGKILL)
    events = read_events(load, seconds + 30)
    before = [e for e in events if e["t"] < killed_at]
    after = [e for e in events if e["t"] >= killed_at]
    failures = [e for e in after if not e["ok"]]
    row = {
        "requests": len(events), "before_kill": len(before),
        "failed_before_kill": sum(1 for e in before if not e["ok"]),
        "failed_after_kill": len(failures),
        "until_all_succeed_s": (failures[-1]["t"] - killed_at) if failures else 0.0,
        "clusters_before": sorted({e["cluster"] for e in before if e["ok"]}),
        "clusters_after": sorted({e["cluster"] for e in after if e["ok"]}),
        "first_success_after_kill_s": next(
            (e["t"] - killed_at for e in after if e["ok"]), None),
    }
    print(json.dumps(row), flush=True)
    return row


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe", choices=["up", "gone", "load"], help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=120.0, help=argparse.SUPPRESS)
    parser.add_argument("names", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="10,100")
    parser.add_argument("--timeout", type=float, default=180.0, help="per burst")
    parser.add_argument("--failover-seconds", type=float, default=20.0)
    parser.add_argument("--out", default=str(ROOT / "build" / "bench-mirror-e2e.json"))
    args = parser.parse_args()
    if args.probe:
        probe_main(args.probe, args.names, args.seconds)
        return 0

    from isthmus.devcluster.controlplane import ControlPlaneError
    from isthmus.devcluster.rig import Rig, needs_root
    from isthmus.logging import configure

    configure("warning")
    reason = needs_root()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="isthmus-bench-e2e-"))
    rig = Rig(["west", "east", "central"], workdir, prefix="isthbench",
              wan_cidr="10.252.0.0/24")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        rig.up()
        rig.ensure_namespace(NAMESPACE)
        address = rig.start_workload("east", "conv")
        results["convergence"] = [convergence(rig, int(n), address, args.timeout)
                                  for n in args.sizes.split(",")]
        results["failover"] = failover(rig, args.failover_seconds)
        results["rss_mb"] = {
            f"{c.name}/{p.name}": round(rss_mb(p.popen.pid), 1)
            for c in rig.clusters.values() for p in c.procs.values()
            if p.popen is not None and p.alive() and not p.name.startswith("demo")}
        results["loadavg_after"] = os.getloadavg()
        print(json.dumps(results["rss_mb"]), flush=True)
    except ControlPlaneError as exc:
        print(f"FAILED: {exc}\n{rig.logs()}", file=sys.stderr)
        return 1
    finally:
        rig.down()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
