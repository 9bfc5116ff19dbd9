"""Fixtures for the DNS responder: a snapshot of the sample services, a live server."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
