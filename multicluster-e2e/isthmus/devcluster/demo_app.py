"""A demo workload for the rig: HTTP, gRPC and raw TCP echo, each saying which cluster served.

``python -m isthmus.devcluster.demo_app --cluster east --service users --listen 10.101.0.20:8080
[--grpc-listen 10.101.0.20:9090] [--tcp-listen 10.101.0.20:9000]``

- HTTP: every GET gets ``{"cluster": ..., "service": ...}``.
- gRPC: service ``isthmus.demo.Echo`` with raw-bytes methods (no generated code): ``Unary``
  answers ``<cluster>:<request>``; server-streaming ``Stream`` takes a count N and sends
  ``<cluster>:0`` ... ``<cluster>:N-1``.
- TCP: echoes every byte back until the client half-closes.
"""

from __future__ import annotations

import argparse
import json
import socketserver
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GRPC_SERVICE = "isthmus.demo.Echo"
STREAM_LIMIT = 1000  # messages per Stream call: a client cannot make it run forever


def _split(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def _identity(data: bytes) -> bytes:
    return data


def serve_http(address: str, body: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *fmt_args: object) -> None:
            return  # quiet: the rig reads its own logs

    return ThreadingHTTPServer(_split(address), Handler)


def serve_grpc(address: str, cluster: str) -> Any:
    import grpc

    prefix = f"{cluster}:".encode()

    def unary(request: bytes, _ctx: Any) -> bytes:
        return prefix + request

    def stream(request: bytes, _ctx: Any) -> Iterator[bytes]:
        try:
            count = int(request or b"3")
        except ValueError:
            count = 3
        for i in range(max(0, min(count, STREAM_LIMIT))):
            yield prefix + str(i).encode()

    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(GRPC_SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, _identity, _identity),
        "Stream": grpc.unary_stream_rpc_method_handler(stream, _identity, _identity),
    }),))
    if server.add_insecure_port(address) == 0:
        raise OSError(f"gRPC cannot listen on {address}")
    server.start()
    return server


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--listen", required=True, help="HTTP host:port")
    parser.add_argument("--grpc-listen", default=None, help="gRPC host:port (optional)")
    parser.add_argument("--tcp-listen", default=None, help="TCP echo host:port (optional)")
    args = parser.parse_args()
    body = json.dumps({"cluster": args.cluster, "service": args.service}).encode() + b"\n"
    grpc_server = serve_grpc(args.grpc_listen, args.cluster) if args.grpc_listen else None
    if args.tcp_listen:
        tcp = _TcpServer(_split(args.tcp_listen), _Echo)
        threading.Thread(target=tcp.serve_forever, daemon=True).start()
    try:
        serve_http(args.listen, body).serve_forever()
    finally:
        if grpc_server is not None:
            grpc_server.stop(0)


if __name__ == "__main__":
    main()
