"""The client of the demo workload, run inside a cluster's namespace like any workload.

    python -m isthmus.devcluster.demo_client http URL
    python -m isthmus.devcluster.demo_client grpc HOST:PORT [--count N]
    python -m isthmus.devcluster.demo_client tcp HOST:PORT
    python -m isthmus.devcluster.demo_client loop URL [--interval S]

Each call resolves the name with the namespace's own resolver (glibc, so isthmus-dns) and
opens a new connection. One call prints one JSON line, ``{"ok": true, "cluster": ...}`` or
``{"ok": false, "error": ...}``, and exits 0 or 1. ``loop`` makes an HTTP call every
``--interval`` seconds until stopped and prints one such line per call, with its time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import time
import urllib.parse
from typing import Any

from isthmus.cli.demo import SERVICE as GRPC_SERVICE


def _identity(data: bytes) -> bytes:
    return data


def _target(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not host:port: {value!r}")
    return host, int(port)


def call_http(url: str, timeout: float) -> dict[str, Any]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http:// URL: {url!r}")
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise OSError(f"HTTP {resp.status}")
    answer: dict[str, Any] = json.loads(body)
    return {"cluster": answer["cluster"],
            **{k: answer[k] for k in ("service", "pod") if k in answer}}


def call_grpc(target: str, count: int, timeout: float) -> dict[str, Any]:
    import grpc

    _target(target)
    with grpc.insecure_channel(target) as channel:
        unary = channel.unary_unary(f"/{GRPC_SERVICE}/Unary", _identity, _identity)
        answer = unary(b"ping", timeout=timeout).decode()
        stream = channel.unary_stream(f"/{GRPC_SERVICE}/Stream", _identity, _identity)
        parts = [m.decode() for m in stream(str(count).encode(), timeout=timeout)]
    cluster, _, echoed = answer.partition(":")
    if echoed != "ping":
        raise OSError(f"gRPC Unary answered {answer!r}")
    return {"cluster": cluster, "unary": answer, "stream": parts}


def call_tcp(target: str, timeout: float) -> dict[str, Any]:
    payload = b"isthmus tcp echo " + str(time.time_ns()).encode() + b"\n"
    with socket.create_connection(_target(target), timeout=timeout) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)  # half-close: the echo must still answer in full
        got = b""
        while chunk := conn.recv(65536):
            got += chunk
    if got != payload:
        raise OSError(f"TCP echo returned {got[:80]!r}, sent {payload!r}")
    return {"cluster": None, "echoed": len(got)}


def _one(args: argparse.Namespace) -> dict[str, Any]:
    try:
        if args.kind == "http":
            result = call_http(args.target, args.timeout)
        elif args.kind == "grpc":
            result = call_grpc(args.target, args.count, args.timeout)
        else:
            result = call_tcp(args.target, args.timeout)
        return {"ok": True, **result}
    except Exception as exc:  # every failure is a result: the caller counts them
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("http", "grpc", "tcp", "loop"))
    parser.add_argument("target")
    parser.add_argument("--count", type=int, default=3, help="gRPC Stream messages")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=0.2, help="loop: seconds between calls")
    args = parser.parse_args()
    if args.kind != "loop":
        result = _one(args)
        print(json.dumps(result), flush=True)
        return 0 if result["ok"] else 1
    args.kind = "http"
    while True:
        started = time.time()
        result = _one(args)
        print(json.dumps({"t": started, **result}), flush=True)
        time.sleep(max(0.0, args.interval - (time.time() - started)))


if __name__ == "__main__":
    sys.exit(main())
