"""Local rig: a network namespace resolves `*.global` through its own responder, with plain
glibc (`getent hosts`) and Python's `socket.getaddrinfo`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dns_fixtures import SERVICES, in_ns

from isthmus.devcluster.netns_resolv import resolv_conf_text, write_netns_resolv_conf

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]
ISTHMUS = str(Path(sys.executable).with_name("isthmus"))


def test_resolv_conf_text(tmp_path: Path) -> None:
    path = write_netns_resolv_conf("isthmus-x", "127.0.0.1", search=("global",), root=tmp_path)
    assert path == tmp_path / "isthmus-x" / "resolv.conf"
    assert path.read_text() == resolv_conf_text("127.0.0.1", search=("global",))
    assert "nameserver 127.0.0.1\n" in path.read_text()
    with pytest.raises(ValueError):
        resolv_conf_text("dns.example")  # glibc wants an address
    with pytest.raises(ValueError):
        write_netns_resolv_conf("../etc", "127.0.0.1", root=tmp_path)


def test_namespace_resolves_through_its_responder(netns: str, tmp_path: Path) -> None:
    services = tmp_path / "services.yaml"
    services.write_text(yaml.safe_dump_all([s.to_wire() for s in SERVICES]))
    write_netns_resolv_conf(netns, "127.0.0.1")
    # The responder runs inside the namespace, on its loopback, port 53 (all glibc speaks).
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, ISTHMUS, "dns", "--listen-address", "127.0.0.1",
         "--port", "53", "--static-file", str(services)],
        stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "responder exited"
            if json.loads(line)["event"] == "dns_listening":
                break
        got = in_ns(netns, "getent", "hosts", "users.shop.global")
        assert got.returncode == 0, got.stderr
        assert got.stdout.split()[:2] in (["10.96.0.10", "users.shop.global"],
                                          ["fd00::10", "users.shop.global"])
        # (`getent ahosts*` would use AI_ADDRCONFIG, which finds no address but loopback in
        # this bare namespace and skips DNS; the rig's namespaces have a veth address.)
        pinned = in_ns(netns, "getent", "hosts", "users.shop.east.global")
        assert pinned.stdout.split() == ["10.96.1.10", "users.shop.east.global"]
        missing = in_ns(netns, "getent", "hosts", "nope.shop.global")
        assert missing.returncode == 2  # not found, answered (NXDOMAIN), not a timeout
        # the Multi-Cluster Services name of the same import, and one that must not exist
        mcs = in_ns(netns, "getent", "hosts", "users.shop.svc.clusterset.local")
        assert mcs.returncode == 0, mcs.stderr
        assert mcs.stdout.split()[:2] in (["10.96.0.10", "users.shop.svc.clusterset.local"],
                                          ["fd00::10", "users.shop.svc.clusterset.local"])
        per_cluster = in_ns(netns, "getent", "hosts", "east.users.shop.svc.clusterset.local")
        assert per_cluster.returncode == 2
        script = ("import socket; print(sorted({a[4][0] for a in socket.getaddrinfo("
                  "'users.shop.global', 80, proto=socket.IPPROTO_TCP)}))")
        py = in_ns(netns, sys.executable, "-c", script)
        assert py.returncode == 0, py.stderr
        assert py.stdout.strip() == "['10.96.0.10', 'fd00::10']"
        py = in_ns(netns, sys.executable, "-c", script.replace(
            "users.shop.global", "users.shop.svc.clusterset.local"))
        assert py.stdout.strip() == "['10.96.0.10', 'fd00::10']", py.stderr
        # Outside the namespace, /etc/resolv.conf is untouched: the name is unknown there.
        assert Path("/etc/resolv.conf").read_text() != resolv_conf_text("127.0.0.1")
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
