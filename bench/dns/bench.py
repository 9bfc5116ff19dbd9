"""DNS benchmark driver: isthmus-dns vs knot, unbound and dnsmasq (method: docs/benchmarks.md).

Each server runs on loopback with its own generated config and port, one worker, pinned to
CPU 1; dnsperf runs on CPU 0. Zones of 10, 100 and 1 000 names; the query files hold 10%
names that do not exist. For each (server, zone, transport): the maximum rate (dnsperf
with 200 queries outstanding), median and spread of ``--runs`` runs, plus the server's CPU
use. Then latency percentiles at fixed rates (dnsperf -Q, per-query latencies from -v) on
the 1 000-name zone. Writes results JSON and a Markdown table (stdout and --out).

One dnsperf thread on one core cannot saturate every server here (the servers' CPU stays
below 100%), so next to the measured rate the table gives the rate per server CPU-second
(qps / server CPU share): what one core of the server would sustain, the fairer ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_CPU = "1"
LOAD_CPU = "0"
SIZES = (10, 100, 1000)
MISS_RATIO = 0.10
BASE_PORT = 15350


def names_for(size: int) -> list[tuple[str, str]]:
    """(relative name, IPv4) for svc<i>.ns<i % 10>."""
    return [(f"svc{i}.ns{i % 10}", f"10.100.{i // 250}.{i % 250 + 1}") for i in range(size)]


def query_file(folder: Path, size: int) -> Path:
    rng = random.Random(size)  # noqa: S311 - reproducible query mix, not security
    names = [f"{rel}.global" for rel, _ in names_for(size)]
    lines = []
    for i in range(20_000):
        if rng.random() < MISS_RATIO:
            lines.append(f"miss{i}.ns{i % 10}.global A")
        else:
            lines.append(f"{rng.choice(names)} A")
    path = folder / f"queries-{size}.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- servers ------------------------------------------------------------------------------------

@dataclass
class Server:
    name: str
    port: int
    argv: list[str]


def isthmus_server(folder: Path, size: int, port: int) -> Server:
    items = []
    for rel, ip in names_for(size):
        svc, ns = rel.split(".")
        items.append({
            "apiVersion": "isthmus.io/v1alpha1", "kind": "GlobalService",
            "metadata": {"name": svc, "namespace": ns},
            "spec": {"hosts": [f"{rel}.global"], "ports": [{"name": "http", "port": 80}]},
            "status": {"vips": [ip]},
        })
    path = folder / f"isthmus-{size}.json"
    path.write_text(json.dumps({"kind": "List", "items": items}))
    return Server("isthmus", port, [
        str(ROOT / ".venv/bin/isthmus"), "dns", "--listen-address", "127.0.0.1",
        "--port", str(port), "--static-file", str(path), "--log-level", "warning"])


def knot_server(folder: Path, size: int, port: int) -> Server:
    work = folder / f"knot-{size}"
    work.mkdir()
    zone = ["$ORIGIN global.", "$TTL 5",
            "@ SOA ns.example. hostmaster.global. 1 60 10 3600 5", "@ NS ns.example."]
    zone += [f"{rel} A {ip}" for rel, ip in names_for(size)]
    (work / "global.zone").write_text("\n".join(zone) + "\n")
    (work / "knot.conf").write_text(f"""
server:
    rundir: "{work}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "{work}"
template:
  - id: default
    storage: "{work}"
    journal-content: none
zone:
  - domain: global
    file: "{work}/global.zone"
