"""Gateway benchmark driver: isthmus vs nginx-stream vs haproxy pairs, same certificates.

Layout (all loopback): load generators and backends on core 0, every proxy on core 1.

    client ─▶ west proxy (plain in) ══ mTLS 1.3, ECDSA P-256, one CA ══▶ east proxy ─▶ backend
    direct:   client ─▶ backend                                         (the floor)

Backends: nginx (http, a 1 KiB file) and an iperf3 server. Each figure is the median of
``--runs`` runs; the spread (min–max) is kept in the JSON. Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ISTHMUS = str(ROOT / ".venv" / "bin" / "isthmus")
CORE_LOAD, CORE_SUT = "0", "1"

B_HTTP, B_IPERF = 18080, 15201
PORTS = {  # name: (east inbound, west http, west iperf)
    "isthmus": (18443, 19080, 19201),
    "nginx": (28443, 29080, 29201),
    "haproxy": (38443, 39080, 39201),
}


def sh(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kw)


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


@dataclass
class Procs:
    items: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, core: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        out = open(log, "ab")  # noqa: SIM115
        p = subprocess.Popen(["taskset", "-c", core, *argv], stdout=out, stderr=out,
                             start_new_session=True)
        self.items.append(p)
        return p

    def stop(self) -> None:
        for p in self.items:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.items:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.items.clear()


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants (nginx workers)."""
    out = [pid]
    for child in sh("pgrep", "-P", str(pid)).stdout.split():
        out += tree_pids(int(child))
    return out


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


