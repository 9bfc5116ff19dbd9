"""Gateway benchmark driver: isthmus vs nginx-stream vs haproxy pairs, same certificates.

Layout (all loopback): load generators and backends on core 0, every proxy on core 1.

    client ─▶ west proxy (plain in) ══ mTLS 1.3, ECDSA P-256, one CA ══▶ east proxy ─▶ backend
    direct:   client ─▶ backend                                         (the floor)

Backends: nginx (http/1.1 and h2c, a 1 KiB file) and an iperf3 server. Every path runs at
once; each round measures every point on every path in turn (direct, isthmus, nginx, ...),
so a ratio never compares a loaded moment with a quiet one. Ratios are kept per round and
reported as their median. Before the first round and after each one the machine must be
quiet (CPU idle, no other busy process): otherwise nothing is published unless
``--allow-noisy`` says so, and then the output says the figures are not for publishing.
Not a test: nothing asserts.
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

B_HTTP, B_IPERF, B_H2C = 18080, 15201, 18081
PORTS = {  # name: (east inbound, west http, west iperf, west h2c)
    "isthmus": (18443, 19080, 19201, 19081),
    "nginx": (28443, 29080, 29201, 29081),
    "haproxy": (38443, 39080, 39201, 39081),
}
# (service, SNI/host name, backend port, index of the west port in PORTS)
SERVICES = (("http", "http.east", B_HTTP, 1), ("iperf", "iperf.east", B_IPERF, 2),
            ("h2c", "h2c.east", B_H2C, 3))


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
    for cluster, names in (("west", ()), ("east", tuple(sni for _, sni, _, _ in SERVICES))):
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
  server {{ listen 127.0.0.1:{B_H2C} http2 backlog=8192; http2_max_requests 10000000;
           location / {{ root {www}; }} }}
}}
""")
    return conf


def nginx_pair_confs(d: Path) -> tuple[Path, Path]:
    east_in = PORTS["nginx"][0]
    head = ("load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
            "daemon off; worker_processes 1; worker_rlimit_nofile 20000;\n"
            "events { worker_connections 19000; }\n")
    upstreams = " ".join(f"{sni} 127.0.0.1:{port};" for _, sni, port, _ in SERVICES)
    east = d / "nginx-east.conf"
    east.write_text(head + f"""pid {d}/ne.pid; error_log {d}/ne.err warn;
stream {{
  map $ssl_server_name $upstream {{ {upstreams} }}
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
    for _, sni, _, i in SERVICES:
        port = PORTS["nginx"][i]
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
    east_in = PORTS["haproxy"][0]
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
""" + "".join(f"  use_backend be_{name} if {{ ssl_fc_sni {sni} }}\n"
              for name, sni, _, _ in SERVICES)
        + "".join(f"backend be_{name}\n  server b 127.0.0.1:{port}\n"
                  for name, _, port, _ in SERVICES))
    west = d / "haproxy-west.cfg"
    text = common
    verify = "verify required"
    for name, sni, _, i in SERVICES:
        port = PORTS["haproxy"][i]
        text += f"""frontend f_{name}
  bind 127.0.0.1:{port}
  default_backend b_{name}
backend b_{name}
  server e 127.0.0.1:{east_in} ssl crt {d}/west.pem ca-file {d}/roots.pem {verify} sni str({sni})
"""
    west.write_text(text)
    return west, east


def isthmus_routes(d: Path) -> tuple[Path, Path]:
    east_in = PORTS["isthmus"][0]

    def svc(name: str, port: int) -> dict[str, Any]:
        return {"metadata": {"namespace": "bench", "name": name,
                             "labels": {"isthmus.io/export": "true"}},
                "spec": {"ports": [{"name": "p", "port": port}]}}

    def eps(name: str, port: int) -> dict[str, Any]:
        return {"metadata": {"namespace": "bench", "name": name,
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",  # only IP slices are ever dialled
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
        "services": [svc(name, 80) for name, _, _, _ in SERVICES],
        "endpointSlices": [eps(name, port) for name, _, port, _ in SERVICES],
        "links": [link("west", 1)]}))
    west = d / "isthmus-west.yaml"
    west.write_text(yaml.safe_dump({
        "links": [link("east", east_in)],
        "globalServices": [gs(name, 80, PORTS["isthmus"][i]) for name, _, _, i in SERVICES]}))
    return west, east