""")
    return Server("knot", port, ["knotd", "-c", str(work / "knot.conf")])


def unbound_server(folder: Path, size: int, port: int) -> Server:
    work = folder / f"unbound-{size}"
    work.mkdir()
    data = [
        'local-data: "global. 5 IN SOA ns.example. hostmaster.global. 1 60 10 3600 5"',
        *(f'local-data: "{rel}.global. 5 IN A {ip}"' for rel, ip in names_for(size)),
    ]
    conf = "\n    ".join([
        f"interface: 127.0.0.1@{port}", f"port: {port}", "num-threads: 1",
        "do-daemonize: no", 'chroot: ""', 'username: ""', f'directory: "{work}"',
        'pidfile: ""', "use-syslog: no", "verbosity: 0", "do-ip6: no",
        "access-control: 127.0.0.0/8 allow", "so-reuseport: no", "incoming-num-tcp: 64",
        'local-zone: "global." static', *data,
    ])
    (work / "unbound.conf").write_text(
        f"server:\n    {conf}\nremote-control:\n    control-enable: no\n")
    return Server("unbound", port, ["unbound", "-d", "-c", str(work / "unbound.conf")])


def dnsmasq_server(folder: Path, size: int, port: int) -> Server:
    hosts = folder / f"dnsmasq-{size}.hosts"
    hosts.write_text("".join(f"{ip} {rel}.global\n" for rel, ip in names_for(size)))
    return Server("dnsmasq", port, [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", f"--port={port}",
        "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
        f"--addn-hosts={hosts}", "--local=/global/", "--local-ttl=5", "--user=root",
        "--pid-file=", "--cache-size=10000"])


FACTORIES: dict[str, Callable[[Path, int, int], Server]] = {
    "isthmus": isthmus_server, "knot": knot_server, "unbound": unbound_server,
    "dnsmasq": dnsmasq_server,
}


def wait_ready(port: int, timeout: float = 15.0) -> None:
    probe = bytes.fromhex("abcd01000001000000000000") + b"\x06global\x00\x00\x06\x00\x01"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.2)
            try:
                sock.sendto(probe, ("127.0.0.1", port))
                if sock.recv(4096)[:2] == b"\xab\xcd":
                    return
            except OSError:
                time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer")


def cpu_seconds(pid: int) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


# --- load -------------------------------------------------------------------------------------

def dnsperf(port: int, queries: Path, mode: str, seconds: float, *, rate: int | None = None,
            verbose: bool = False, outstanding: int | None = None) -> str:
    argv = ["taskset", "-c", LOAD_CPU, "dnsperf", "-s", "127.0.0.1", "-p", str(port),
            "-d", str(queries), "-l", str(seconds), "-m", mode, "-T", "1",
            "-c", "1" if mode == "udp" else "4", "-t", "2",
            # Max rate: 200 outstanding. Fixed rate: 20, because dnsperf paces -Q in bursts
            # of up to -q queries, which would measure its own burst, not the server.
            "-q", str(outstanding or (200 if rate is None else 20))]
    if rate is not None:
        argv += ["-Q", str(rate)]
    if verbose:
        argv.append("-v")
    return subprocess.run(argv, check=True, capture_output=True, text=True,
                          timeout=seconds + 30).stdout


def qps_of(out: str) -> tuple[float, float]:
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lost = float(re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", out).group(1))  # type: ignore[union-attr]
    return qps, lost


def latencies_of(out: str) -> list[float]:
    return [float(m.group(1)) for m in re.finditer(r"^> \S+ \S+ \S+ ([\d.]+)$", out, re.M)]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def run_server(server: Server) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, *server.argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        wait_ready(server.port)
    except RuntimeError:
        stop(proc)
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"{server.name} did not start: {err[-2000:]}") from None
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="per max-rate run")
    parser.add_argument("--latency-seconds", type=float, default=3.0)
    parser.add_argument("--rates", default="1000,10000")
    parser.add_argument("--cpu-rate", type=int, default=50_000,
                        help="fixed rate at which each server's CPU per query is measured")
    parser.add_argument("--servers", default="isthmus,knot,unbound,dnsmasq")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--quick", action="store_true", help="1 run, 2 s each")
    parser.add_argument("--out", default=str(ROOT / "build" / "bench-dns.json"))
    args = parser.parse_args()
    if args.quick:
        args.runs, args.seconds, args.latency_seconds = 1, 2.0, 2.0
    for tool in ("dnsperf", "taskset", "knotd", "unbound", "dnsmasq"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run bench/dns/run.sh (it installs it)")
    servers = args.servers.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    rates = [int(r) for r in args.rates.split(",")]
    results: dict[str, list[dict[str, object]]] = {"max": [], "latency": [], "fixed_cpu": []}
    started = time.monotonic()
    # A SIGTERM must still stop the servers we started (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with tempfile.TemporaryDirectory(prefix="isthmus-bench-dns-") as tmp:
        folder = Path(tmp)
        for size in sizes:
            queries = query_file(folder, size)
            # All four run at once, idle but for the one under load; runs go round-robin
            # over the servers, so a burst of load from elsewhere on this shared machine
            # hits each of them alike instead of one server's whole series.
            running: dict[str, tuple[Server, subprocess.Popen[bytes]]] = {}
            try:
                for index, name in enumerate(servers):
                    port = BASE_PORT + 10 * index + sizes.index(size)
                    server = FACTORIES[name](folder, size, port)
                    running[name] = (server, run_server(server))
                for mode in ("udp", "tcp"):
                    samples: dict[str, list[tuple[float, float, float]]] = {n: [] for n in servers}
                    for server, _ in running.values():
                        dnsperf(server.port, queries, mode, 1.0)  # warm-up
                    for _ in range(args.runs):
                        for name, (server, proc) in running.items():
                            before = cpu_seconds(proc.pid)
                            try:
                                out = dnsperf(server.port, queries, mode, args.seconds)
                            except subprocess.CalledProcessError as exc:
                                # e.g. dnsmasq refusing TCP connections past its child limit
                                print(f"# {name} {mode}: dnsperf failed: {exc.stdout[-300:]}",
                                      flush=True)
                                continue
                            qps, lost = qps_of(out)
                            cpu = (cpu_seconds(proc.pid) - before) / args.seconds * 100
                            samples[name].append((qps, cpu, lost))
                    for name in servers:
                        if not samples[name]:
                            continue
                        qs = [s[0] for s in samples[name]]
                        row = {"server": name, "size": size, "mode": mode,
                               "qps": statistics.median(qs), "min": min(qs), "max": max(qs),
                               "cpu_pct": statistics.median(s[1] for s in samples[name]),
                               "per_cpu_s": statistics.median(
                                   s[0] / (s[1] / 100) for s in samples[name] if s[1]),
                               "lost_pct": max(s[2] for s in samples[name])}
                        results["max"].append(row)
                        print(json.dumps(row), flush=True)
                    if size != max(sizes):
                        continue
                    # CPU per query at one fixed rate that every server sustains: at the
                    # maximum rate, whichever side is the bottleneck also pays for waking
                    # the other, so per-CPU figures at different utilisations are not alike.
                    fixed: dict[str, list[float]] = {n: [] for n in servers}
                    for _ in range(args.runs):
                        for name, (server, proc) in running.items():
                            before = cpu_seconds(proc.pid)
                            out = dnsperf(server.port, queries, mode, args.seconds,
                                          rate=args.cpu_rate, outstanding=200)
                            qps, _lost = qps_of(out)
                            cpu = cpu_seconds(proc.pid) - before
                            if cpu:
                                fixed[name].append(qps * args.seconds / cpu)
                    for name in servers:
                        if fixed[name]:
                            frow = {"server": name, "size": size, "mode": mode,
                                    "rate": args.cpu_rate,
                                    "per_cpu_s": statistics.median(fixed[name]),
                                    "spread": [min(fixed[name]), max(fixed[name])]}
                            results["fixed_cpu"].append(frow)
                            print(json.dumps(frow), flush=True)
                    for rate in rates:
                        lat: dict[str, list[tuple[float, float, float]]] = {n: [] for n in servers}
                        for _ in range(args.runs):
                            for name, (server, _) in running.items():
                                values = latencies_of(dnsperf(
                                    server.port, queries, mode, args.latency_seconds,
                                    rate=rate, verbose=True))
                                lat[name].append((pct(values, 50) * 1e3, pct(values, 99) * 1e3,
                                                  pct(values, 99.9) * 1e3))
                        for name in servers:
                            p99s = [x[1] for x in lat[name]]
                            lrow = {"server": name, "size": size, "mode": mode, "rate": rate,
                                    "p50_ms": statistics.median(x[0] for x in lat[name]),
                                    "p99_ms": statistics.median(p99s),
                                    "p99_spread": [min(p99s), max(p99s)],
                                    "p999_ms": statistics.median(x[2] for x in lat[name])}
                            results["latency"].append(lrow)
                            print(json.dumps(lrow), flush=True)
            finally:
                for _, proc in running.values():
                    stop(proc)
    summary = {"runs": args.runs, "seconds": args.seconds, **results,
               "elapsed_s": round(time.monotonic() - started, 1),
               "loadavg_after": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    print(markdown(summary))


def markdown(results: dict[str, object]) -> str:
    rows: list[dict[str, object]] = results["max"]  # type: ignore[assignment]
    by = {(r["server"], r["size"], r["mode"]): r for r in rows}
    lines = ["| zone | transport | isthmus qps | knot qps | unbound qps | dnsmasq qps "
             "| isthmus/knot | isthmus/dnsmasq | per server CPU-s: isthmus / knot / dnsmasq "
             "| ratio to knot per CPU-s |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size in sorted({int(r["size"]) for r in rows}):  # type: ignore[call-overload]
        for mode in ("udp", "tcp"):
            def q(server: str, size: int = size, mode: str = mode) -> float:
                r = by.get((server, size, mode))
                return float(r["qps"]) if r else float("nan")  # type: ignore[arg-type]

            def cell(server: str, size: int = size, mode: str = mode) -> str:
                r = by.get((server, size, mode))
                if not r:
                    return "-"
                return f"{r['qps']:,.0f} ({r['min']:,.0f}–{r['max']:,.0f})"

            def per_cpu(server: str, size: int = size, mode: str = mode) -> float:
                r = by.get((server, size, mode))
                return float(r["per_cpu_s"]) if r else float("nan")  # type: ignore[arg-type]

            lines.append(
                f"| {size} | {mode.upper()} | {cell('isthmus')} | {cell('knot')} | "
                f"{cell('unbound')} | {cell('dnsmasq')} | {q('isthmus') / q('knot'):.2f} | "
                f"{q('isthmus') / q('dnsmasq'):.2f} | {per_cpu('isthmus'):,.0f} / "
                f"{per_cpu('knot'):,.0f} / {per_cpu('dnsmasq'):,.0f} | "
                f"{per_cpu('isthmus') / per_cpu('knot'):.2f} |")
    fixed: list[dict[str, object]] = results.get("fixed_cpu", [])  # type: ignore[assignment]
    if fixed:
        knot = {(r["size"], r["mode"]): float(r["per_cpu_s"])  # type: ignore[arg-type]
                for r in fixed if r["server"] == "knot"}
        lines += ["", "| server | transport | fixed rate (qps) | queries per server CPU-second "
                  "(spread) | ratio to knot |", "|---|---|---:|---:|---:|"]
        for r in fixed:
            lo, hi = r["spread"]  # type: ignore[misc]
            ref = knot.get((r["size"], r["mode"]), float("nan"))
            lines.append(f"| {r['server']} | {str(r['mode']).upper()} | {r['rate']:,} | "
                         f"{r['per_cpu_s']:,.0f} ({lo:,.0f}–{hi:,.0f}) | "
                         f"{float(r['per_cpu_s']) / ref:.2f} |")  # type: ignore[arg-type]
    lat: list[dict[str, object]] = results["latency"]  # type: ignore[assignment]
    if lat:
        lines += ["", "| server | transport | rate (qps) | p50 ms | p99 ms (spread) | p99.9 ms |",
                  "|---|---|---:|---:|---:|---:|"]
        for r in lat:
            lo, hi = r["p99_spread"]  # type: ignore[misc]
            lines.append(f"| {r['server']} | {str(r['mode']).upper()} | {r['rate']:,} | "
                         f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} ({lo:.3f}–{hi:.3f}) | "
                         f"{r['p999_ms']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
