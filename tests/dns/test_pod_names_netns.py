"""glibc resolves per-pod names: a network namespace whose resolver is a responder serving
a headless import (``getent hosts`` and Python's ``getaddrinfo``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dns_fixtures import in_ns
from test_pod_names import PODS, VIPS, headless_gs

from isthmus.devcluster.netns_resolv import write_netns_resolv_conf

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]


SERVE = """
import asyncio, json, sys
from isthmus.api.models import GlobalService
from isthmus.dns.responder import Responder
from isthmus.dns.server import DnsServer
from isthmus.dns.snapshot import build_snapshot

data = json.load(open(sys.argv[1]))
vips = {tuple(k.split("/")): tuple(v) for k, v in data["vips"].items()}
snap = build_snapshot([GlobalService.model_validate(data["gs"])], vips=vips)

async def main() -> None:
    async with DnsServer(Responder(snap), "127.0.0.1", 53):
        print("listening", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


def test_glibc_resolves_each_pod(netns: str, tmp_path: Path) -> None:
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"gs": headless_gs(PODS).to_wire(),
                                "vips": {"/".join(k): v for k, v in VIPS.items()}}))
    write_netns_resolv_conf(netns, "127.0.0.1")
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", SERVE,
                             str(data)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "responder exited"
            if line.strip() == "listening":
                break
        for name, address in [("db-0.db.shop.east.global", "10.96.1.10"),
                              ("db-0.db.shop.west.global", "10.96.2.10"),
                              ("db-1.db.shop.east.global", "10.96.1.11")]:
            got = in_ns(netns, "getent", "hosts", name)
            assert got.returncode == 0, got.stderr
            assert got.stdout.split()[:2] in ([address, name], ["fd00::1:11", name]), got.stdout
        missing = in_ns(netns, "getent", "hosts", "db-9.db.shop.west.global")
        assert missing.returncode == 2  # answered NXDOMAIN, not a timeout
        script = ("import socket; print(sorted({a[4][0] for a in socket.getaddrinfo("
                  "'db.shop.global', 26257, proto=socket.IPPROTO_TCP)}))")
        py = in_ns(netns, sys.executable, "-c", script)
        assert py.returncode == 0, py.stderr
        assert py.stdout.strip() == "['10.96.1.10', '10.96.1.11', '10.96.2.10', 'fd00::1:11']"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
