"""The two gateways in separate network namespaces, run by the real CLI, linked by a veth
pair; plus SIGTERM draining of a real process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from gw_helpers import (
    Pki,
    endpoint_slice,
    global_service,
    gs_endpoint,
    link,
    service,
    write_routes,
    write_tls,
)

pytestmark = pytest.mark.netns
ROOT = Path(__file__).parents[2]
ISTHMUS = str(ROOT / ".venv" / "bin" / "isthmus")
PYTHON = str(ROOT / ".venv" / "bin" / "python")

ECHO = """
import socket, threading, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], int(sys.argv[1]))); s.listen(128)
def serve(c):
    while True:
        d = c.recv(65536)
        if not d:
            c.shutdown(socket.SHUT_WR); c.close(); return
        c.sendall(d)
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

CLIENT = """
import socket, sys, time
payload = b"across namespaces " * 1000
deadline = time.time() + 20
while True:  # until both gateways are up (routes loaded, peer listening)
    got = b""
    try:
        c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        c.sendall(payload); c.shutdown(socket.SHUT_WR)
        while d := c.recv(65536):
            got += d
        c.close()
    except OSError:
        pass
    if got == payload or time.time() > deadline:
        break
    time.sleep(0.2)
assert got == payload, (len(got), len(payload))
print("OK")
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def have_netns() -> bool:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, check=False)
    return os.geteuid() == 0 and listed.returncode == 0


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str, str, str]]:
    if not have_netns():
        pytest.skip("needs root and ip netns")
    tag = uuid.uuid4().hex[:6]
    west, east = f"isthmus-gw-{tag}w", f"isthmus-gw-{tag}e"
    octet = int(tag[:2], 16)
    west_ip, east_ip = f"10.250.{octet}.1", f"10.250.{octet}.2"
    try:
        sh("ip", "netns", "add", west)
        sh("ip", "netns", "add", east)
        sh("ip", "link", "add", f"gw{tag}w", "netns", west, "type", "veth",
           "peer", "name", f"gw{tag}e", "netns", east)
        for ns, dev, ip in ((west, f"gw{tag}w", west_ip), (east, f"gw{tag}e", east_ip)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        yield west, east, west_ip, east_ip
    finally:
        for ns in (west, east):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, check=False,
                                  text=True).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def test_pair_across_network_namespaces(namespaces: tuple[str, str, str, str], pki: Pki,
                                        tmp_path: Path) -> None:
    west, east, west_ip, east_ip = namespaces
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(ns: str, *argv: str, log: str) -> subprocess.Popen[bytes]:
        out = open(tmp_path / log, "wb")  # noqa: SIM115
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=out, stderr=out)
        procs.append(p)
        return p

    try:
        # the backend listens on the east pod address, as a pod would: the gateway
        # refuses loopback backends (backend_policy.py)
        spawn(east, PYTHON, "-c", ECHO, "9000", east_ip, log="echo.log")
        east_routes = write_routes(
            tmp_path / "east.yaml",
            services=[service("shop", "echo", 80)],
            slices=[endpoint_slice("shop", "echo", [(east_ip, 9000)])],
            links=[link("west", host=west_ip)],
        )
        spawn(east, ISTHMUS, "gateway", "--cluster", "east", "--routes-file", east_routes,
              "--inbound-address", f"{east_ip}:15443", "--admin-address", "127.0.0.1:15021",
              *write_tls(pki, "east", tmp_path / "east"), log="east.log")
        west_routes = write_routes(
            tmp_path / "west.yaml",
            links=[link("east", host=east_ip)],
            gss=[global_service("shop", "echo", 80, 20080,
                                [gs_endpoint("east", 15443, host=east_ip)])],
        )
        gw_west = spawn(west, ISTHMUS, "gateway", "--cluster", "west", "--routes-file",
                        west_routes, "--outbound-host", "127.0.0.1", "--inbound-address",
                        f"{west_ip}:15443", "--admin-address", "127.0.0.1:15021",
                        "--drain-timeout", "5", *write_tls(pki, "west", tmp_path / "west"),
                        log="west.log")
        result = subprocess.run(["ip", "netns", "exec", west, PYTHON, "-c", CLIENT, "20080"],
                                capture_output=True, text=True, timeout=40, check=False)
        assert result.stdout.strip() == "OK", (
            result.stderr + (tmp_path / "west.log").read_text()[-3000:]
            + (tmp_path / "east.log").read_text()[-3000:])
        west_log = (tmp_path / "west.log").read_text()
        assert '"peer_cluster": "east"' in west_log and '"result": "ok"' in west_log
        # SIGTERM: drains and exits 0
        gw_west.send_signal(signal.SIGTERM)
        assert gw_west.wait(timeout=15) == 0
        assert "draining" in (tmp_path / "west.log").read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
