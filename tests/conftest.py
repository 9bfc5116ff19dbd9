"""Shared fixtures: real control planes (etcd + kube-apiserver with RBAC + controller-manager).

Session-scoped clusters are shared by tests that only create their own namespaced objects;
a test that restarts an API server or compacts etcd takes a private one (``fresh_cluster``).
"""

from __future__ import annotations

# First of all, as the `isthmus` command does: before any conftest or test module imports
# grpc, restrict it to TLS 1.3 (see isthmus.grpc_tls). Parent conftests load first.
from isthmus.grpc_tls import pin_tls13

pin_tls13()

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import structlog

from isthmus.devcluster import ControlPlane, ControlPlaneError, find_binaries
from isthmus.kube.client import KubeApi


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, not in tests/scenarios/conftest.py: options must be known before collection.
    parser.addoption("--rig", choices=("local", "kind"), default="local",
                     help="the rig the scenario suite (tests/scenarios) runs on")


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """Put the structlog set-up back after each test.

    An in-process command (CliRunner) runs ``isthmus.logging.configure``, which sets the
    process-wide filter level (``warning`` by default) and binds the runner's stderr: left in
    place, it hides later tests' log lines from ``capture_logs``. (Its ``logging.basicConfig``
    changes nothing under pytest, whose capture handlers are already on the root logger.)
    """
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def _binaries_or_skip() -> None:
    try:
        find_binaries()
    except ControlPlaneError as exc:
        if os.environ.get("CI"):
            raise  # CI must never silently skip the real-API-server tests
        pytest.skip(str(exc))


def _start(name: str, **kwargs: object) -> ControlPlane:
    _binaries_or_skip()
    return ControlPlane(name, **kwargs).start()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def clusters() -> Iterator[list[ControlPlane]]:
    """Three linked-to-be control planes: west, east, central (started once per run)."""
    started: list[ControlPlane] = []
    try:
        for i, name in enumerate(("west", "east", "central")):
            started.append(_start(name, service_cidr=f"10.{96 + i}.0.0/16"))
        yield started
    finally:
        for cp in started:
            cp.stop()


@pytest.fixture(scope="session")
def cluster(clusters: list[ControlPlane]) -> ControlPlane:
    return clusters[0]


@pytest.fixture
def fresh_cluster() -> Iterator[Callable[..., ControlPlane]]:
    """A factory for private control planes, for tests that break them on purpose."""
    started: list[ControlPlane] = []

    def make(**kwargs: object) -> ControlPlane:
        cp = _start(f"t{uuid.uuid4().hex[:6]}", **kwargs)
        started.append(cp)
        return cp

    yield make
    for cp in started:
        cp.stop()


@pytest.fixture
async def api(cluster: ControlPlane) -> AsyncIterator[KubeApi]:
    client = await KubeApi.connect(cluster.kubeconfig, cluster.context)
    yield client
    await client.close()


@pytest.fixture
def unique() -> str:
    """A short unique name for objects a test creates."""
    return f"t-{uuid.uuid4().hex[:8]}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kind: needs a container engine and the kind rig (multicluster-e2e/kind/up)")
