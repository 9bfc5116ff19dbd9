"""``isthmus demo``: echo workloads to try a link with, and a client to call them.

``serve`` answers on three ports from one process: HTTP (a JSON line naming the cluster,
the Service it backs when given ``--service``, and the pod that answered), gRPC
(``isthmus.demo.Echo``: ``Unary`` and server-streaming ``Stream``, raw bytes, no generated
code) and raw TCP (echoes bytes back). ``call`` is its client, for running in a pod: it
resolves the name with the pod's own resolver, like any workload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import urllib.request
from typing import Any

import click

from isthmus.errors import ConfigError

SERVICE = "isthmus.demo.Echo"


def _ident(data: bytes) -> bytes:
    return data


def identity(cluster: str, service: str | None = None) -> dict[str, str]:
    me = {"cluster": cluster, "pod": os.environ.get("HOSTNAME", socket.gethostname())}
    if service:
        me["service"] = service
    return me


async def _serve(cluster: str, service: str | None, host: str, http_port: int,
                 grpc_port: int, tcp_port: int) -> None:
    import grpc
    from aiohttp import web

    me = identity(cluster, service)

    async def http(request: web.Request) -> web.Response:
        return web.json_response({**me, "path": request.path_qs})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", http)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, http_port).start()

    prefix = f"{cluster}:".encode()

    async def unary(request: bytes, _ctx: Any) -> bytes:
        return prefix + request

    async def stream(request: bytes, _ctx: Any) -> Any:
        count = int(request or b"3")
        for i in range(min(count, 1000)):
            yield prefix + str(i).encode()

    if grpc_port:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
            "Unary": grpc.unary_unary_rpc_method_handler(unary, _ident, _ident),
            "Stream": grpc.unary_stream_rpc_method_handler(stream, _ident, _ident),
        }),))
        if server.add_insecure_port(f"{host}:{grpc_port}") == 0:
            raise OSError(f"demo serve: gRPC cannot listen on {host}:{grpc_port}")
        await server.start()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    tcp = await asyncio.start_server(echo, host, tcp_port) if tcp_port else None
    print(json.dumps({**me, "event": "serving", "http": http_port, "grpc": grpc_port,
                      "tcp": tcp_port}), flush=True)
    if tcp is None:
        await asyncio.Event().wait()  # until stopped
        return
    async with tcp:
        await tcp.serve_forever()


def _call_http(url: str, timeout: float) -> str:
    if not url.startswith("http://"):
        raise ConfigError(f"demo call: {url!r} is not an http:// URL")
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http only)
        return str(resp.read().decode())


def _call_grpc(target: str, count: int, timeout: float) -> str:
    import grpc

    with grpc.insecure_channel(target) as channel:
        unary = channel.unary_unary(f"/{SERVICE}/Unary", _ident, _ident)
        answer = unary(b"ping", timeout=timeout)
        stream = channel.unary_stream(f"/{SERVICE}/Stream", _ident, _ident)
        parts = [m.decode() for m in stream(str(count).encode(), timeout=timeout)]
    return json.dumps({"unary": answer.decode(), "stream": parts})


def _call_tcp(target: str, timeout: float) -> str:
    host, _, port = target.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"demo call: {target!r} is not host:port")
    payload = b"isthmus tcp echo\n"
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = conn.recv(65536)
            if not chunk:
                break
            got += chunk
    if got != payload:
        raise ConfigError(f"demo call: tcp echo from {target} returned {got!r}")
    return json.dumps({"tcp": got.decode().strip()})


@click.group("demo")
def group() -> None:
    """Echo workloads (HTTP, gRPC, TCP) and their client, to try a link with."""


@group.command("serve")
@click.option("--cluster", envvar="ISTHMUS_DEMO_CLUSTER", required=True,
              help="Name to answer with (env ISTHMUS_DEMO_CLUSTER).")
@click.option("--service", envvar="ISTHMUS_DEMO_SERVICE", default=None,
              help="The Service this workload backs, named in HTTP answers "
                   "(env ISTHMUS_DEMO_SERVICE).")
@click.option("--host", default="0.0.0.0", show_default=True,  # noqa: S104 (a pod's demo)
              help="Address to listen on.")
@click.option("--http-port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=9090, show_default=True,
              help="0: no gRPC.")
@click.option("--tcp-port", type=click.IntRange(0, 65535), default=9000, show_default=True,
              help="0: no TCP echo.")
def serve(cluster: str, service: str | None, host: str, http_port: int, grpc_port: int,
          tcp_port: int) -> None:
    """Serve HTTP, gRPC and TCP echo until stopped."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(cluster, service, host, http_port, grpc_port, tcp_port))


@group.command("call")
@click.option("--http", "http_url", metavar="URL", help="GET this http:// URL.")
@click.option("--grpc", "grpc_target", metavar="HOST:PORT", help="Call Unary and Stream.")
@click.option("--tcp", "tcp_target", metavar="HOST:PORT", help="Send a line, expect it back.")
@click.option("--count", type=int, default=3, show_default=True, help="Stream messages.")
@click.option("--timeout", type=float, default=10.0, show_default=True)
def call(http_url: str | None, grpc_target: str | None, tcp_target: str | None,
         count: int, timeout: float) -> None:
    """Call one echo service and print its answer (exit 1 if the call fails)."""
    if sum(x is not None for x in (http_url, grpc_target, tcp_target)) != 1:
        raise ConfigError("demo call: give exactly one of --http, --grpc, --tcp")
    try:
        if http_url is not None:
            out = _call_http(http_url, timeout)
        elif grpc_target is not None:
            out = _call_grpc(grpc_target, count, timeout)
        else:
            assert tcp_target is not None
            out = _call_tcp(tcp_target, timeout)
    except (OSError, ConfigError) as exc:
        click.echo(f"call failed: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # grpc.RpcError and the like: report, don't trace
        click.echo(f"call failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    click.echo(out.strip())
