"""Fixtures for the DNS responder: a snapshot of the sample services, a live server."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from dns_fixtures import CONFIG, SERVICES

from isthmus.dns.responder import Responder
from isthmus.dns.server import DnsServer
from isthmus.dns.snapshot import Snapshot, build_snapshot


@pytest.fixture
def snapshot() -> Snapshot:
    return build_snapshot(SERVICES, CONFIG, generation=1, serial=2026010101)


@pytest_asyncio.fixture(params=["batched", "asyncio"])
async def live(snapshot: Snapshot, request: pytest.FixtureRequest) -> AsyncIterator[DnsServer]:
    """A real server on a free loopback port (UDP and TCP), short TCP idle timeout; every
    test runs against both UDP paths (recvmmsg batches, and the asyncio protocol)."""
    server = DnsServer(Responder(snapshot), "127.0.0.1", 0, tcp_idle=0.5, max_tcp=8,
                       udp_batch=request.param == "batched")
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with its loopback up (removed afterwards, resolv.conf too)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    name = f"isthmus-t-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
        shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
