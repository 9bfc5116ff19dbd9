"""Unexport, unjoin, a peer's API server stopped, and an expired certificate: scenarios that
change the links themselves. Each puts the rig back as it found it."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pytest
from scenario_certs import gateway_leaf, leaf_of, secret_data
from scenario_driver import (
    LEAF_RELOAD_SECONDS,
    SLACK_SECONDS,
    STALE_SECONDS,
    UNEXPORT_SECONDS,
    CallResult,
    ClusterSet,
    condition,
    first,
    wait_for,
)

from isthmus.labels import GATEWAY_TLS_SECRET, SYSTEM_NAMESPACE

pytestmark = [pytest.mark.netns, pytest.mark.controlplane]

GS = "/apis/isthmus.io/v1alpha1/namespaces/shop/globalservices"


def ok(call: CallResult) -> CallResult | None:
    return call if call.ok else None


def test_unexport_removes_the_name_and_refuses_new_connections(mesh: ClusterSet) -> None:
    west, exporter = mesh.clusters[0], mesh.clusters[-1]
    mesh.deploy_echo(exporter, "shop", "leaving")
    name, pinned = "leaving.shop.global", f"leaving.shop.{exporter}.global"
    wait_for(f"{name} to answer", lambda: ok(mesh.call_http(west, name)))
    wait_for(f"{pinned} to answer", lambda: ok(mesh.call_http(west, pinned)))
    vips = mesh.resolve(west, name) + mesh.resolve(west, pinned)
    assert vips

    unexported = time.monotonic()
    mesh.unexport(exporter, "shop", "leaving")
    wait_for(f"{name} and {pinned} to leave DNS", lambda: not mesh.resolve(west, name)
             and not mesh.resolve(west, pinned), timeout=UNEXPORT_SECONDS + SLACK_SECONDS)
    gone = time.monotonic() - unexported
    assert mesh.get(west, f"{GS}/leaving") is None
    for host in (name, pinned, *vips):
        call = first(f"a new connection to {host} to fail", partial(mesh.call_http, west, host),
                     lambda c: not c.ok)
        assert call.error
    print(f"\n[unexport] names gone from west's DNS {gone:.1f}s after the label was removed")


def _made_by_link(obj: dict[str, Any], peer: str) -> bool:
    labels = obj["labels"]
    return (
        (obj["resource"] == "links" and obj["name"] == peer)
        or f"link.isthmus.io/{peer}" in labels
        or labels.get("isthmus.io/peer-cluster") == peer
        or labels.get("isthmus.io/pinned-cluster") == peer
    )


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["resource"], obj["namespace"], obj["name"]


def test_unjoin_removes_everything_the_link_created(pair: ClusterSet) -> None:
    west, east = pair.clusters
    wait_for(f"{west} -> echo.shop.{east}.global",
             lambda: ok(pair.call_http(west, f"echo.shop.{east}.global")))
    peers = {west: east, east: west}
    before = {c: pair.isthmus_objects(c) for c in pair.clusters}
    for cluster, peer in peers.items():
        made = [o for o in before[cluster] if _made_by_link(o, peer)]
        kinds = {o["resource"] for o in made}
        assert {"links", "globalservices", "services", "endpointslices"} <= kinds, made

    others = {c: {o["name"] for o in before[c] if o["resource"] == "links"} - {p}
              for c, p in peers.items()}
    out = pair.unjoin([west, east])
    try:
        for cluster, peer in peers.items():
            after = pair.isthmus_objects(cluster)
            left = [_key(o) for o in after if _made_by_link(o, peer)]
            assert not left, f"{cluster} still holds objects of the link to {peer}: {left}"
            # With no other peer (the local rig's pair), no mirrored object is left at all;
            # on a rig with more linked clusters (kind's pair is two of its three), theirs stay.
            if not others[cluster]:
                assert not [o for o in after if o["labels"].get("isthmus.io/mirror") == "true"]
            # ...and nothing else was removed.
            kept = {_key(o) for o in before[cluster] if not _made_by_link(o, peer)}
            assert kept <= {_key(o) for o in after}, kept - {_key(o) for o in after}
        if not others[west]:
            assert pair.resolve(west, "echo.shop.global") == []
        assert not pair.call_http(west, f"echo.shop.{east}.global").ok
        again = pair.unjoin([west, east])
        assert again.count("removed nothing") == 2, (out, again)
    finally:
        pair.join([west, east])
    wait_for("the link to work again after join",
             lambda: ok(pair.call_http(west, f"echo.shop.{east}.global")), timeout=SLACK_SECONDS)


def test_peer_apiserver_stopped_mirrors_stale_calls_keep_working(pair: ClusterSet) -> None:
    west, east = pair.clusters
    pinned = f"echo.shop.{east}.global"
    wait_for(f"{west} -> {pinned}", lambda: ok(pair.call_http(west, pinned)))
    traffic = pair.start_traffic(west, pinned)
    try:
        pair.stop_apiserver(east)
        stopped = time.monotonic()
        try:
            gs = wait_for("west's GlobalService echo to go Stale", lambda: (
                g := pair.get(west, f"{GS}/echo")) and (condition(g, "Stale") or {}).get(
                    "status") == "True" and g, timeout=STALE_SECONDS + SLACK_SECONDS)
            stale_after = time.monotonic() - stopped
            stale = condition(gs, "Stale") or {}
            assert stale.get("reason") == "PeerUnreachable", stale
            marked = time.time()
            wait_for("20 calls through east's gateway while east's API server is down",
                     lambda: sum(r.t > marked for r in traffic.results()) >= 20)
            during = [r for r in traffic.results() if r.t > marked]
            assert all(r.ok and r.cluster == east for r in during), [r.error for r in during]
        finally:
            pair.start_apiserver(east)
        wait_for("west's GlobalService echo to be Fresh again", lambda: (
            (condition(pair.get(west, f"{GS}/echo"), "Stale") or {}).get("status") == "False"),
            timeout=SLACK_SECONDS * 2)
    finally:
        results = traffic.stop()
    failed = [r for r in results if not r.ok]
    print(f"\n[apiserver] Stale {stale_after:.0f}s after east's API server stopped; "
          f"{len(results)} calls, {len(failed)} failed")
    # Known, not yet explained: about one run in ten, one call in the seconds between the
    # stop and the Stale mark fails with EHOSTUNREACH (west's mirror Service briefly without
    # an endpoint); docs/scenarios.md says so. Every call from the Stale mark on, during
    # the outage and after the restart, must succeed.
    after_mark = [r for r in failed if r.t >= marked]
    assert not after_mark, [r.error for r in after_mark][:5]
    assert len(failed) <= 1, [r.error for r in failed][:5]


def test_check_names_an_expired_certificate(pair: ClusterSet) -> None:
    west, east = pair.clusters
    ca = pair.get_secret(east, SYSTEM_NAMESPACE, "isthmus-cluster-ca")
    current = pair.get_secret(east, SYSTEM_NAMESPACE, GATEWAY_TLS_SECRET)["data"]
    expired = gateway_leaf(ca, expired=True)
    pair.put_secret_data(east, SYSTEM_NAMESPACE, GATEWAY_TLS_SECRET, secret_data(expired))
    try:
        result = pair.check(east)
        assert result.code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.startswith("ERROR")]
        assert any(GATEWAY_TLS_SECRET in line and "expired" in line for line in lines), \
            result.output
    finally:
        pair.put_secret_data(east, SYSTEM_NAMESPACE, GATEWAY_TLS_SECRET,
                             {k: current[k] for k in ("tls.crt", "tls.key")})
    serial = leaf_of({"data": current}).serial_number
    wait_for("east's gateway to serve its valid leaf again", lambda: (
        c := pair.served_certificate(east)) is not None and c.serial_number == serial,
        timeout=LEAF_RELOAD_SECONDS + SLACK_SECONDS)
    wait_for("isthmus check to pass in east again", lambda: pair.check(east).code == 0)
    wait_for(f"{west} -> echo.shop.{east}.global",
             lambda: ok(pair.call_http(west, f"echo.shop.{east}.global")))