# --- paths ---------------------------------------------------------------------------------------
def start_path(name: str, d: Path, procs: Procs, workers: int) -> list[int]:
    """Start a pair; return the pids to account CPU and memory to."""
    east_in = PORTS[name][0]
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
    for port in PORTS[name]:
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


def h2c_port(path: str) -> int:
    return B_H2C if path == "direct" else PORTS[path][3]


# --- measurements --------------------------------------------------------------------------------
def bulk(path: str, seconds: int, streams: int, *, reverse: bool = False) -> float:
    """MB/s through ``path``; ``reverse``: the server sends (iperf3 -R)."""
    out = sh("taskset", "-c", CORE_LOAD, "iperf3", "-c", "127.0.0.1", "-p",
             str(iperf_port(path)), "-l", "128K", "-t", str(seconds), "-P", str(streams), "-J",
             *(["-R"] if reverse else []))
    try:
        data = json.loads(out.stdout)
        return float(data["end"]["sum_received"]["bits_per_second"]) / 8 / 1e6
    except (json.JSONDecodeError, KeyError):
        print(f"  iperf3 {path}: {out.stdout[-300:]} {out.stderr[-300:]}", file=sys.stderr)
        return float("nan")


def rps(path: str, seconds: int, *, h2c: bool = False) -> float:
    """Requests/s on persistent connections: HTTP/1.1 (32 connections) or, ``h2c``,
    gRPC-shaped HTTP/2 cleartext (8 connections, 8 streams each)."""
    if h2c:
        args = ["-c", "8", "-m", "8", f"http://127.0.0.1:{h2c_port(path)}/1k"]
    else:
        args = ["--h1", "-c", "32", f"http://127.0.0.1:{http_port(path)}/1k"]
    out = sh("taskset", "-c", CORE_LOAD, "h2load", "-t", "1", "-D", str(seconds), *args)
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
    ok = [v for v in values if not math.isnan(v)]
    if not ok:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(ok), "min": min(ok), "max": max(ok)}


# --- quiet machine ---------------------------------------------------------------------------
QUIET_IDLE = 0.90  # share of all CPU time idle over the sample
QUIET_PROC = 0.05  # a process using more than this share of one core is busy


