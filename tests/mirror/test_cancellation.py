"""A cancel that arrives in the same loop step as the thing awaited must still cancel.

Python 3.11's ``asyncio.wait_for`` returns the result instead in that case (fixed in 3.12),
so a Watch handler or a catalog follower kept running after its server or controller was
stopped, and the stop waited forever. These tests fail on a ``wait_for`` based wait.
"""

from __future__ import annotations

import asyncio

import pytest

from isthmus.exports import ExportedPort, ExportedService
from isthmus.mirror.export_catalog import ExportCatalog


def _export(name: str) -> ExportedService:
    return ExportedService(namespace="shop", name=name, ports=(ExportedPort(name="http", port=80),))


async def test_catalog_waiter_cancelled_as_the_catalog_changes_stops() -> None:
    catalog = ExportCatalog()
    passes = 0

    async def watch() -> None:  # what the catalog server's Watch loop does
        nonlocal passes
        after = catalog.version
        while True:
            await catalog.wait_change(after, timeout=30)
            passes += 1
            after = catalog.version

    task = asyncio.create_task(watch())
    await asyncio.sleep(0)  # the task is waiting now
    catalog.set(("shop", "a"), _export("a"))
    task.cancel()  # same step as the change
    for i in range(3):  # later changes must not find the loop still running
        await asyncio.sleep(0)
        catalog.set(("shop", f"b{i}"), _export(f"b{i}"))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), 5)
    assert passes == 0
