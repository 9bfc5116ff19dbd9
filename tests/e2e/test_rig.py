"""The main job, end to end on the local rig: linked clusters in network namespaces, and a call
from one to the other by a .global name (glibc DNS, kube-proxy, both gateways, mTLS)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from isthmus.devcluster.rig import Rig, needs_root

pytestmark = [pytest.mark.netns, pytest.mark.controlplane]


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    reason = needs_root()
    if reason:
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="isthmus-e2e-") as tmp:
        r = Rig(["west", "east"], Path(tmp), prefix="isthe2e", wan_cidr="10.251.0.0/24")
        try:
            r.up()
            r.deploy_demo("east")
            yield r
        except Exception:
            print(r.logs())
            raise
        finally:
            r.down()


def test_call_across_clusters_by_global_name(rig: Rig) -> None:
    answer = json.loads(rig.wait_call("west", "http://users.shop.global/"))
    assert answer == {"cluster": "east", "service": "users"}


def test_name_resolves_to_the_local_mirror_vip(rig: Rig) -> None:
    addresses = rig.resolve("west", "users.shop.global")
    assert addresses and all(a.startswith("10.96.") for a in addresses)  # west's Service CIDR


def test_pinned_name_reaches_that_cluster(rig: Rig) -> None:
    answer = json.loads(rig.wait_call("west", "http://users.shop.east.global/"))
    assert answer["cluster"] == "east"


def test_unknown_name_does_not_resolve(rig: Rig) -> None:
    assert rig.resolve("west", "nobody.shop.global") == []


def test_status_reports_the_link(rig: Rig) -> None:
    out = rig.isthmus("status", "--context", "west", "--kubeconfig", rig.kubeconfig)
    assert "east" in out and "users.shop.global" in out