# --- certificates ------------------------------------------------------------------------------
def make_pki(d: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from isthmus.trust import Issuer, TrustBundle, create_cluster_ca, create_root

    root = create_root("bench.example")
    (d / "roots.pem").write_bytes(TrustBundle.of([root.cert]).to_pem())
    for cluster, names in (("west", ()), ("east", ("http.east", "iperf.east"))):
        leaf = Issuer(create_cluster_ca(root, cluster)).issue(
            "isthmus-system", "isthmus-gateway", dns_names=names)
        (d / f"{cluster}.crt").write_bytes(leaf.chain_pem())
        (d / f"{cluster}.key").write_bytes(leaf.key_pem())
        (d / f"{cluster}.pem").write_bytes(leaf.chain_pem() + leaf.key_pem())  # haproxy


# --- configurations ----------------------------------------------------------------------------
def nginx_backend_conf(d: Path) -> Path:
    www = d / "www"
    www.mkdir(exist_ok=True)
    (www / "1k").write_bytes(b"x" * 1024)
    for p in (d, www):
        p.chmod(0o755)  # nginx workers run unprivileged
    (www / "1k").chmod(0o644)
    conf = d / "backend.conf"
    conf.write_text(f"""
daemon off; worker_processes 1; pid {d}/backend.pid; error_log {d}/backend.err warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 19000; }}
http {{
  access_log off; keepalive_requests 10000000; keepalive_timeout 300s;
  server {{ listen 127.0.0.1:{B_HTTP} backlog=8192; location / {{ root {www}; }} }}
}}
""")
    return conf


def nginx_pair_confs(d: Path) -> tuple[Path, Path]:
    east_in, west_http, west_iperf = PORTS["nginx"]
    head = ("load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
            "daemon off; worker_processes 1; worker_rlimit_nofile 20000;\n"
            "events { worker_connections 19000; }\n")
    east = d / "nginx-east.conf"
    east.write_text(head + f"""pid {d}/ne.pid; error_log {d}/ne.err warn;
stream {{
  map $ssl_server_name $upstream {{ http.east 127.0.0.1:{B_HTTP}; iperf.east 127.0.0.1:{B_IPERF}; }}
  server {{
    listen 127.0.0.1:{east_in} ssl backlog=8192;
    ssl_certificate {d}/east.crt; ssl_certificate_key {d}/east.key;
    ssl_protocols TLSv1.3; ssl_verify_client on; ssl_verify_depth 3;
    ssl_client_certificate {d}/roots.pem;
    ssl_session_cache shared:E:20m; ssl_session_tickets on;
    proxy_pass $upstream;
  }}
}}
""")
    west = d / "nginx-west.conf"
    servers = ""
    for port, sni in ((west_http, "http.east"), (west_iperf, "iperf.east")):
        servers += f"""
  server {{
    listen 127.0.0.1:{port} backlog=8192;
    proxy_pass 127.0.0.1:{east_in};
    proxy_ssl on; proxy_ssl_protocols TLSv1.3;
    proxy_ssl_certificate {d}/west.crt; proxy_ssl_certificate_key {d}/west.key;
    proxy_ssl_trusted_certificate {d}/roots.pem; proxy_ssl_verify on; proxy_ssl_verify_depth 3;
    proxy_ssl_server_name on; proxy_ssl_name {sni}; proxy_ssl_session_reuse on;
  }}"""
    west.write_text(head + f"pid {d}/nw.pid; error_log {d}/nw.err warn;\nstream {{{servers}\n}}\n")
    return west, east


def haproxy_confs(d: Path) -> tuple[Path, Path]:
    east_in, west_http, west_iperf = PORTS["haproxy"]
    common = """global
  maxconn 9000
  nbthread 1
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
defaults
  mode tcp
  timeout connect 5s
  timeout client 300s
  timeout server 300s
"""
    east = d / "haproxy-east.cfg"
    east.write_text(common + f"""frontend east
  bind 127.0.0.1:{east_in} ssl crt {d}/east.pem ca-file {d}/roots.pem verify required
  use_backend be_http if {{ ssl_fc_sni http.east }}
  use_backend be_iperf if {{ ssl_fc_sni iperf.east }}
backend be_http
  server b 127.0.0.1:{B_HTTP}
backend be_iperf
  server b 127.0.0.1:{B_IPERF}
""")
    west = d / "haproxy-west.cfg"
    text = common
    verify = "verify required"
    for port, sni, name in ((west_http, "http.east", "http"), (west_iperf, "iperf.east", "iperf")):
        text += f"""frontend f_{name}
  bind 127.0.0.1:{port}
  default_backend b_{name}
backend b_{name}
  server e 127.0.0.1:{east_in} ssl crt {d}/west.pem ca-file {d}/roots.pem {verify} sni str({sni})
"""
    west.write_text(text)
    return west, east


def isthmus_routes(d: Path) -> tuple[Path, Path]:
    east_in, west_http, west_iperf = PORTS["isthmus"]

    def svc(name: str, port: int) -> dict[str, Any]:
        return {"metadata": {"namespace": "bench", "name": name,
                             "labels": {"isthmus.io/export": "true"}},
                "spec": {"ports": [{"name": "p", "port": port}]}}

    def eps(name: str, port: int) -> dict[str, Any]:
        return {"metadata": {"namespace": "bench", "name": name,
                             "labels": {"kubernetes.io/service-name": name}},
                "endpoints": [{"addresses": ["127.0.0.1"]}],
                "ports": [{"name": "p", "port": port}]}

    def link(cluster: str, port: int) -> dict[str, Any]:
        return {"metadata": {"name": cluster},
                "spec": {"cluster": cluster, "trustDomain": "bench.example",
                         "gatewayAddresses": [{"host": "127.0.0.1", "port": port}]}}

    def gs(name: str, port: int, outbound: int) -> dict[str, Any]:
        return {"metadata": {"namespace": "bench", "name": name},
                "spec": {"hosts": [f"{name}.bench.global"],
                         "ports": [{"name": "p", "port": port, "outboundPort": outbound}],
                         "endpoints": [{"cluster": "east", "address": "127.0.0.1",
                                        "port": east_in}]}}

    east = d / "isthmus-east.yaml"
    east.write_text(yaml.safe_dump({
        "services": [svc("http", 80), svc("iperf", 5201)],
        "endpointSlices": [eps("http", B_HTTP), eps("iperf", B_IPERF)],
        "links": [link("west", 1)]}))
    west = d / "isthmus-west.yaml"
    west.write_text(yaml.safe_dump({
        "links": [link("east", east_in)],
        "globalServices": [gs("http", 80, west_http), gs("iperf", 5201, west_iperf)]}))
    return west, east


# --- paths ---------------------------------------------------------------------------------------
def start_path(name: str, d: Path, procs: Procs, workers: int) -> list[int]:
    """Start a pair; return the pids to account CPU and memory to."""
    east_in, west_http, west_iperf = PORTS[name]
    started: list[subprocess.Popen[bytes]] = []
    if name == "nginx":
        west, east = nginx_pair_confs(d)
        for conf, log in ((east, "ne.log"), (west, "nw.log")):
            started.append(procs.start(CORE_SUT, ["nginx", "-c", str(conf), "-p", str(d)], d / log))
    elif name == "haproxy":
        west, east = haproxy_confs(d)
        started.append(procs.start(CORE_SUT, ["haproxy", "-db", "-f", str(east)], d / "he.log"))
        started.append(procs.start(CORE_SUT, ["haproxy", "-db", "-f", str(west)], d / "hw.log"))
    else:
        west, east = isthmus_routes(d)
        common = ["--no-access-log", "--log-level", "warning", "--workers", str(workers),
                  "--pool-max-idle", "4096", "--pool-min-idle", "16", "--max-connections",
                  "30000", "--trust-bundle", str(d / "roots.pem")]
        started.append(procs.start(CORE_SUT, [
            ISTHMUS, "gateway", "--cluster", "east", "--routes-file", str(east),
            "--inbound-address", f"127.0.0.1:{east_in}", "--admin-address", "127.0.0.1:18021",
            "--backend-allow-loopback",  # every backend of the rig is on loopback
            "--tls-cert", str(d / "east.crt"), "--tls-key", str(d / "east.key"), *common],
            d / "ie.log"))
        started.append(procs.start(CORE_SUT, [
            ISTHMUS, "gateway", "--cluster", "west", "--routes-file", str(west),
            "--inbound-address", "127.0.0.1:18444", "--outbound-host", "127.0.0.1",
            "--admin-address", "127.0.0.1:18022",
            "--tls-cert", str(d / "west.crt"), "--tls-key", str(d / "west.key"), *common],
            d / "iw.log"))
    for port in (east_in, west_http, west_iperf):
        wait_port(port)
    time.sleep(1.0)
    pids: list[int] = []
    for p in started:
        pids += tree_pids(p.pid)
    return [p for p in pids if Path(f"/proc/{p}/comm").exists()
            and Path(f"/proc/{p}/comm").read_text().strip() != "taskset"]


def http_port(path: str) -> int:
    return B_HTTP if path == "direct" else PORTS[path][1]


def iperf_port(path: str) -> int:
    return B_IPERF if path == "direct" else PORTS[path][2]


# --- measurements --------------------------------------------------------------------------------
def bulk(path: str, seconds: int, streams: int) -> float:
    out = sh("taskset", "-c", CORE_LOAD, "iperf3", "-c", "127.0.0.1", "-p",
             str(iperf_port(path)), "-l", "128K", "-t", str(seconds), "-P", str(streams), "-J")
    data = json.loads(out.stdout)
    return float(data["end"]["sum_received"]["bits_per_second"]) / 8 / 1e6


def rps(path: str, seconds: int) -> float:
    out = sh("taskset", "-c", CORE_LOAD, "h2load", "--h1", "-c", "32", "-t", "1", "-D",
             str(seconds), f"http://127.0.0.1:{http_port(path)}/1k")
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out.stdout)
    failed = re.search(r"(\d+) failed", out.stdout)
    if failed and int(failed.group(1)):
        print(f"  h2load {path}: {failed.group(0)}", file=sys.stderr)
    return float(m.group(1)) if m else 0.0


