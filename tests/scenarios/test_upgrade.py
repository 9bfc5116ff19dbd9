"""Upgrade in place: roll every isthmus Deployment to a new image tag under traffic."""

from __future__ import annotations

import pytest
from scenario_driver import ClusterSet, Unsupported

pytestmark = [pytest.mark.netns, pytest.mark.controlplane]


def test_roll_to_a_new_image_under_traffic(mesh: ClusterSet) -> None:
    west = mesh.clusters[0]
    if mesh.rig == "local":
        pytest.skip("kind rig only: the local rig runs isthmus as processes from this "
                    "checkout, with no image or Deployment to roll")
    traffic = mesh.start_traffic(west, "echo.shop.global")
    try:
        mesh.upgrade("scenario-upgrade")
    except Unsupported as exc:
        traffic.stop()
        pytest.skip(str(exc))
    results = traffic.stop()
    failed = [r for r in results if not r.ok]
    assert results and not failed, [r.error for r in failed][:5]
