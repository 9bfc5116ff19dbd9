"""The demo echo workloads answer over HTTP, gRPC and TCP, naming their cluster; the client
fails loudly when nothing answers."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

ISTHMUS = [sys.executable, "-m", "isthmus.cli"]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@contextlib.contextmanager
def _serving(env: dict[str, str] | None = None) -> Iterator[list[int]]:
    ports = _free_ports(3)
    proc = subprocess.Popen([*ISTHMUS, "demo", "serve", "--cluster", "east", "--http-port",
                             str(ports[0]), "--grpc-port", str(ports[1]), "--tcp-port",
                             str(ports[2])], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["event"] == "serving"
        yield ports
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def server() -> Iterator[list[int]]:
    with _serving({"ISTHMUS_DEMO_SERVICE": ""}) as ports:
        yield ports


def _call(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ISTHMUS, "demo", "call", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_http_grpc_tcp_answer_with_the_cluster(server: list[int]) -> None:
    http, grpc_port, tcp = server
    out = _call("--http", f"http://127.0.0.1:{http}/hello?x=1")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) | {"pod": ""} == {"cluster": "east", "pod": "", "path": "/hello?x=1"}
    out = _call("--grpc", f"127.0.0.1:{grpc_port}", "--count", "4")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"unary": "east:ping",
                                      "stream": ["east:0", "east:1", "east:2", "east:3"]}
    out = _call("--tcp", f"127.0.0.1:{tcp}")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"tcp": "isthmus tcp echo"}


@pytest.mark.parametrize("args", [
    pytest.param(("--http", "http://127.0.0.1:{p}/"), id="http"),
    pytest.param(("--grpc", "127.0.0.1:{p}"), id="grpc"),
    pytest.param(("--tcp", "127.0.0.1:{p}"), id="tcp"),
])
def test_call_fails_when_nothing_answers(args: tuple[str, str]) -> None:
    port = _free_ports(1)[0]
    out = _call(args[0], args[1].format(p=port), "--timeout", "5")
    assert out.returncode == 1
    assert "call failed" in out.stderr


def test_call_needs_exactly_one_target() -> None:
    out = _call("--http", "http://127.0.0.1:1/", "--tcp", "127.0.0.1:1")
    assert out.returncode != 0
    assert "exactly one" in out.stderr


def test_http_answer_names_the_service_it_backs() -> None:
    """On kind each demo Service has its own Deployment, which says which Service it is."""
    with _serving({"ISTHMUS_DEMO_SERVICE": "users"}) as (http, _grpc, _tcp):
        out = _call("--http", f"http://127.0.0.1:{http}/")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert (answer["cluster"], answer["service"]) == ("east", "users")
