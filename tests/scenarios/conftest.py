"""The scenario suite's rigs: ``pytest tests/scenarios --rig local|kind`` (default local).

Two rigs per run keep the wall time down: ``mesh`` (west, east, central; shared by every
scenario that puts the rig back as it found it) and ``pair`` (west, east; for the scenarios
that break things on purpose: a stopped API server, an expired certificate, unjoin). Every
scenario restores what it changed, so the order of tests does not matter.

On each rig every cluster runs the echo workload ``echo`` in namespace ``shop`` (HTTP, gRPC
and raw TCP), exported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
import scenario_kind
import scenario_local
from scenario_driver import ClusterSet, RigUnavailable, Unsupported, wait_for

ECHO_NAMESPACE = "shop"
ECHO = "echo"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Scenarios run last and together (in whatever order they were given): the session's
    ``mesh`` rig then stops right after them instead of loading the rest of the run."""
    here = Path(__file__).parent
    ours = [item for item in items if here in item.path.parents]
    if ours:
        chosen = set(ours)
        items[:] = [item for item in items if item not in chosen] + ours


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """A step the rig cannot do skips its scenario with the reason, never passes it."""
    try:
        return (yield)
    except Unsupported as exc:
        pytest.skip(f"{pyfuncitem.config.getoption('--rig')} rig cannot do this step: {exc}")


def _bring_up(request: pytest.FixtureRequest, names: list[str], prefix: str,
              wan_cidr: str) -> Iterator[ClusterSet]:
    rig = request.config.getoption("--rig")
    started = time.monotonic()
    cs: scenario_local.LocalClusterSet | scenario_kind.KindClusterSet
    if rig == "kind":
        reason = scenario_kind.unavailable()
        if reason:
            pytest.skip(reason)
        # One kind rig for both sets: ``mesh`` is its first three clusters, ``pair`` its
        # first two (the kind rig's own names: west, east, north).
        available = scenario_kind.rig_clusters()
        if len(available) < len(names):
            pytest.skip(f"kind rig not available: {len(names)} clusters needed, the rig has "
                        f"{len(available)} (run multicluster-e2e/kind/up --clusters 3)")
        names = available[:len(names)]
        cs = scenario_kind.KindClusterSet(names)
    else:
        reason = scenario_local.unavailable()
        if reason:
            if os.environ.get("CI") and "binaries" in reason:
                raise RigUnavailable(reason)  # CI must never skip the real clusters silently
            pytest.skip(f"local rig not available: {reason}")
        cs = scenario_local.LocalClusterSet(names, prefix=prefix, wan_cidr=wan_cidr)
    cs.up()
    failed_before = request.session.testsfailed
    try:
        for name in names:
            cs.deploy_echo(name, ECHO_NAMESPACE, ECHO)
        src, dst = names[0], names[1]
        wait_for(f"{src} -> {ECHO}.{ECHO_NAMESPACE}.{dst}.global",
                 lambda: cs.call_http(src, f"{ECHO}.{ECHO_NAMESPACE}.{dst}.global").ok,
                 timeout=180)
        print(f"\n[scenarios] {rig} rig {','.join(names)} up in "
              f"{time.monotonic() - started:.0f}s", flush=True)
        yield cs
    finally:
        if request.session.testsfailed > failed_before:
            cs.mark_failed()
            print(cs.logs())
        cs.down()


@pytest.fixture(scope="session")
def mesh(request: pytest.FixtureRequest) -> Iterator[ClusterSet]:
    """Three clusters, fully meshed, each exporting echo.shop."""
    yield from _bring_up(request, ["west", "east", "central"], "isthsc", "10.252.0.0/24")


@pytest.fixture(scope="module")
def pair(request: pytest.FixtureRequest) -> Iterator[ClusterSet]:
    """Two clusters for destructive scenarios, each exporting echo.shop."""
    yield from _bring_up(request, ["west", "east"], "isthsd", "10.253.0.0/24")
