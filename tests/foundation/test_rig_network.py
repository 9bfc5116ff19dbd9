"""The local rig removes only its own network namespaces: another one that shares its prefix
(a second rig's, or the kind engine's ``isthmus-kind``) survives its start and its stop."""

from __future__ import annotations

import ipaddress
import subprocess

import pytest

from isthmus.devcluster.network import RigNetwork
from isthmus.devcluster.rig import needs_root

pytestmark = [pytest.mark.netns]


def _namespaces() -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                             check=True).stdout
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


def test_rig_leaves_other_namespaces_with_its_prefix_alone() -> None:
    reason = needs_root()
    if reason:
        pytest.skip(reason)
    bystander = "isthnt-kind"
    subprocess.run(["ip", "netns", "add", bystander], check=True)
    net = RigNetwork(prefix="isthnt", wan_cidr=ipaddress.IPv4Network("10.249.0.0/24"))
    try:
        net.create(["a", "b"])
        assert {"isthnt-wan", "isthnt-a", "isthnt-b", bystander} <= _namespaces()
        net.destroy()
        left = {ns for ns in _namespaces() if ns.startswith("isthnt-")}
        assert left == {bystander}
    finally:
        net.destroy()
        subprocess.run(["ip", "netns", "del", bystander], check=False)