def new_conns(path: str, seconds: int) -> float:
    out = sh("taskset", "-c", CORE_LOAD, "wrk", "-t1", "-c32", f"-d{seconds}s", "-H",
             "Connection: close", f"http://127.0.0.1:{http_port(path)}/1k")
    m = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    errors = re.search(r"Socket errors: .*|Non-2xx.*", out.stdout)
    if errors:
        print(f"  wrk {path}: {errors.group(0)}", file=sys.stderr)
    return float(m.group(1)) if m else 0.0


LATENCY_CLIENT = r"""
import asyncio, sys, time, json
import uvloop
port, rate, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
conns = 10 if rate <= 100 else 20
REQ = b"GET /1k HTTP/1.1\r\nHost: x\r\n\r\n"
async def one(lat):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    interval = conns / rate
    # warm up the connection (and the path's pooled tunnel)
    w.write(REQ); await r.readuntil(b"\r\n\r\n"); await r.readexactly(1024)
    loop = asyncio.get_running_loop()
    start = loop.time(); n = 0
    while loop.time() - start < seconds:
        t0 = time.perf_counter()
        w.write(REQ)
        head = await r.readuntil(b"\r\n\r\n"); await r.readexactly(1024)
        lat.append(time.perf_counter() - t0)
        n += 1
        nxt = start + n * interval
        await asyncio.sleep(max(0, nxt - loop.time()))
    w.close()
async def main():
    lat = []
    await asyncio.gather(*(one(lat) for _ in range(conns)))
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    print(json.dumps({"p50": q(0.5), "p99": q(0.99), "n": len(lat)}))
uvloop.run(main())
"""


