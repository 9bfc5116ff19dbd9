"""Rotate a gateway leaf and a cluster CA while traffic flows: no call fails, and the gateways
serve the new certificates."""

from __future__ import annotations

import time

import pytest
from cryptography import x509
from scenario_certs import gateway_leaf, leaf_of, secret_data
from scenario_driver import (
    CA_ROTATION_SECONDS,
    LEAF_RELOAD_SECONDS,
    SLACK_SECONDS,
    CallResult,
    ClusterSet,
    wait_for,
)

from isthmus.labels import GATEWAY_TLS_SECRET, SYSTEM_NAMESPACE

pytestmark = [pytest.mark.netns, pytest.mark.controlplane]

HOST = "echo.shop.global"
CA_SECRET = "isthmus-cluster-ca"


def _answered(results: list[CallResult], cluster: str, since: float) -> bool:
    return any(r.ok and r.cluster == cluster and r.t > since for r in results)


def _serial(cert: x509.Certificate | None) -> int | None:
    return None if cert is None else cert.serial_number


def test_rotate_leaf_and_cluster_ca_under_traffic(mesh: ClusterSet) -> None:
    west, east, central = mesh.clusters
    traffic = mesh.start_traffic(west, HOST)
    try:
        start = time.time()
        wait_for("traffic to reach east and central", lambda: _answered(
            traffic.results(), east, start) and _answered(traffic.results(), central, start))

        # A leaf: east's gateway gets a new one from east's CA, as the mirror does at half life.
        leaf = gateway_leaf(mesh.get_secret(east, SYSTEM_NAMESPACE, CA_SECRET))
        mesh.put_secret_data(east, SYSTEM_NAMESPACE, GATEWAY_TLS_SECRET, secret_data(leaf))
        wait_for("east's gateway to serve the new leaf",
                 lambda: _serial(mesh.served_certificate(east)) == leaf.cert.serial_number,
                 timeout=LEAF_RELOAD_SECONDS + SLACK_SECONDS)
        rotated = time.time()
        wait_for("calls answered by east after its new leaf",
                 lambda: _answered(traffic.results(), east, rotated))

        # A cluster CA: central's intermediate is re-issued; its mirror re-issues both leaves.
        old_ca = leaf_of(mesh.get_secret(central, SYSTEM_NAMESPACE, CA_SECRET))
        mesh.rotate_cluster_ca(central)
        new_ca = leaf_of(mesh.get_secret(central, SYSTEM_NAMESPACE, CA_SECRET))
        assert new_ca.serial_number != old_ca.serial_number
        new_key = new_ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value

        def served_under_new_ca() -> bool:
            cert = mesh.served_certificate(central)
            if cert is None:
                return False
            aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
            return aki.key_identifier == new_key.digest

        wait_for("central's gateway to serve a leaf under the new CA", served_under_new_ca,
                 timeout=CA_ROTATION_SECONDS + SLACK_SECONDS)
        rotated = time.time()
        wait_for("calls answered by central after its new CA",
                 lambda: _answered(traffic.results(), central, rotated))
        wait_for("calls answered by east after central's new CA",
                 lambda: _answered(traffic.results(), east, rotated))
    finally:
        results = traffic.stop()
    failed = [r for r in results if not r.ok]
    print(f"\n[rotation] {len(results)} calls, {len(failed)} failed")
    assert not failed, [r.error for r in failed][:5]
