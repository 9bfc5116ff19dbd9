"""A network partition, not a restart: the peer's mirror keeps running (same catalog epoch)
while the importer cannot reach it. Past the stale grace period the importer drops the
peer's mirrors; when the partition heals it must ask for the whole catalog again, because
resuming from where it was would bring only what changed meanwhile (nothing, here)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from mirror_helpers import Mesh, condition, ensure_namespace, eventually, export_service


class Partition:
    """A TCP relay in front of a local port that the test can cut (every connection closed,
    new ones closed at once) and heal. The TLS inside is end to end: the relay only carries
    bytes."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Partition:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.sever()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def sever(self) -> None:
        self.cut = True
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    def heal(self) -> None:
        self.cut = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.transport.abort()


@contextlib.asynccontextmanager
async def east_follows_west_through(mesh: Mesh, partition: Partition,
                                    grace: float) -> AsyncIterator[None]:
    """East's Link to west names the relay, and east's mirror runs with a short grace period;
    afterwards both are as the mesh had them."""
    await mesh.stop("east")
    await mesh.link("east", "west", port=partition.port)
    try:
        await mesh.start("east", stale_grace_seconds=grace)
        yield
    finally:
        await mesh.stop("east")
        await mesh.link("east", "west")
        await mesh.start("east")


async def test_after_the_grace_period_a_healed_peer_is_imported_whole(mesh: Mesh,
                                                                      unique: str) -> None:
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    await export_service(mesh["west"].admin, unique, "parted")
    async with Partition(mesh["west"].catalog_port) as partition, \
            east_follows_west_through(mesh, partition, grace=2.0):

        async def imported() -> bool:
            gs = await mesh.gs("east", unique, "parted")
            assert gs is not None and condition(gs, "Stale").get("status") != "True", gs
            assert await mesh.svc("east", unique, "parted-global") is not None
            return True

        await eventually(imported, what="parted imported through the relay")
        partition.sever()

        async def removed() -> bool:
            assert await mesh.gs("east", unique, "parted") is None
            assert await mesh.svc("east", unique, "parted-global") is None
            return True

        await eventually(removed, timeout=30, what="mirrors removed after the grace period")
        # west's mirror never stopped: its catalog has the same epoch, and nothing changed
        partition.heal()
        await eventually(imported, timeout=30, what="parted imported again after the heal")