def latency(path: str, rate: int, seconds: int) -> dict[str, float]:
    out = sh("taskset", "-c", CORE_LOAD, sys.executable, "-c", LATENCY_CLIENT,
             str(http_port(path)), str(rate), str(seconds))
    try:
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    except (IndexError, json.JSONDecodeError):
        print(f"  latency {path}: {out.stderr[-500:]}", file=sys.stderr)
        return {"p50": float("nan"), "p99": float("nan"), "n": 0}


IDLE_CLIENT = r"""
import asyncio, sys, resource
import uvloop
port, n = int(sys.argv[1]), int(sys.argv[2])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
REQ = b"GET /1k HTTP/1.1\r\nHost: x\r\n\r\n"
async def main():
    sem = asyncio.Semaphore(200)
    held = []
    async def one():
        async with sem:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(REQ); await r.readuntil(b"\r\n\r\n"); await r.readexactly(1024)
            held.append(w)
    res = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    bad = sum(1 for x in res if isinstance(x, BaseException))
    print(f"OPEN {len(held)} {bad}", flush=True)
    await asyncio.sleep(3600)
uvloop.run(main())
"""


def memory_per_conn(path: str, pids: list[int], n: int) -> tuple[float, int]:
    before = rss_kb(pids)
    p = subprocess.Popen(["taskset", "-c", CORE_LOAD, sys.executable, "-c", IDLE_CLIENT,
                          str(http_port(path)), str(n)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline().split()
    time.sleep(1.0)
    after = rss_kb(pids)
    p.kill()
    p.wait()
    opened = int(line[1]) if len(line) > 1 else 0
    time.sleep(2.0)
    return ((after - before) / max(opened, 1), opened)


def median_spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def crypto_ceiling() -> float:
    out = sh("taskset", "-c", CORE_SUT, "openssl", "speed", "-seconds", "1", "-evp",
             "aes-128-gcm")
    for line in out.stdout.splitlines():
        if line.startswith("AES-128-GCM") or line.startswith("aes-128-gcm"):
            return float(line.split()[-1].rstrip("k")) * 1000 / 1e6  # MB/s at 16 KiB
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--idle-conns", type=int, default=5000)
    ap.add_argument("--paths", default="direct,isthmus,nginx,haproxy")
    ap.add_argument("--workers", type=int, default=1, help="isthmus workers per gateway")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results.json"))
    ap.add_argument("--render", help="only print the table of an earlier results JSON")
    args = ap.parse_args()
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return 0
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    d = Path(tempfile.mkdtemp(prefix="isthmus-bench-"))
    make_pki(d)
    results: dict[str, Any] = {"crypto_ceiling_MBps": crypto_ceiling(), "paths": {},
                               "runs": args.runs, "seconds": args.seconds}
    base = Procs()
    base.start(CORE_LOAD, ["nginx", "-c", str(nginx_backend_conf(d)), "-p", str(d)],
               d / "backend.log")
    base.start(CORE_LOAD, ["iperf3", "-s", "-p", str(B_IPERF)], d / "iperf.log")
    wait_port(B_HTTP)
    wait_port(B_IPERF)
    try:
        for path in args.paths.split(","):
            procs = Procs()
            try:
                pids = [] if path == "direct" else start_path(path, d, procs, args.workers)
                print(f"== {path} (pids {pids})", flush=True)
                r: dict[str, Any] = {}
                measures: dict[str, Callable[[str, int], Any]] = {
                    "bulk_1_MBps": lambda p, s: bulk(p, s, 1),
                    "bulk_4_MBps": lambda p, s: bulk(p, s, 4),
                    "rps": rps,
                    "new_conns_per_s": new_conns,
                }
                for key, fn in measures.items():
                    values = []
                    cpu = []
                    for _ in range(args.runs):
                        c0 = cpu_seconds(pids)
                        values.append(fn(path, args.seconds))
                        cpu.append(cpu_seconds(pids) - c0)
                    r[key] = median_spread(values)
                    if key == "bulk_1_MBps" and pids:
                        gb = statistics.median(values) * args.seconds / 1000
                        r["cpu_s_per_GB"] = statistics.median(cpu) / gb if gb else float("nan")
                    print(f"  {key}: {r[key]}", flush=True)
                for rate in (100, 1000):
                    runs = [latency(path, rate, args.seconds) for _ in range(args.runs)]
                    r[f"lat_{rate}"] = {
                        "p50_ms": statistics.median(x["p50"] for x in runs),
                        "p99_ms": statistics.median(x["p99"] for x in runs),
                    }
                    print(f"  lat_{rate}: {r[f'lat_{rate}']}", flush=True)
                if pids and args.idle_conns:
                    per, opened = memory_per_conn(path, pids, args.idle_conns)
                    r["mem_per_conn_KiB"] = per
                    r["idle_conns_opened"] = opened
                    print(f"  mem/conn: {per:.1f} KiB over {opened}", flush=True)
                results["paths"][path] = r
            finally:
                procs.stop()
                time.sleep(1.0)
    finally:
        base.stop()
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(render(results))
    shutil.rmtree(d, ignore_errors=True)
    return 0


def render(res: dict[str, Any]) -> str:
    paths = res["paths"]
    rows = []

    def ratio(a: float, b: float) -> str:
        ok = b > 0 and not math.isnan(a) and not math.isnan(b)
        return f"{a / b:.2f}" if ok else "n/a"

    def mem(path: str) -> float:
        return float(paths.get(path, {}).get("mem_per_conn_KiB", float("nan")))

    def med(path: str, key: str) -> float:
        v = paths.get(path, {}).get(key)
        return float(v["median"]) if isinstance(v, dict) else float("nan")

    def added(path: str, rate: int, q: str) -> float:
        try:
            return paths[path][f"lat_{rate}"][q] - paths["direct"][f"lat_{rate}"][q]
        except KeyError:
            return float("nan")

    refs = [p for p in ("nginx", "haproxy") if p in paths]
    header = "| metric | direct | isthmus | " + " | ".join(refs) + \
        " | isthmus/nginx | target |"
    rows.append(header)
    rows.append("|" + "---|" * (header.count("|") - 1))
    for key, label, target in (("bulk_1_MBps", "bulk MB/s, 1 stream", "≥ 0.8"),
                               ("bulk_4_MBps", "bulk MB/s, 4 streams", "≥ 0.8"),
                               ("rps", "requests/s, persistent (h2load --h1 -c32)", "≥ 0.7"),
                               ("new_conns_per_s", "new connections/s (wrk Connection: close)",
                                "≥ 5")):
        cells = [f"{med(p, key):.0f}" for p in ("direct", "isthmus", *refs)]
        rows.append(f"| {label} | " + " | ".join(cells) +
                    f" | {ratio(med('isthmus', key), med('nginx', key))} | {target} |")
    for rate in (100, 1000):
        for q in ("p50_ms", "p99_ms"):
            cells = ["0"] + [f"{added(p, rate, q):.3f}" for p in ("isthmus", *refs)]
            tgt = "≤ 1 ms" if (rate, q) == (1000, "p99_ms") else ""
            ours, theirs = added("isthmus", rate, q), added("nginx", rate, q)
            diff = f"{ours - theirs:+.3f} ms" if theirs <= 0 else ratio(ours, theirs)
            rows.append(f"| added {q[:3]} ms at {rate} rps | " + " | ".join(cells) +
                        f" | {diff} | {tgt} |")
    cells = ["–"] + [f"{paths.get(p, {}).get('mem_per_conn_KiB', float('nan')):.1f}"
                     for p in ("isthmus", *refs)]
    rows.append("| memory per connection, KiB (both proxies) | " + " | ".join(cells) +
                f" | {ratio(mem('isthmus'), mem('nginx'))} | |")
    cells = ["–"] + [f"{paths.get(p, {}).get('cpu_s_per_GB', float('nan')):.2f}"
                     for p in ("isthmus", *refs)]
    rows.append("| CPU-seconds per GB, bulk 1 stream (both proxies) | " + " | ".join(cells) +
                " | | |")
    rows.append("")
    rows.append(f"Crypto ceiling (openssl speed -evp aes-128-gcm, 16 KiB, core 1): "
                f"{res['crypto_ceiling_MBps']:.0f} MB/s. Medians of {res['runs']} runs of "
                f"{res['seconds']} s.")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
