"""Two Links that name one cluster: removing one leaves the peer on the other."""

from __future__ import annotations

import socket

from mirror_helpers import Mesh, ensure_namespace, eventually, export_service

from isthmus.kube.resources import LINKS


def _dead_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_removing_a_second_link_to_a_cluster_keeps_the_first(
        mesh: Mesh, unique: str) -> None:
    """A second Link to east (by hand, to an address where nothing listens) takes over the
    peer while it exists; once it is deleted, west follows the remaining Link again and
    east's exports keep arriving."""
    west = mesh["west"].admin
    for m in ("west", "east"):
        await ensure_namespace(mesh[m].admin, unique)
    healthy = False
    try:
        await mesh.link("west", "east", port=_dead_port(), name=unique)
        await west.delete(LINKS, unique)
        await export_service(mesh["east"].admin, unique, "after")

        async def imported() -> bool:
            return await mesh.gs("west", unique, "after") is not None

        await eventually(imported, timeout=30, what="east's export in west after the removal")
        healthy = True
    finally:
        if not healthy:  # leave the shared mesh working for the tests after this one
            await mesh.unlink("west", unique)
            await mesh.stop("west")
            await mesh.start("west")