def _cpu_times() -> tuple[int, int]:
    """(idle + iowait, total) jiffies over all CPUs."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])


def _proc_jiffies() -> dict[int, tuple[str, int]]:
    out: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        rest = raw.rsplit(")", 1)[1].split()
        out[int(entry.name)] = (comm, int(rest[11]) + int(rest[12]))
    return out


def quiet_check(seconds: float, own: set[int]) -> dict[str, Any]:
    """Sample the machine for ``seconds``: CPU idle share, load average, and every process
    not in ``own`` (this benchmark's idle proxies and backends) that used CPU."""
    idle0, total0 = _cpu_times()
    procs0 = _proc_jiffies()
    time.sleep(seconds)
    idle1, total1 = _cpu_times()
    procs1 = _proc_jiffies()
    tick = os.sysconf("SC_CLK_TCK")
    busy = []
    for pid, (comm, j1) in procs1.items():
        if pid in own or pid == os.getpid() or pid not in procs0:
            continue
        share = (j1 - procs0[pid][1]) / tick / seconds
        if share > QUIET_PROC:
            busy.append(f"{pid}/{comm} {share:.0%}")
    idle = (idle1 - idle0) / max(total1 - total0, 1)
    return {"idle": round(idle, 3), "loadavg": os.getloadavg()[0], "busy": busy,
            "quiet": idle >= QUIET_IDLE and not busy}


def own_pids() -> set[int]:
    """This process's descendants: the backends and proxies it started (idle between runs)."""
    return set(tree_pids(os.getpid()))


def crypto_ceiling() -> float:
    out = sh("taskset", "-c", CORE_SUT, "openssl", "speed", "-seconds", "1", "-evp",
             "aes-128-gcm")
    for line in out.stdout.splitlines():
        if line.startswith("AES-128-GCM") or line.startswith("aes-128-gcm"):
            return float(line.split()[-1].rstrip("k")) * 1000 / 1e6  # MB/s at 16 KiB
    return float("nan")


MEASURES: dict[str, Callable[[str, int], float]] = {
    "bulk_1_MBps": lambda p, s: bulk(p, s, 1),
    "bulk_4_MBps": lambda p, s: bulk(p, s, 4),
    "bulk_1_reverse_MBps": lambda p, s: bulk(p, s, 1, reverse=True),
    "bulk_4_reverse_MBps": lambda p, s: bulk(p, s, 4, reverse=True),
    "rps": rps,
    "rps_h2c": lambda p, s: rps(p, s, h2c=True),
    "new_conns_per_s": new_conns,
}


CPU_PER_UNIT = {"rps": "cpu_us_per_request", "rps_h2c": "cpu_us_per_request_h2c",
                "new_conns_per_s": "cpu_us_per_connection"}


def run_round(paths: list[str], pids: dict[str, list[int]], seconds: int,
              round_no: int) -> dict[str, dict[str, Any]]:
    """One round: every point on every path in turn; the order of paths rotates by round."""
    k = round_no % len(paths)
    order = paths[k:] + paths[:k]
    r: dict[str, dict[str, Any]] = {p: {} for p in paths}
    for key, fn in MEASURES.items():
        for path in order:
            c0 = cpu_seconds(pids[path])
            r[path][key] = fn(path, seconds)
            used = cpu_seconds(pids[path]) - c0
            done = r[path][key] * seconds
            if key == "bulk_1_MBps" and pids[path]:
                r[path]["cpu_s_per_GB"] = used / (done / 1000) if done else math.nan
            elif key in CPU_PER_UNIT and pids[path]:  # both proxies' CPU per request
                r[path][CPU_PER_UNIT[key]] = used / done * 1e6 if done else math.nan
        print(f"  {key}: " + ", ".join(f"{p} {r[p][key]:.0f}" for p in paths), flush=True)
    proxies = [p for p in paths if p != "direct"]
    # half of the slowest proxy's maximum: a rate every path carries, the same for all
    half = int(min(r[p]["rps"] for p in proxies) / 2) if proxies else 1000
    for rate, name in ((100, "lat_100"), (1000, "lat_1000"), (half, "lat_half")):
        for path in order:
            x = latency(path, rate, seconds)
            r[path][name] = {"rate": rate, "p50_ms": x["p50"], "p99_ms": x["p99"]}
        print(f"  {name} ({rate} rps): " + ", ".join(
            f"{p} {r[p][name]['p50_ms']:.3f}/{r[p][name]['p99_ms']:.3f}" for p in paths),
            flush=True)
    return r


RATIO_KEYS = (*MEASURES, "cpu_s_per_GB", *CPU_PER_UNIT.values())


def round_ratios(r: dict[str, dict[str, Any]], ref: str) -> dict[str, float]:
    """isthmus/ref per throughput point; added latency (path - direct) as isthmus - ref, ms."""
    out: dict[str, float] = {}
    if "isthmus" not in r or ref not in r:
        return out
    for key in RATIO_KEYS:
        a, b = r["isthmus"].get(key, math.nan), r[ref].get(key, math.nan)
        out[key] = a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan
    if "direct" in r:
        for lat in ("lat_100", "lat_1000", "lat_half"):
            for q in ("p50_ms", "p99_ms"):
                base = r["direct"][lat][q]
                out[f"{lat}_{q}_added"] = r["isthmus"][lat][q] - base
                out[f"{lat}_{q}_added_{ref}"] = r[ref][lat][q] - base
    return out


def summarize(rounds: list[dict[str, dict[str, Any]]], paths: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for path in paths:
        s: dict[str, Any] = {}
        for key in RATIO_KEYS:
            if key in rounds[0][path]:
                s[key] = median_spread([float(r[path][key]) for r in rounds])
        for lat in ("lat_100", "lat_1000", "lat_half"):
            s[lat] = {q: statistics.median(r[path][lat][q] for r in rounds)
                      for q in ("rate", "p50_ms", "p99_ms")}
        summary[path] = s
    return summary


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="rounds (every path in each)")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--idle-conns", type=int, default=5000)
    ap.add_argument("--paths", default="direct,isthmus,nginx")
    ap.add_argument("--workers", type=int, default=1, help="isthmus workers per gateway")
    ap.add_argument("--quiet-seconds", type=float, default=5.0,
                    help="length of each quiet-machine sample")
    ap.add_argument("--allow-noisy", action="store_true",
                    help="development only: run and write even when the machine is busy; "
                    "the output is marked NOT FOR PUBLISHING")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results.json"))
    ap.add_argument("--render", help="only print the table of an earlier results JSON")
    args = ap.parse_args()
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return 0
    first = quiet_check(args.quiet_seconds, own_pids())
    print(f"quiet check before: {first}", flush=True)
    if not first["quiet"] and not args.allow_noisy:
        print("the machine is not quiet: not measuring (--allow-noisy for development)",
              file=sys.stderr)
        return 3
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    d = Path(tempfile.mkdtemp(prefix="isthmus-bench-"))
    make_pki(d)
    paths = args.paths.split(",")
    results: dict[str, Any] = {"crypto_ceiling_MBps": crypto_ceiling(), "runs": args.runs,
                               "seconds": args.seconds, "quiet_checks": [first],
                               "rounds": [], "ratios_nginx": [], "ratios_haproxy": []}
    base = Procs()
    procs = Procs()
    base.start(CORE_LOAD, ["nginx", "-c", str(nginx_backend_conf(d)), "-p", str(d)],
               d / "backend.log")
    base.start(CORE_LOAD, ["iperf3", "-s", "-p", str(B_IPERF)], d / "iperf.log")
    for port in (B_HTTP, B_H2C, B_IPERF):
        wait_port(port)
    try:
        pids = {p: [] if p == "direct" else start_path(p, d, procs, args.workers)
                for p in paths}
        print(f"pids: {pids}", flush=True)
        for n in range(args.runs):
            print(f"== round {n + 1}", flush=True)
            r = run_round(paths, pids, args.seconds, n)
            results["rounds"].append(r)
            for ref in ("nginx", "haproxy"):
                results[f"ratios_{ref}"].append(round_ratios(r, ref))
            check = quiet_check(args.quiet_seconds, own_pids())
            results["quiet_checks"].append(check)
            print(f"quiet check after round {n + 1}: {check}", flush=True)
        if args.idle_conns:
            for path in paths:
                if pids[path]:
                    per, opened = memory_per_conn(path, pids[path], args.idle_conns)
                    results.setdefault("memory", {})[path] = {"KiB_per_conn": per,
                                                              "opened": opened}
                    print(f"  mem/conn {path}: {per:.1f} KiB over {opened}", flush=True)
    finally:
        procs.stop()
        base.stop()
    results["paths"] = summarize(results["rounds"], paths)
    results["quiet"] = all(c["quiet"] for c in results["quiet_checks"])
    out = Path(args.out)
    if not results["quiet"]:
        if not args.allow_noisy:
            out = out.with_suffix(".noisy.json")
            print(f"the machine was not quiet throughout: NOT publishing; written to {out}",
                  file=sys.stderr)
        results["note"] = "NOT FOR PUBLISHING: the machine was not quiet"
    out.write_text(json.dumps(results, indent=2))
    print(render(results))
    shutil.rmtree(d, ignore_errors=True)
    return 0 if results["quiet"] else 3


def render(res: dict[str, Any]) -> str:
    paths = res["paths"]
    refs = [p for p in ("nginx", "haproxy") if p in paths]
    cols = [p for p in ("direct", "isthmus", *refs) if p in paths]
    rows = []
    if not res.get("quiet", False):
        rows += ["**NOT FOR PUBLISHING: the machine was not quiet during this run.**", ""]

    def ratios(key: str) -> tuple[float, str]:
        per = [r.get(key, math.nan) for r in res.get("ratios_nginx", [])]
        ok = [v for v in per if not math.isnan(v)]
        if not ok:
            return math.nan, "n/a"
        return statistics.median(ok), " / ".join(f"{v:.2f}" for v in per)

    header = "| metric | " + " | ".join(cols) + " | isthmus/nginx (median; per round) |"
    rows.append(header)
    rows.append("|" + "---|" * (header.count("|") - 1))
    for key, label in (("bulk_1_MBps", "bulk MB/s, 1 stream"),
                       ("bulk_4_MBps", "bulk MB/s, 4 streams"),
                       ("bulk_1_reverse_MBps", "bulk MB/s, 1 stream, reverse (-R)"),
                       ("bulk_4_reverse_MBps", "bulk MB/s, 4 streams, reverse (-R)"),
                       ("rps", "requests/s, persistent (h2load --h1 -c32)"),
                       ("rps_h2c", "requests/s, h2c (h2load -c8 -m8)"),
                       ("new_conns_per_s", "new connections/s (wrk, Connection: close)"),
                       ("cpu_s_per_GB", "CPU-seconds per GB, bulk 1 stream (both proxies)"),
                       ("cpu_us_per_request", "CPU µs per request, h1 (both proxies)"),
                       ("cpu_us_per_request_h2c", "CPU µs per request, h2c (both proxies)"),
                       ("cpu_us_per_connection", "CPU µs per new connection (both proxies)")):
        cells = [f"{paths[p][key]['median']:.{2 if key.startswith('cpu') else 0}f}"
                 if key in paths[p] else "–" for p in cols]
        med, per = ratios(key)
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {med:.2f}; {per} |")
    for lat in ("lat_100", "lat_1000", "lat_half"):
        for q in ("p50_ms", "p99_ms"):
            rate = paths[cols[0]][lat]["rate"]
            cells = [f"{paths[p][lat][q]:.3f}" if p == "direct" else
                     f"{paths[p][lat][q] - paths['direct'][lat][q]:+.3f}" for p in cols] \
                if "direct" in paths else ["–"] * len(cols)
            ours = [r.get(f"{lat}_{q}_added", math.nan) for r in res.get("ratios_nginx", [])]
            theirs = [r.get(f"{lat}_{q}_added_nginx", math.nan)
                      for r in res.get("ratios_nginx", [])]
            diff = " / ".join(f"{a - b:+.3f}" for a, b in zip(ours, theirs, strict=True))
            rows.append(f"| {q[:3]} ms at {rate:.0f} rps (direct; added by each path) | "
                        + " | ".join(cells) + f" | isthmus − nginx per round: {diff} |")
    mem = res.get("memory", {})
    if mem:
        cells = [f"{mem[p]['KiB_per_conn']:.1f}" if p in mem else "–" for p in cols]
        a = mem.get("isthmus", {}).get("KiB_per_conn", math.nan)
        b = mem.get("nginx", {}).get("KiB_per_conn", math.nan)
        rows.append("| memory per connection, KiB (both proxies) | " + " | ".join(cells)
                    + f" | {a / b if b else math.nan:.2f} |")
    rows.append("")
    rows.append(f"Crypto ceiling (openssl speed -evp aes-128-gcm, 16 KiB, core 1): "
                f"{res['crypto_ceiling_MBps']:.0f} MB/s. {res['runs']} interleaved rounds of "
                f"{res['seconds']} s per point; quiet checks: "
                + ", ".join(f"idle {c['idle']:.0%}" for c in res.get("quiet_checks", [])) + ".")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
