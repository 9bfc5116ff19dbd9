"""Fixtures for the mirror tests: a shared root, clusters prepared as `isthmus install`
would (CRDs, isthmus-system, cluster CA Secret, trust bundle, the mirror's RBAC, the leaf
Secrets and the mirror's Lease), and controllers that run as the isthmus-mirror
ServiceAccount (never as admin)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from mirror_helpers import Mesh, Pki, prepare_cluster

from isthmus.devcluster import ControlPlane


@pytest.fixture(scope="session")
def pki() -> Pki:
    return Pki()


@pytest.fixture(scope="session")
def workdir() -> Any:
    with tempfile.TemporaryDirectory(prefix="isthmus-mirror-tests-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
async def mesh(clusters: list[ControlPlane], pki: Pki, workdir: Path) -> AsyncIterator[Mesh]:
    """west, east and central, each with a running mirror, linked west<->east<->central
    (west and central are not linked to each other: a daisy chain would go through east)."""
    m = Mesh(pki, workdir)
    for cp in clusters:
        await m.add(cp)
    await m.link("west", "east")
    await m.link("east", "west")
    await m.link("east", "central")
    await m.link("central", "east")
    for name in m.members:
        await m.start(name)
    try:
        yield m
    finally:
        await m.close()


@pytest.fixture
async def fresh_mesh(pki: Pki, workdir: Path) -> AsyncIterator[Callable[[], Mesh]]:
    """Private meshes (built on ``fresh_cluster`` control planes), closed after the test."""
    made: list[Mesh] = []

    def make() -> Mesh:
        m = Mesh(pki, workdir)
        made.append(m)
        return m

    yield make
    for m in made:
        await m.close()


__all__ = ["prepare_cluster", "yaml"]
